"""BarStore on the BARS table: pk symbol ("NQ"), sk ts (bar open, epoch ms), TTL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key

from magic8.adapters.aws import LazyDynamoTable
from magic8.adapters.dynamo_state import expired, from_dynamo, to_dynamo
from magic8.domain.bars import Bar

FIELDS = ("open", "high", "low", "close", "volume", "minutes", "complete")


def epoch_ms(ts: datetime) -> int:
    return round(ts.astimezone(UTC).timestamp() * 1000)


class DynamoBarStore(LazyDynamoTable):
    def __init__(self, table_name: str, ttl_days: int = 30, table: Any = None) -> None:
        super().__init__(table_name, table)
        self.ttl_days = ttl_days

    def item(self, bar: Bar, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return to_dynamo(
            {
                "symbol": bar.symbol,
                "ts": epoch_ms(bar.start),
                **{k: getattr(bar, k) for k in FIELDS},
                "expires_at": int(now) + self.ttl_days * 86400,
            }
        )

    def put(self, bars: list[Bar]) -> None:
        if not bars:
            return
        # one item per (symbol, ts): the batch keeps the last version of each bar
        latest = {(b.symbol, epoch_ms(b.start)): b for b in bars}
        now = time.time()
        if len(latest) == 1:
            self.table.put_item(Item=self.item(next(iter(latest.values())), now))
            return
        with self.table.batch_writer() as batch:
            for bar in latest.values():
                batch.put_item(Item=self.item(bar, now))

    def query(self, symbol: str, since: datetime, until: datetime, limit: int = 2000) -> list[Bar]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("symbol").eq(symbol)
            & Key("ts").between(epoch_ms(since), epoch_ms(until) - 1),
            "ScanIndexForward": True,
        }
        out: list[Bar] = []
        now = time.time()
        while len(out) < limit:
            page = self.table.query(**kwargs)
            out.extend(self._bar(raw) for raw in page.get("Items", []) if not expired(raw, now))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out[:limit]

    def latest(self, symbol: str) -> Bar | None:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("symbol").eq(symbol),
            "ScanIndexForward": False,
            "Limit": 20,
        }
        now = time.time()
        while True:
            page = self.table.query(**kwargs)
            for raw in page.get("Items", []):
                if not expired(raw, now):
                    return self._bar(raw)
            if "LastEvaluatedKey" not in page:
                return None
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _bar(raw: dict[str, Any]) -> Bar:
        item = from_dynamo(raw)
        return Bar(
            symbol=item["symbol"],
            start=datetime.fromtimestamp(item["ts"] / 1000, tz=UTC),
            open=item["open"],
            high=item["high"],
            low=item["low"],
            close=item["close"],
            volume=int(item.get("volume", 0)),
            minutes=int(item.get("minutes", 5)),
            complete=bool(item.get("complete", True)),
        )
