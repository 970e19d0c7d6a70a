"""Plausibility bounds for everything that enters the system from outside.

One module for the API (TradeRequest, outcomes, watchlist), the Kinesis record model
(PressureWindow) and the DBN reader (replay and the gateway's live path), so the three
cannot disagree about what is data and what is garbage.

Every check raises ``ValueError("<field>: <reason>")`` (pydantic turns it into a 422 / a
malformed record naming the field); none raises anything else, whatever the input:
extreme datetimes (year 1 with +14:00, year 9999 with -12:00) are rejected before any
arithmetic that could overflow.

Bounds are deliberately generous (a real print or a real strike is never near them) and
configurable: ``configure(earliest=..., future=...)`` (AwsSettings calls it from
MAGIC8_PLAUSIBLE_SINCE / MAGIC8_PLAUSIBLE_FUTURE_DAYS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

# ---------------------------------------------------------------- time


@dataclass(frozen=True)
class TimeBounds:
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    future: timedelta = timedelta(days=366)

    def latest(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + self.future


_bounds = TimeBounds()


def configure(earliest: date | datetime | None = None, future: timedelta | None = None) -> None:
    """Change the plausible time range (process-wide; entry points call it once)."""
    global _bounds
    start = _bounds.earliest
    if earliest is not None:
        start = (
            earliest
            if isinstance(earliest, datetime)
            else datetime(earliest.year, earliest.month, earliest.day)
        )
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    _bounds = TimeBounds(start, future if future is not None else _bounds.future)


def time_bounds() -> TimeBounds:
    return _bounds


def as_utc(ts: datetime, field: str = "timestamp") -> datetime:
    """``ts`` in UTC (naive read as UTC), or ValueError naming the field when the instant is
    not representable (year 1 at +14:00, year 9999 at -12:00)."""
    try:
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{field}: not a representable time ({exc})") from None


def plausible_time(ts: datetime, field: str = "timestamp", now: datetime | None = None) -> datetime:
    """``ts`` unchanged when it lies in the plausible range (checked in UTC; a naive value
    is compared as if UTC, which is within hours of any reading), else ValueError."""
    utc = as_utc(ts, field)
    b = _bounds
    latest = b.latest(now)
    if not b.earliest <= utc <= latest:
        raise ValueError(
            f"{field}: {ts.isoformat()[:40]} is outside the plausible range "
            f"{b.earliest.date().isoformat()} .. {latest.date().isoformat()}"
        )
    return ts


def plausible_epoch_ns(ns: int, field: str = "ts_event") -> bool:
    """True when an epoch-nanosecond timestamp lies in the plausible range."""
    b = _bounds
    lo = int(b.earliest.timestamp()) * 1_000_000_000
    hi = int(b.latest().timestamp()) * 1_000_000_000
    return lo <= ns <= hi


# ---------------------------------------------------------------- numbers


def no_bool(value: Any, field: str) -> Any:
    """Reject JSON booleans where a number is expected (pydantic would read true as 1);
    lists are checked element by element."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: a number is required, not a boolean")
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, bool):
                raise ValueError(f"{field}: a number is required, not a boolean")
    return value


# Plausible price range of each underlying (index points / share price), generous on both
# sides of any level it has traded at; strikes and predicted prices outside are garbage.
PRICE_RANGE: dict[str, tuple[float, float]] = {
    "SPX": (100.0, 100_000.0),
    "XSP": (1.0, 10_000.0),
    "SPY": (1.0, 10_000.0),
    "NDX": (100.0, 200_000.0),
    "QQQ": (1.0, 10_000.0),
    "RUT": (50.0, 50_000.0),
    "VIX": (1.0, 1_000.0),
    "NQ": (100.0, 200_000.0),  # NQ futures and their options
    "MNQ": (100.0, 200_000.0),
    "ES": (100.0, 100_000.0),
    "MES": (100.0, 100_000.0),
}
# Strikes of an underlying we have no range for (flow records of other products)
GENERIC_STRIKE_RANGE = (1e-4, 1e6)
# Sizes: no single print is larger, no 5-minute window of one option holds more
MAX_TRADE_SIZE = 100_000.0
MAX_WINDOW_VOLUME = 10_000_000.0
MAX_WINDOW_TRADES = 10_000_000
MAX_NOTIONAL = 1e13
MAX_SEQUENCE = 2**64 - 1
MAX_WINDOW_SPAN = timedelta(hours=1)
MAX_PRICE = 1_000_000.0


def price_range(underlying: str) -> tuple[float, float]:
    """The plausible price range for a symbol or a futures root (``NQZ5`` -> NQ)."""
    key = underlying.strip().upper()
    if key in PRICE_RANGE:
        return PRICE_RANGE[key]
    for root in sorted(PRICE_RANGE, key=len, reverse=True):
        if key.startswith(root) and key[len(root) :][:1].isalpha() and len(key) <= len(root) + 3:
            return PRICE_RANGE[root]
    return GENERIC_STRIKE_RANGE


