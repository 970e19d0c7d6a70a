"""Confidence history in DynamoDB (HISTORY_TABLE: pk series "<SYMBOL>#<Strategy>", sk ts ms).

Key design: every read is a Query on one series' partition with a ts range (history) or
ts <= t newest-first with a small Limit (trends), so its cost follows the points returned,
never the table's size. A series holds one point per trade identity per batch (the item's
`trade`); points of one batch in one series get distinct ts by a millisecond each.

Writes: in AWS and `make run` the API hands a batch's points to the history queue in one
SendMessage (magic8.adapters.history_queue) and the history function writes them here with
`write` (chunks of 25 sent concurrently, unprocessed items retried with backoff). `record`
(the direct write, used where no queue is configured) does the same but waits at most
`write_budget_s`; a slower write finishes in the background. Every item carries a TTL
(`expires_at`, epoch s) and, when kept, the feature row as one compact JSON string (one
attribute: cheap to store and to read back). DynamoDB deletes expired items lazily (and
the local emulator's sweeper like it), so reads drop expired items themselves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from magic8.adapters.aws import LazyDynamoClient
from magic8.domain.confidence import ConfidencePoint, Trend, all_series

log = logging.getLogger(__name__)

BATCH_SIZE = 25
MAX_ATTEMPTS = 6
DEFAULT_TTL_DAYS = 30.0
# the longest a request waits for its history write (the write itself goes on)
DEFAULT_WRITE_BUDGET_S = 1.0


def _item(point: ConfidencePoint, ts_ms: int, expires_at: int) -> dict[str, Any]:
    item = {
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
        "count": {"N": str(int(point.count))},
        "min_probability": {"N": repr(float(_or(point.min_probability, point.win_probability)))},
        "max_probability": {"N": repr(float(_or(point.max_probability, point.win_probability)))},
    }
    features = point.feature_map()
    if features:
        item["features"] = {"S": json.dumps(features, separators=(",", ":"))}
    return item


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _num(item: dict[str, Any], name: str) -> float | None:
    attr = item.get(name)
    return float(attr["N"]) if attr else None


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
        count=int(item["count"]["N"]) if "count" in item else 1,
        min_probability=_num(item, "min_probability"),
        max_probability=_num(item, "max_probability"),
        trade=item.get("trade", {}).get("S", "-").strip("-"),
        features=json.loads(item["features"]["S"]) if "features" in item else None,
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
        write_budget_s: float = DEFAULT_WRITE_BUDGET_S,
    ) -> None:
        self.table_name = table_name
        self.ttl_s = int(ttl_days * 86400)
        self._ddb = ddb
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._max_workers = max_workers
        self.write_budget_s = write_budget_s
        self.late_writes = 0  # writes that outlived the budget (finished in the background)
        self._executor: ThreadPoolExecutor | None = None

    # --- writes ---------------------------------------------------------------------

    def _chunks(self, points: Sequence[ConfidencePoint]) -> list[list[dict[str, Any]]]:
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
        return [requests[i : i + BATCH_SIZE] for i in range(0, len(requests), BATCH_SIZE)]

    def write(self, points: Sequence[ConfidencePoint]) -> int:
        """Write every point and wait for it (the history consumer): chunks of 25 at once;
        raises when a chunk fails, so the message is redelivered (writes are idempotent:
        the same item again)."""
        if not points:
            return 0
        chunks = self._chunks(points)
        if len(chunks) == 1:
            written = self._write_chunk(chunks[0])
        else:
            written = sum(self._pool().map(self._write_chunk, chunks))
        if written < len(points):
            raise RuntimeError(f"history: {len(points) - written} items left unprocessed")
        return written

    def record(self, points: Sequence[ConfidencePoint]) -> int:
        if not points:
            return 0
        chunks = self._chunks(points)
        # all chunks at once (one round trip of wall time), waited for up to the budget
        futures = [self._pool().submit(self._write_chunk, chunk) for chunk in chunks]
        done, pending = wait(futures, timeout=self.write_budget_s, return_when=FIRST_EXCEPTION)
        for f in done:
            exc = f.exception()
            if exc is not None:
                raise exc
        if pending:
            self.late_writes += 1
            log.warning(
                "confidence history write still running after %.2f s: not waiting for it",
                self.write_budget_s,
            )
        return sum(f.result() for f in done)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="history"
            )
        return self._executor

    def close(self) -> None:
        """Wait for background writes and end the pool's threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

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
