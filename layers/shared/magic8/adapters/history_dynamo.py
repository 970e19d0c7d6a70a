"""Confidence history in DynamoDB (HISTORY_TABLE: pk series "<SYMBOL>#<Strategy>", sk ts ms).

Writes go in BatchWriteItem calls of 25 (sent concurrently) with unprocessed items
retried; every item carries a TTL (`expires_at`, epoch s). DynamoDB deletes expired
items lazily and moto never does, so reads drop expired items themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from magic8.adapters.aws import LazyDynamoClient
from magic8.domain.confidence import ConfidencePoint, Trend, all_series

BATCH_SIZE = 25
MAX_ATTEMPTS = 6
DEFAULT_TTL_DAYS = 30.0


def _item(point: ConfidencePoint, ts_ms: int, expires_at: int) -> dict[str, Any]:
    return {
        "series": {"S": point.series},
        "ts": {"N": str(ts_ms)},
        "symbol": {"S": point.symbol},
        "strategy": {"S": point.strategy},
        "win_probability": {"N": repr(float(point.win_probability))},
        "prediction": {"S": point.prediction},
        "threshold": {"N": repr(float(point.threshold))},
        "model_type": {"S": point.model_type or "-"},
        "model_version": {"S": point.model_version or "-"},
        "data_source": {"S": point.data_source or "-"},
        "trade": {"S": point.trade or "-"},
        "expires_at": {"N": str(expires_at)},
    }


def _point(item: dict[str, Any]) -> ConfidencePoint:
    return ConfidencePoint(
        symbol=item["symbol"]["S"],
        strategy=item["strategy"]["S"],
        ts_ms=int(item["ts"]["N"]),
        win_probability=float(item["win_probability"]["N"]),
        prediction=item["prediction"]["S"],
        threshold=float(item["threshold"]["N"]),
        model_type=item["model_type"]["S"],
        model_version=item["model_version"]["S"],
        data_source=item["data_source"]["S"],
        trade=item.get("trade", {}).get("S", "-").strip("-"),
    )


class DynamoHistoryRepository(LazyDynamoClient):
    """magic8.domain.ports.HistoryRepository on DynamoDB."""

    def __init__(
        self,
        table_name: str,
        ttl_days: float = DEFAULT_TTL_DAYS,
        ddb: Any | None = None,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_workers: int = 8,
    ) -> None:
        self.table_name = table_name
        self.ttl_s = int(ttl_days * 86400)
        self._ddb = ddb
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None

    # --- writes ---------------------------------------------------------------------

    def record(self, points: Sequence[ConfidencePoint]) -> int:
        if not points:
            return 0
        expires_at = int(self._wall_clock()) + self.ttl_s
        seen: set[tuple[str, int]] = set()
        requests: list[dict[str, Any]] = []
        for point in points:
            ts = point.ts_ms
            # one item per (series, ts): a batch may answer a series twice in one millisecond
            while (point.series, ts) in seen:
                ts += 1
            seen.add((point.series, ts))
            requests.append({"PutRequest": {"Item": _item(point, ts, expires_at)}})
        chunks = [requests[i : i + BATCH_SIZE] for i in range(0, len(requests), BATCH_SIZE)]
        if len(chunks) == 1:
            return self._write_chunk(chunks[0])
        # a batch of 100 answers is 4 BatchWriteItem calls: send them concurrently
        return sum(self._pool().map(self._write_chunk, chunks))

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="history"
            )
        return self._executor

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> int:
        pending = chunk
        for attempt in range(MAX_ATTEMPTS):
            resp = self.ddb.batch_write_item(RequestItems={self.table_name: pending})
            unprocessed = resp.get("UnprocessedItems", {}).get(self.table_name, [])
            if not unprocessed:
                return len(chunk)
            pending = unprocessed
            self._sleep(min(1.0, 0.05 * (2**attempt)))
        return len(chunk) - len(pending)

    # --- reads ----------------------------------------------------------------------

    def _live(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = self._wall_clock()
        return [i for i in items if "expires_at" not in i or float(i["expires_at"]["N"]) > now]

    def query(self, series: str, start_ms: int, end_ms: int) -> list[ConfidencePoint]:
        if end_ms < start_ms:
            return []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "series = :s AND ts BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":s": {"S": series},
                ":a": {"N": str(int(start_ms))},
                ":b": {"N": str(int(end_ms))},
            },
            "ScanIndexForward": True,
        }
        out: list[ConfidencePoint] = []
        while True:
            resp = self.ddb.query(**kwargs)
            out.extend(_point(i) for i in self._live(resp.get("Items", [])))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return out
            kwargs["ExclusiveStartKey"] = last

    def _latest_at_or_before(self, series: str, ts_ms: int) -> ConfidencePoint | None:
        """The newest live point with ts <= ts_ms (expired items are skipped)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "series = :s AND ts <= :b",
            "ExpressionAttributeValues": {":s": {"S": series}, ":b": {"N": str(int(ts_ms))}},
            "ScanIndexForward": False,
            "Limit": 5,
        }
        while True:
            resp = self.ddb.query(**kwargs)
            live = self._live(resp.get("Items", []))
            if live:
                return _point(live[0])
            last = resp.get("LastEvaluatedKey")
            if not last:
                return None
            kwargs["ExclusiveStartKey"] = last

    def _trend(self, series: str, hours: float, now_ms: int) -> Trend | None:
        latest = self._latest_at_or_before(series, now_ms)
        if latest is None:
            return None
        previous = self._latest_at_or_before(series, now_ms - int(hours * 3_600_000))
        return Trend(series=series, latest=latest, previous=previous)

    def trends(self, hours: float, now_ms: int, series: Sequence[str] | None = None) -> list[Trend]:
        names = list(series) if series is not None else all_series()
        if not names:
            return []
        results = list(self._pool().map(lambda s: self._trend(s, hours, now_ms), names))
        return [t for t in results if t is not None]
