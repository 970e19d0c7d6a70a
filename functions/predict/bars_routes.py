"""NQ price endpoint of the predict API: 5-minute OHLCV bars of the NQ futures front month.

GET /nq/bars?since=&until=            bars whose open time is in [since, until) (ISO-8601;
                                      naive = UTC), at most 31 days
GET /nq/bars?hours=N                  the last N hours (1..744) up to now
GET /nq/bars                          the most recent session: the ET calendar day of the
                                      latest bar (the gateway streams 09:30-16:00 ET)
-> {"symbol", "since", "until", "interval": "5m", "count",
    "bars": [{"ts", "open", "high", "low", "close", "volume", "complete"}, ...]} oldest first.
Bad parameters (hours with since/until, since >= until, range > 31 days) are a 422.

The store comes through `get_bar_store` (override it in tests).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from functions.predict.query_params import invalid, utc_param
from magic8.domain.bars import DEFAULT_SYMBOL, BarStore
from magic8.settings import AwsSettings

MAX_RANGE = timedelta(days=31)
MAX_HOURS = 24 * 31
MAX_BARS = 31 * 24 * 12
EASTERN = ZoneInfo("America/New_York")

router = APIRouter(tags=["nq"])


_cached: tuple[Any, BarStore] | None = None  # (the DynamoDB resource, the store on it)


def get_bar_store() -> BarStore:
    from magic8.adapters.aws import resource
    from magic8.adapters.bars_dynamo import DynamoBarStore

    global _cached
    # request path: a short timeout budget. The store is rebuilt when the cached resource
    # changes (magic8.adapters.aws.reset_clients(): another endpoint), never held past it.
    # (boto3 resources compare equal to each other, so identity, not an lru_cache key.)
    ddb = resource("dynamodb", fast=True)
    cached = _cached
    if cached is None or cached[0] is not ddb:
        name = AwsSettings().bars_table
        cached = _cached = (ddb, DynamoBarStore(name, table=ddb.Table(name)))
    return cached[1]


def session_range(latest: datetime) -> tuple[datetime, datetime]:
    """The ET calendar day holding `latest` (a bar's open time), as a UTC range."""
    day = latest.astimezone(EASTERN).date()
    start = datetime(day.year, day.month, day.day, tzinfo=EASTERN)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


@router.get("/nq/bars")
def nq_bars(
    store: Annotated[BarStore, Depends(get_bar_store)],
    since: Annotated[datetime | None, Query(description="bar open >= since (ISO-8601)")] = None,
    until: Annotated[datetime | None, Query(description="bar open < until (ISO-8601)")] = None,
    hours: Annotated[
        float | None,
        Query(gt=0, le=MAX_HOURS, allow_inf_nan=False, description="the last N hours"),
    ] = None,
    symbol: Annotated[
        str, Query(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9._-]+$")
    ] = DEFAULT_SYMBOL,
) -> dict[str, Any]:
    if hours is not None and (since is not None or until is not None):
        raise invalid("hours", "give either hours or since/until, not both")
    now = datetime.now(UTC)
    if hours is not None:
        start, end = now - timedelta(hours=hours), now
    elif since is None and until is None:
        latest = store.latest(symbol)
        if latest is None:
            start, end = now - timedelta(days=1), now
        else:
            start, end = session_range(latest.start)
    else:
        end = utc_param(until, "until") if until else now
        start = utc_param(since, "since") if since else end - timedelta(days=1)
        if start >= end:
            raise invalid("until", "until must be after since")
        if end - start > MAX_RANGE:
            raise invalid("since", f"range must be at most {MAX_RANGE.days} days")
    bars = store.query(symbol, start, end, MAX_BARS)
    return {
        "symbol": symbol,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "interval": "5m",
        "count": len(bars),
        "bars": [b.public() for b in bars],
    }
