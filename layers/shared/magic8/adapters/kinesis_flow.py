"""KinesisFlowProducer: pressure windows → the Kinesis `flow` stream (FlowProducer port).

- PutRecords with at most 500 entries and 5 MB per call (each record ≤ 1 MB).
- Only the entries that failed (ErrorCode in the response) are retried, with exponential
  backoff and full jitter; a whole-call error keeps the whole batch pending.
- Order per partition key (the instrument id): a call carries at most one record per key,
  so a later record of a key can never succeed while an earlier one failed; the next
  record of a key goes out only after the previous one was accepted.
- Never drops: records that still fail after `max_attempts` rounds stay pending (counted in
  `stats["pending"]`) and go out with the next send/flush.
- Bounded memory: at most `max_buffered` records are held in memory. Beyond that, with a
  `spill_dir`, new records are appended to an on-disk FIFO (magic8.adapters.spill) and read
  back in order as memory drains (everything on disk is newer than everything in memory,
  so the order per key holds); without one, `send` applies backpressure: it keeps
  delivering (with backoff) until there is room, so the caller slows to Kinesis' pace.
- One owner: the producer is not thread-safe; one thread calls send/flush (the gateway's
  sender thread). Other threads may read `stats`, `pending` and `oldest_age_s` (plain
  numbers, updated by the owner).
- `flush()` delivers for at most `flush_timeout_s`; what is still pending then is written
  to the spill directory ahead of older spilled records (replayed first by the next run),
  or, without one, reported as `stats["undelivered_at_exit"]` and logged.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from magic8.adapters.spill import SpillQueue
from magic8.domain.flow import PressureWindow

log = logging.getLogger("magic8.kinesis_flow")

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
DEFAULT_MAX_BUFFERED = 20_000  # ~ 15 MB of windows in memory
STAT_KEYS = (
    "enqueued",
    "sent",
    "failed",
    "retried",
    "calls",
    "call_errors",
    "backoffs",
    "pending",
    "buffered",
    "spilled",
    "spill_pending",
    "refilled",
    "backpressure_waits",
    "max_buffered_seen",
    "persisted_at_exit",
    "undelivered_at_exit",
)


@dataclass
class _Entry:
    order: int
    key: str
    data: bytes
    enqueued_at: float = 0.0
    attempts: int = 0

    @property
    def size(self) -> int:
        return len(self.data) + len(self.key.encode())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: round n waits U(0, cap(n))."""

    base_s: float
    max_s: float

    def cap(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * (2 ** max(attempt - 1, 0)))


