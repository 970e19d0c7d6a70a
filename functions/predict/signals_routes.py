"""IFD signals endpoint of the predict API.

GET /signals?since=&until=&underlying=&min_confidence=&limit=
    signals stored by the ifd function (confidence >= the store threshold) whose window
    ended in [since, until), oldest first; each with its market `bias` (bullish | bearish:
    magic8.domain.bias, the chart's marker direction). Defaults: the last 24 hours, every
    underlying, min_confidence 0. Naive timestamps are UTC. Range at most 31 days. Without since and
    until the answer is the most recent `limit` signals (of the last hour when it has any,
    else of the last 24 hours, else of the last 31 days), still oldest first.
    `market`: CME Globex's session now (market_open, session): the NQ options the signals
    are about trade there.

The store comes through `get_signal_store` (override it in tests).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from functions.predict.query_params import invalid, utc_param
from magic8.domain.bias import signal_bias
from magic8.ifd.ports import SignalQuery, SignalStore
from magic8.market_hours import default_cme_calendar
from magic8.settings import AwsSettings

MAX_RANGE = timedelta(days=31)
DEFAULT_RANGE = timedelta(hours=24)
RECENT_RANGE = timedelta(hours=1)
LOOKBACK_RANGE = MAX_RANGE
SCAN_LIMIT = 1000

router = APIRouter(tags=["signals"])


@lru_cache(maxsize=1)
def _default_store() -> SignalStore:
    from magic8.adapters.aws import resource
    from magic8.adapters.signals_dynamo import DynamoSignalStore

    name = AwsSettings().signals_table
    # request path: a short timeout budget
    return DynamoSignalStore(name, table=resource("dynamodb", fast=True).Table(name))


def get_signal_store() -> SignalStore:
    return _default_store()


@router.get("/signals")
def list_signals(
    store: Annotated[SignalStore, Depends(get_signal_store)],
    since: Annotated[datetime | None, Query(description="window end >= since (ISO-8601)")] = None,
    until: Annotated[datetime | None, Query(description="window end < until (ISO-8601)")] = None,
    underlying: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    ] = None,
    min_confidence: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """IFD signals whose window ended in [since, until), oldest first (without either: the
    most recent). `market`: CME Globex's session now (`market_open`, `session` regular |
    early_close | closed): the NQ options the signals are about trade on Globex."""
    end = utc_param(until, "until") if until else datetime.now(UTC)
    start = utc_param(since, "since") if since else end - DEFAULT_RANGE
    if start >= end:
        raise invalid("until", "until must be after since")
    if end - start > MAX_RANGE:
        raise invalid("since", f"range must be at most {MAX_RANGE.days} days")
    if since is None and until is None:
        # the most recent signals: the tail of the last hour (else of the last 24 hours)
        for span in (RECENT_RANGE, DEFAULT_RANGE, LOOKBACK_RANGE):
            start = end - span
            signals = store.query(SignalQuery(start, end, underlying, min_confidence, SCAN_LIMIT))
            if signals:
                signals = signals[-limit:]
                break
    else:
        signals = store.query(SignalQuery(start, end, underlying, min_confidence, limit))
    return {
        # IFD signals are about NQ options: CME Globex's session now
        "market": default_cme_calendar().describe(datetime.now(UTC)),
        "since": start.isoformat(),
        "until": end.isoformat(),
        "underlying": underlying,
        "min_confidence": min_confidence,
        "count": len(signals),
        "signals": [
            {**s.model_dump(mode="json"), "bias": signal_bias(s.option_type, s.direction)}
            for s in signals
        ],
    }
