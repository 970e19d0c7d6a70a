"""Market snapshots in DynamoDB (MARKET_TABLE, pk symbol): MarketDataRepository.

Item form (documented on magic8.domain.market.MarketSnapshot):
  symbol (S), last (N), bid (N, optional), ask (N, optional),
  bars_json (S: JSON list of [ts, open, high, low, close, volume]),
  updated_at (S, ISO-8601), updated_ts (N, epoch s), source (S), expires_at (N, TTL epoch s).

Malformed items are skipped (logged), never raised: the reader sees them as absent.
Reads fetch many symbols with one BatchGetItem (retrying unprocessed keys with backoff)
and drop expired items themselves: DynamoDB deletes TTL items lazily and moto never does.
The gateway host writes with this same adapter.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from magic8.adapters.aws import LazyDynamoClient
from magic8.domain.market import Bar, MarketSnapshot

logger = logging.getLogger(__name__)
BATCH_GET_LIMIT = 100
MAX_ATTEMPTS = 6


def _num(x: float) -> dict[str, str]:
    return {"N": repr(float(x))}


def to_item(snapshot: MarketSnapshot, ttl_seconds: int, now: float | None = None) -> dict[str, Any]:
    """The DynamoDB (low-level, typed) item for one snapshot."""
    updated_ts = int(snapshot.updated_at.timestamp())
    base = int(now) if now is not None else updated_ts
    bars = [[b.ts, b.open, b.high, b.low, b.close, b.volume] for b in snapshot.bars]
    item: dict[str, Any] = {
        "symbol": {"S": snapshot.symbol},
        "last": _num(snapshot.last),
        "bars_json": {"S": json.dumps(bars, separators=(",", ":"))},
        "updated_at": {"S": snapshot.updated_at.isoformat()},
        "updated_ts": {"N": str(updated_ts)},
        "source": {"S": snapshot.source},
        "expires_at": {"N": str(max(base, updated_ts) + int(ttl_seconds))},
    }
    for name in ("bid", "ask"):
        value = getattr(snapshot, name)
        if value is not None and math.isfinite(value):
            item[name] = _num(value)
    return item


def from_item(item: dict[str, Any]) -> MarketSnapshot:
    """Parse a stored item (bars are trusted: they were validated when written)."""
    bars = tuple(
        Bar.model_construct(
            ts=int(b[0]),
            open=float(b[1]),
            high=float(b[2]),
            low=float(b[3]),
            close=float(b[4]),
            volume=float(b[5]) if len(b) > 5 else 0.0,
        )
        for b in json.loads(item.get("bars_json", {}).get("S", "[]"))
    )
    updated_at = datetime.fromisoformat(item["updated_at"]["S"])
    if updated_at.tzinfo is None:
        updated_at = updated_at.replace(tzinfo=UTC)
    return MarketSnapshot(
        symbol=item["symbol"]["S"],
        last=float(item["last"]["N"]),
        bid=float(item["bid"]["N"]) if "bid" in item else None,
        ask=float(item["ask"]["N"]) if "ask" in item else None,
        bars=bars,
        updated_at=updated_at,
        source=item.get("source", {}).get("S", "gateway"),
    )


class DynamoMarketRepository(LazyDynamoClient):
    """magic8.domain.ports.MarketDataRepository on DynamoDB."""

    def __init__(
        self,
        table_name: str,
        ddb: Any | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self._ddb = ddb
        self._clock = clock
        self._sleep = sleep

    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        """One BatchGetItem for up to 100 symbols; missing or expired symbols are absent."""
        wanted = list(dict.fromkeys(str(s) for s in symbols))
        items: list[dict[str, Any]] = []
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [{"symbol": {"S": s}} for s in wanted[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys}}
            for attempt in range(MAX_ATTEMPTS):
                resp = self.ddb.batch_get_item(RequestItems=request)
                items.extend(resp.get("Responses", {}).get(self.table_name, []))
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"{self.table_name}: keys still unprocessed after retries")
        now = self._clock()
        out: dict[str, MarketSnapshot] = {}
        for item in items:
            expires = item.get("expires_at", {}).get("N")
            if expires is not None and float(expires) <= now:
                continue
            try:
                snap = from_item(item)
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                # a malformed item is treated as absent (the caller reports "unavailable")
                logger.warning(
                    "market item unreadable", extra={"item_keys": sorted(item), "error": str(exc)}
                )
                continue
            out[snap.symbol] = snap
        return out

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        self.ddb.put_item(
            TableName=self.table_name, Item=to_item(snapshot, ttl_seconds, now=self._clock())
        )