class KinesisFlowProducer:
    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        max_attempts: int = 8,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        spill_dir: str | Path | None = None,
        spill_segment_bytes: int = 16 * 1024 * 1024,
        flush_timeout_s: float = 15.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be >= 1")
        self.stream_name = stream_name
        self._client = client
        self.max_attempts = max_attempts
        self.backoff = Backoff(base_delay_s, max_delay_s)
        self.max_buffered = max_buffered
        self.flush_timeout_s = flush_timeout_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._monotonic = monotonic
        self._queues: dict[str, deque[_Entry]] = {}
        self._counter = itertools.count()
        self._buffered = 0
        self._spill = SpillQueue(spill_dir, spill_segment_bytes) if spill_dir is not None else None
        self._oldest_at: float | None = None
        self._wait_until: float | None = None
        # every key exists from the start: readers on other threads never see the dict grow
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        if self._spill is not None and self._spill.count:
            self._publish()

    @property
    def client(self) -> Any:
        if self._client is None:
            from magic8.adapters.aws import client

            self._client = client("kinesis")
        return self._client

    @property
    def pending(self) -> int:
        """Records not yet accepted: in memory + on disk."""
        return self._buffered + (self._spill.count if self._spill is not None else 0)

    @property
    def oldest_age_s(self) -> float:
        """Seconds since the oldest pending record was enqueued (0 when nothing pends)."""
        t = self._oldest_at
        return max(0.0, self._clock() - t) if t is not None else 0.0

    def interrupt(self) -> None:
        """Shutdown: wait for room at most `flush_timeout_s` more, then take records anyway
        (the overshoot is what the feed closed after the stop: bounded by the outbox)."""
        self._wait_until = self._monotonic() + self.flush_timeout_s

    # -- FlowProducer ------------------------------------------------------------------

    def send(self, windows: Iterable[PressureWindow]) -> int:
        """Queue windows and deliver what Kinesis takes now; returns records accepted now."""
        accepted = 0
        for w in windows:
            accepted += self._admit(w.partition_key(), w.model_dump_json().encode())
        accepted += self._deliver()
        return accepted

    def flush(self) -> None:
        """Deliver everything pending within `flush_timeout_s`; persist or report the rest."""
        deadline = self._monotonic() + self.flush_timeout_s
        while self.pending and self._monotonic() < deadline:
            self._deliver(deadline=deadline)
        if not self.pending:
            return
        if self._spill is not None:
            front = [
                (e.key, e.data, e.enqueued_at)
                for e in sorted(
                    (e for q in self._queues.values() for e in q), key=lambda e: e.order
                )
            ]
            self._queues.clear()
            self._buffered = 0
            self.stats["persisted_at_exit"] += self._spill.push_front(front)
            self._publish()
            log.warning(
                "kinesis: %d flow records not accepted within %.0fs; kept in %s for the next run",
                self._spill.count,
                self.flush_timeout_s,
                self._spill.dir,
            )
        else:
            self.stats["undelivered_at_exit"] = self.pending
            log.error(
                "kinesis: %d flow records still pending after flush (no spill directory)",
                self.pending,
            )

    # -- internals ---------------------------------------------------------------------

    def enqueue(self, key: str, data: bytes) -> None:
        """Add one record (memory, or disk when memory is full); never blocks, never drops."""
        if len(data) + len(key.encode()) > MAX_RECORD_BYTES:
            raise ValueError(f"flow record for key {key} exceeds 1 MB ({len(data)} bytes)")
        now = self._clock()
        self.stats["enqueued"] += 1
        spill = self._spill
        if spill is not None and (spill.count or self._buffered >= self.max_buffered):
            spill.append(key, data, now)
            self.stats["spilled"] += 1
        else:
            self._push(key, data, now)
        if self._oldest_at is None:
            self._oldest_at = now
        self.stats["buffered"] = self._buffered
        self.stats["spill_pending"] = spill.count if spill is not None else 0
        self.stats["pending"] = self.pending

    def _admit(self, key: str, data: bytes) -> int:
        """enqueue(), after waiting for room when memory is full and there is no disk."""
        accepted = 0
        if self._spill is None:
            failed_rounds = 0
            while self._buffered >= self.max_buffered and (
                self._wait_until is None or self._monotonic() < self._wait_until
            ):
                self.stats["backpressure_waits"] += 1
                got = self._deliver()
                accepted += got
                if not got:
                    failed_rounds += 1
                    self._backoff(failed_rounds)
                else:
                    failed_rounds = 0
        self.enqueue(key, data)
        return accepted

    def _push(self, key: str, data: bytes, enqueued_at: float) -> None:
        self._queues.setdefault(key, deque()).append(
            _Entry(next(self._counter), key, data, enqueued_at)
        )
        self._buffered += 1
        if self._buffered > self.stats["max_buffered_seen"]:
            self.stats["max_buffered_seen"] = self._buffered

    def _refill(self) -> None:
        """Move the oldest spilled records into memory once it has drained to half."""
        spill = self._spill
        if spill is None or not spill.count or self._buffered > self.max_buffered // 2:
            return
        records = spill.pop(self.max_buffered - self._buffered)
        for key, data, t in records:
            self._push(key, data, t)
        self.stats["refilled"] += len(records)

    def _publish(self) -> None:
        """Refresh the numbers other threads read (owner thread only)."""
        heads = [q[0].enqueued_at for q in self._queues.values() if q]
        spill = self._spill
        if not heads and spill is not None and spill.oldest_at is not None:
            heads.append(spill.oldest_at)
        self._oldest_at = min(heads) if heads else None
        self.stats["buffered"] = self._buffered
        self.stats["spill_pending"] = spill.count if spill is not None else 0
        self.stats["pending"] = self.pending

    def _next_batch(self) -> list[_Entry]:
        """The oldest pending record of each key, oldest first, within the call limits."""
        heads = sorted((q[0] for q in self._queues.values() if q), key=lambda e: e.order)
        batch: list[_Entry] = []
        size = 0
        for e in heads:
            if len(batch) >= MAX_RECORDS_PER_CALL or size + e.size > MAX_BYTES_PER_CALL:
                break
            batch.append(e)
            size += e.size
        return batch

    def _backoff(self, attempt: int) -> None:
        delay = self._rng.uniform(0, self.backoff.cap(attempt))  # full jitter
        self.stats["backoffs"] += 1
        if delay > 0:
            self._sleep(delay)

    def _deliver(self, deadline: float | None = None) -> int:
        accepted = 0
        failed_rounds = 0
        while self.pending:
            if deadline is not None and self._monotonic() >= deadline:
                break
            self._refill()
            batch = self._next_batch()
            if not batch:
                break
            self.stats["retried"] += sum(1 for e in batch if e.attempts > 0)
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"Data": e.data, "PartitionKey": e.key} for e in batch],
                )
                results = response.get("Records", [])
            except (ClientError, BotoCoreError) as exc:
                log.warning("kinesis: PutRecords failed (%s); %d records kept", exc, len(batch))
                self.stats["call_errors"] += 1
                results = [{"ErrorCode": "CallFailed"}] * len(batch)
            self.stats["calls"] += 1
            any_failed = False
            for e, r in zip(batch, results, strict=False):
                e.attempts += 1
                if r.get("ErrorCode"):
                    any_failed = True
                    self.stats["failed"] += 1
                    continue
                self._queues[e.key].popleft()
                self._buffered -= 1
                if not self._queues[e.key]:
                    del self._queues[e.key]
                self.stats["sent"] += 1
                accepted += 1
            if len(results) < len(batch):  # malformed response: keep the rest pending
                any_failed = True
            if any_failed:
                failed_rounds += 1
                if failed_rounds >= self.max_attempts:
                    log.warning(
                        "kinesis: giving up for now after %d rounds; %d records pending",
                        failed_rounds,
                        self.pending,
                    )
                    break
                self._backoff(failed_rounds)
            else:
                failed_rounds = 0
        self._publish()
        return accepted
