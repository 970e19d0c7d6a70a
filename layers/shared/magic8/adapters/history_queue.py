"""The confidence history's write path through a queue: the request hands a batch's points
to SQS in ONE SendMessage and returns; the history function (functions/history) writes them
to the history table per trade identity (DynamoHistoryRepository.write).

Why a queue (measured, README "Confidence history"): one batch of 100 new trades is up to
100 points (one per trade identity, each with its feature row). Written from the request,
that is four BatchWriteItem calls (~70 ms on the local emulator even sent concurrently);
one BatchWriteItem of 24 series summaries was ~20-25 ms and lost the per-trade lines. One
SendMessage of all 100 points with features (~60 KB) is ~10-20 ms. The send runs on a
worker thread from `record` on and `settle` waits for it (at most `budget_s`); the API
does both after its response (magic8.after_response: Lambda's internal extension keeps
the environment running until they are done), the monitor before it returns.

Message: {"v": 1, "names": [feature names], "points": [{...point, "f": [values]}]} as
compact JSON; a batch over the SQS limit is split into messages sent at once. Reads
(query, trends) go to the table, one-partition Queries.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from magic8.adapters.history_dynamo import DynamoHistoryRepository
from magic8.domain.confidence import ConfidencePoint, Trend

log = logging.getLogger(__name__)

VERSION = 1
# SQS takes 256 KiB per message; leave room for attributes and the envelope
MAX_MESSAGE_BYTES = 240_000


def _float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def encode(points: Sequence[ConfidencePoint]) -> list[str]:
    """The points as one or more message bodies (each under MAX_MESSAGE_BYTES).

    Feature rows travel as one little-endian float64 matrix in base64 ("fm", one row per
    point that has one, "fi" its index), with the names once: packing 100 rows of ~44
    values takes microseconds where writing each float as JSON text took ~7 ms. Values go
    as computed (a missing input is NaN; the API shows it as null)."""
    names: tuple[str, ...] = ()
    for p in points:
        if p.feature_row is not None and p.feature_names:
            names = p.feature_names
            break
        if p.features:
            names = tuple(p.features)
            break
    rows: list[dict[str, Any]] = []
    vectors: list[Any] = []
    for p in points:
        row: dict[str, Any] = {
            "sy": p.symbol,
            "st": p.strategy,
            "ts": p.ts_ms,
            "p": p.win_probability,
            "pr": p.prediction,
            "th": p.threshold,
            "mt": p.model_type,
            "mv": p.model_version,
            "ds": p.data_source,
            "n": p.count,
            "lo": p.min_probability,
            "hi": p.max_probability,
            "tr": p.trade,
        }
        if p.feature_row is not None and p.feature_names == names and names:
            row["fi"] = len(vectors)
            vectors.append(p.feature_row)
        elif p.features:
            row["fd"] = p.features
        rows.append(row)
    matrix = np.asarray(vectors, dtype="<f8") if vectors else np.empty((0, len(names)), "<f8")
    bodies: list[str] = []
    start = 0
    while start < len(rows):
        # grow the chunk while it fits (a batch of 100 with 44 features is ~50 KB: one)
        end = len(rows)
        while True:
            chunk = rows[start:end]
            used = [r["fi"] for r in chunk if "fi" in r]
            part = [{**r, "fi": r["fi"] - used[0]} if "fi" in r else r for r in chunk]
            packed = matrix[used[0] : used[-1] + 1] if used else matrix[:0]
            body = json.dumps(
                {
                    "v": VERSION,
                    "names": list(names),
                    "fm": base64.b64encode(packed.tobytes()).decode("ascii"),
                    "points": part,
                },
                separators=(",", ":"),
            )
            # json.dumps writes ASCII: its length in characters is its length in bytes
            if len(body) <= MAX_MESSAGE_BYTES or end - start == 1:
                break
            end = start + max(1, (end - start) // 2)
        bodies.append(body)
        start = end
    return bodies


def decode(body: str) -> list[ConfidencePoint]:
    """The points of one message; raises ValueError on a malformed body."""
    try:
        msg = json.loads(body)
        if msg.get("v") != VERSION:
            raise ValueError(f"history message version {msg.get('v')!r}")
        names = list(msg.get("names") or [])
        raw = base64.b64decode(msg.get("fm") or "")
        matrix = np.frombuffer(raw, dtype="<f8").reshape(-1, len(names)) if names else None
        out = []
        for r in msg["points"]:
            features: dict[str, float | None] | None = None
            if "fi" in r and matrix is not None:
                features = dict(zip(names, matrix[int(r["fi"])].tolist(), strict=True))
            elif "fd" in r:
                features = {str(k): _float(v) for k, v in r["fd"].items()}
            out.append(
                ConfidencePoint(
                    symbol=str(r["sy"]),
                    strategy=str(r["st"]),
                    ts_ms=int(r["ts"]),
                    win_probability=float(r["p"]),
                    prediction=str(r["pr"]),
                    threshold=float(r["th"]),
                    model_type=str(r["mt"]),
                    model_version=str(r["mv"]),
                    data_source=str(r["ds"]),
                    count=int(r.get("n", 1)),
                    min_probability=None if r.get("lo") is None else float(r["lo"]),
                    max_probability=None if r.get("hi") is None else float(r["hi"]),
                    trade=str(r.get("tr", "")),
                    features=features,
                )
            )
        return out
    except (KeyError, TypeError, AttributeError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed history message: {exc}") from exc


class QueuedHistoryRepository:
    """magic8.domain.ports.HistoryRepository: writes through the queue, reads the table."""

    def __init__(
        self,
        queue_url: str,
        table: DynamoHistoryRepository,
        sqs: Any,
        budget_s: float = 1.0,
    ) -> None:
        self.queue_url = queue_url
        self.table = table
        self.sqs = sqs
        self.budget_s = budget_s
        self.sent = 0  # messages SQS accepted
        self.late_sends = 0
        self.failed_sends = 0
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="history-send")
        self._pending: list[Future[Any]] = []

    def record(self, points: Sequence[ConfidencePoint]) -> int:
        """Start the hand-over of the points (one SendMessage) and return their count; the
        caller waits for it in settle()."""
        if not points:
            return 0
        for body in encode(points):
            self._pending.append(self._pool.submit(self._send, body))
        return len(points)

    def _send(self, body: str) -> Any:
        out = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        self.sent += 1
        return out

    def settle(self, timeout_s: float | None = None) -> int:
        """Wait for the sends started by record (at most the budget); returns how many
        finished. A failed send is logged and counted (history is best effort); one still
        running after the budget is left to finish."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        done, late = wait(pending, timeout=self.budget_s if timeout_s is None else timeout_s)
        for f in done:
            exc = f.exception()
            if exc is not None:
                self.failed_sends += 1
                log.warning("confidence history hand-over failed: %s", exc)
        if late:
            self.late_sends += len(late)
            log.warning("confidence history hand-over still running after the budget")
        return len(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.table.close()

    # --- reads: the table ---------------------------------------------------------------

    def query(self, series: str, start_ms: int, end_ms: int) -> list[ConfidencePoint]:
        return self.table.query(series, start_ms, end_ms)

    def trends(self, hours: float, now_ms: int, series: Sequence[str] | None = None) -> list[Trend]:
        return self.table.trends(hours, now_ms, series)