def finite(value: float, field: str) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number")
    return float(value)


# DynamoDB numbers: 38 significant digits, magnitude 1e-130 .. 1e125. Anything a window
# carries is far inside; a value outside would make the store raise (Overflow/Underflow).
MIN_MAGNITUDE = 1e-100


def storable(value: float, field: str) -> float:
    """A finite number that is zero or of a magnitude every store can hold."""
    v = finite(value, field)
    if v != 0 and not MIN_MAGNITUDE <= abs(v) <= 1e100:
        raise ValueError(f"{field}: {v:g} is outside the storable range")
    return v


def plausible_price(value: float, underlying: str, field: str) -> float:
    lo, hi = price_range(underlying)
    v = finite(value, field)
    if not lo <= v <= hi:
        raise ValueError(
            f"{field}: {v:g} is outside the plausible range for {underlying} ({lo:g} .. {hi:g})"
        )
    return v


def check_trade(
    symbol: str,
    strikes: Sequence[float] | None,
    predicted_price: float | None,
    premium: float | None,
    strategy: str | None,
) -> None:
    """A trade's numbers are plausible for its symbol: strikes and the predicted price in the
    symbol's range; the premium (when given) within the structure's width (nobody pays or
    receives more than the most a structure can be worth)."""
    if predicted_price is not None:
        plausible_price(predicted_price, symbol, "predicted_price")
    if not strikes:
        return
    for s in strikes:
        plausible_price(s, symbol, "strikes")
    if premium is not None and len(strikes) >= 2:
        width = max_structure_value(strategy, sorted(strikes))
        if width is not None and premium > width + 1e-9:
            raise ValueError(
                f"premium: {premium:g} exceeds the most this structure can be worth ({width:g})"
            )


def max_structure_value(strategy: str | None, ks: Sequence[float]) -> float | None:
    """The largest value (per share) a defined-risk structure can have at expiry."""
    if strategy == "Butterfly" and len(ks) == 3:
        return max(ks[1] - ks[0], ks[2] - ks[1])
    if strategy in ("Iron Condor", "Sonar") and len(ks) == 4:
        return max(ks[1] - ks[0], ks[3] - ks[2])
    if strategy == "Vertical" and len(ks) == 2:
        return ks[1] - ks[0]
    return None


# ---------------------------------------------------------------- flow windows


def check_window(
    underlying: str,
    strike: float | None,
    window_start: datetime,
    window_end: datetime,
    volumes: dict[str, float],
    largest_trade: float,
    avg_trade_size: float,
    total_trades: int,
    notional: float,
) -> None:
    """A pressure window (Kinesis record) is plausible: its times in range and ordered, its
    strike in the underlying's range, its sizes within what any real print could be."""
    plausible_time(window_start, "window_start")
    plausible_time(window_end, "window_end")
    if as_utc(window_end) - as_utc(window_start) > MAX_WINDOW_SPAN:
        raise ValueError(f"window_end: a window spans at most {MAX_WINDOW_SPAN}")
    if strike is not None:
        plausible_price(strike, underlying, "strike")
    numbers = {**volumes, "largest_trade": largest_trade, "avg_trade_size": avg_trade_size}
    for name, v in {**numbers, "notional_premium": notional}.items():
        storable(v, name)
    for name, v in volumes.items():
        if v > MAX_WINDOW_VOLUME:
            raise ValueError(f"{name}: {v:g} contracts is beyond any real window")
    if largest_trade > MAX_TRADE_SIZE:
        raise ValueError(f"largest_trade: {largest_trade:g} contracts is beyond any real print")
    if avg_trade_size > largest_trade + 1e-9:
        raise ValueError("avg_trade_size: larger than largest_trade")
    if total_trades > MAX_WINDOW_TRADES:
        raise ValueError(f"total_trades: {total_trades} is beyond any real window")
    if notional > MAX_NOTIONAL:
        raise ValueError(f"notional_premium: {notional:g} is beyond any real window")


# ---------------------------------------------------------------- market data records


@dataclass(frozen=True)
class RecordBounds:
    """Sane bounds of one market-data print (DBN MBO trade)."""

    min_price: float = 0.0  # option prices are >= 0 (a zero-premium print is legal)
    max_price: float = MAX_PRICE
    max_size: float = MAX_TRADE_SIZE


def check_print(
    price: float, size: float, ts_ns: int, bounds: RecordBounds = RecordBounds()
) -> str | None:
    """Why a print is not plausible ("price" | "size" | "time"), or None when it is."""
    if not math.isfinite(price) or not bounds.min_price <= price <= bounds.max_price:
        return "price"
    if not 0 < size <= bounds.max_size:
        return "size"
    if not plausible_epoch_ns(ts_ns):
        return "time"
    return None
