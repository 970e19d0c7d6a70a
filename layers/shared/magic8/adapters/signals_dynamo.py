"""SignalStore on the SIGNALS table: pk underlying, sk signal_id, GSI by_day, TTL."""

from __future__ import annotations

import time
from datetime import UTC, date, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key

from magic8.adapters.aws import LazyDynamoTable
from magic8.adapters.dynamo_state import expired, from_dynamo, to_dynamo
from magic8.ifd.baselines import trading_day
from magic8.ifd.ports import SignalQuery
from magic8.ifd.values import Signal

MAX_DAYS_SCANNED = 62


class DynamoSignalStore(LazyDynamoTable):
    def __init__(self, table_name: str, ttl_days: int = 30, table: Any = None) -> None:
        super().__init__(table_name, table)
        self.ttl_days = ttl_days

    def put(self, signal: Signal) -> None:
        item = to_dynamo(signal.model_dump(mode="json"))
        item["expires_at"] = int(time.time()) + self.ttl_days * 86400
        self.table.put_item(Item=item)

    def query(self, q: SignalQuery) -> list[Signal]:
        lo = q.since.astimezone(UTC).isoformat()
        hi = q.until.astimezone(UTC).isoformat()
        out: list[Signal] = []
        if q.underlying is not None:
            out = self._collect(
                {
                    "KeyConditionExpression": Key("underlying").eq(q.underlying)
                    & Key("signal_id").between(lo, hi)
                },
                q,
                q.limit,
            )
        else:
            day = date.fromisoformat(trading_day(q.since))
            last = date.fromisoformat(trading_day(q.until))
            for _ in range(MAX_DAYS_SCANNED):
                if day > last or len(out) >= q.limit:
                    break
                out.extend(
                    self._collect(
                        {
                            "IndexName": "by_day",
                            "KeyConditionExpression": Key("day").eq(day.isoformat())
                            & Key("signal_id").between(lo, hi),
                        },
                        q,
                        q.limit - len(out),
                    )
                )
                day += timedelta(days=1)
        out.sort(key=lambda s: (s.window_end, s.signal_id))
        return out[: q.limit]

    def _collect(self, kwargs: dict[str, Any], q: SignalQuery, limit: int) -> list[Signal]:
        out: list[Signal] = []
        now = time.time()
        while len(out) < limit:
            page = self.table.query(**kwargs)
            for raw in page.get("Items", []):
                if expired(raw, now):
                    continue
                item = from_dynamo(raw)
                item.pop("expires_at", None)
                signal = Signal.model_validate(item)
                if q.matches(signal):
                    out.append(signal)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out[:limit]
