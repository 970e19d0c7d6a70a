"""Test data built one way for every test: trades (the DiscordTrading client's examples),
API Gateway events, and pressure windows (quiet background, one-sided flow, straddles).

Windows are built as PressureWindow records directly (the flow record contract), so the
domain and handler tests do not depend on the DBN generator; the evaluation test uses the
real generator and aggregator.
"""

from __future__ import annotations

import base64
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from magic8.domain.flow import PressureWindow, dominant_side, pressure_ratio
from magic8.domain.trades import TradeRequest
from magic8.ifd.baselines import BaselineStats, Estimate
from magic8_dev.local.api_front import LambdaContext, apigw_event

__all__ = ["LambdaContext", "apigw_event"]

# --- trades: the DiscordTrading client's documented examples -------------------------------

BUTTERFLY: dict[str, Any] = {
    "strategy": "Butterfly",
    "symbol": "SPX",
    "premium": 24.82,
    "predicted_price": 5855,
    "strikes": [5905, 5855, 5805],
    "action": "BUY",
    "quantity": 1,
}
IRON_CONDOR: dict[str, Any] = {
    "strategy": "Iron Condor",
    "symbol": "SPX",
    "premium": 0.65,
    "predicted_price": 5855,
    "strikes": [5880, 5875, 5835, 5830],
    "action": "SELL",
    "quantity": 1,
}
SONAR_NDX: dict[str, Any] = {
    "strategy": "Sonar",
    "symbol": "NDX",
    "premium": 3.2,
    "predicted_price": 21010,
    "strikes": [20900, 20920, 21080, 21100],
    "action": "SELL",
}
DISCORD_BATCH: dict[str, Any] = {"requests": [BUTTERFLY, IRON_CONDOR], "share_market_data": True}


def trade_dict(base: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
    """A trade request body: `base` (default the Butterfly) with fields replaced."""
    return {**(BUTTERFLY if base is None else base), **over}


def trade(base: dict[str, Any] | None = None, **over: Any) -> TradeRequest:
    """A validated TradeRequest: `base` (default the Butterfly) with fields replaced."""
    return TradeRequest.model_validate(trade_dict(base, **over))


# --- pressure windows -----------------------------------------------------------------------

UNDERLYING = "NQZ5"
STRIKES = tuple(range(19900, 20301, 25))


def instrument_id(strike: float, option_type: str) -> int:
    return int(strike) * 10 + (1 if option_type == "C" else 2)


def window(
    strike: float,
    option_type: str,
    start: datetime,
    ask: float,
    bid: float,
    avg_size: float | None = None,
    unknown: float = 0.0,
    underlying: str = UNDERLYING,
    final: bool = True,
    instrument: int | None = None,
) -> PressureWindow:
    total = ask + bid + unknown
    avg = avg_size if avg_size is not None else max(1.0, min(total, 2.0))
    trades = max(1, round(total / avg)) if total > 0 else 0
    ratio = pressure_ratio(ask, bid)
    return PressureWindow(
        instrument_id=instrument_id(strike, option_type) if instrument is None else instrument,
        underlying=underlying,
        symbol=f"{underlying} {option_type}{int(strike)}",
        expiration="2025-12-19",
        strike=strike,
        option_type=option_type,  # type: ignore[arg-type]
        window_start=start,
        window_end=start + timedelta(minutes=5),
        bid_volume=bid,
        ask_volume=ask,
        unknown_volume=unknown,
        total_trades=trades,
        avg_trade_size=avg,
        largest_trade=max(avg, 1.0) * 2,
        notional_premium=total * 50.0 * 20,
        pressure_ratio=ratio,
        dominant_side=dominant_side(ratio),
        source="replay",
        final=final,
    )


def numbered_window(iid: int, k: int, t0: datetime, strike: float = 20000.0) -> PressureWindow:
    """Window number ``k`` (5-minute slots from ``t0``) of instrument ``iid``: a small
    buying call window, for transport tests that only need distinct keys and order."""
    return window(strike, "C", t0 + timedelta(minutes=5 * k), ask=2, bid=1, instrument=iid)


# a strike with a long, ordinary history: ~8 lots per window, balanced flow
WARM_BASELINE = BaselineStats(
    logvol=Estimate(math.log1p(8.0), 0.8**2, 400),
    ratio=Estimate(0.0, 0.6**2, 400),
    n_strike=24,
    n_prior=800,
    cold=False,
)


def session_start(day: str = "2025-09-15") -> datetime:
    """09:30 New York (13:30 UTC in September)."""
    return datetime.fromisoformat(f"{day}T13:30:00+00:00").astimezone(UTC)


def quiet_windows(
    start: datetime, n_windows: int, rng: random.Random, strikes: tuple[int, ...] = STRIKES
) -> list[list[PressureWindow]]:
    """Background: every strike, both types, small two-sided noise. One list per window."""
    out = []
    for i in range(n_windows):
        ws = start + timedelta(minutes=5 * i)
        group = []
        for k in strikes:
            for t in ("C", "P"):
                n = rng.randint(0, 8)
                if n == 0:
                    continue
                ask = sum(rng.randint(1, 3) for _ in range(rng.randint(0, n)))
                bid = sum(rng.randint(1, 3) for _ in range(rng.randint(0, n)))
                if ask + bid == 0:
                    continue
                group.append(window(k, t, ws, float(ask), float(bid), avg_size=2.0))
        out.append(group)
    return out


def quiet_day(day: str, rng: random.Random, n_windows: int = 24) -> list[list[PressureWindow]]:
    return quiet_windows(session_start(day), n_windows, rng)


def one_sided(
    strike: float, option_type: str, start: datetime, n: int, buy: bool, size: float = 150.0
) -> list[PressureWindow]:
    """Institutional flow: large block-ish trades on one side for n consecutive windows."""
    out = []
    for i in range(n):
        ws = start + timedelta(minutes=5 * i)
        main, other = size, size * 0.05
        ask, bid = (main, other) if buy else (other, main)
        out.append(window(strike, option_type, ws, ask, bid, avg_size=15.0))
    return out


def straddle(
    strike: float, start: datetime, n: int, buy: bool = True, size: float = 150.0
) -> list[PressureWindow]:
    """Both the call and the put at one strike traded the same way in the same size."""
    out = []
    for t in ("C", "P"):
        out.extend(one_sided(strike, t, start, n, buy=buy, size=size))
    return out


def merge(groups: list[list[PressureWindow]], extra: list[PressureWindow]) -> list[PressureWindow]:
    """Flatten window groups, replacing background windows by extra ones with the same key."""
    by_key = {(w.instrument_id, w.window_start): w for g in groups for w in g}
    for w in extra:
        by_key[(w.instrument_id, w.window_start)] = w
    return sorted(by_key.values(), key=lambda w: (w.window_start, w.instrument_id))


# --- Kinesis event records ------------------------------------------------------------------


def kinesis_record(
    payload: bytes, seq: int, shard: str = "shardId-000000000000", partition_key: str = "1"
) -> dict[str, Any]:
    """One record of a Kinesis -> Lambda event, as the event source mapping delivers it."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": f"{seq:056d}",
            "data": base64.b64encode(payload).decode(),
            "approximateArrivalTimestamp": 1758000000.0 + seq,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq:056d}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/magic8-ifd-role",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/magic8-flow",
    }
