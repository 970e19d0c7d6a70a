"""KinesisFlowProducer: pressure windows → the Kinesis `flow` stream (FlowProducer port).

- PutRecords with at most 500 entries and 5 MB per call (each record ≤ 1 MB).
- Only the entries that failed (ErrorCode in the response) are retried, with exponential
  backoff and full jitter; a whole-call error keeps the whole batch pending.
- Order per partition key (the instrument id): a call carries at most one record per key,
  so a later record of a key can never succeed while an earlier one failed; the next
  record of a key goes out only after the previous one was accepted.
- Never drops: records that still fail after `max_attempts` rounds stay pending (counted in
  `stats["pending"]`) and go out with the next send/flush.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from magic8.domain.flow import PressureWindow

log = logging.getLogger("magic8.kinesis_flow")

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024


@dataclass
class _Entry:
    order: int
    key: str
    data: bytes
    attempts: int = 0

    @property
    def size(self) -> int:
        return len(self.data) + len(self.key.encode())


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
    ) -> None:
        self.stream_name = stream_name
        self._client = client
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._queues: dict[str, deque[_Entry]] = {}
        self._counter = itertools.count()
        self.stats: Counter[str] = Counter()

    @property
    def client(self) -> Any:
        if self._client is None:
            from magic8.adapters.aws import client

            self._client = client("kinesis")
        return self._client

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    # -- FlowProducer ------------------------------------------------------------------

    def send(self, windows: Iterable[PressureWindow]) -> int:
        """Queue windows and deliver everything pending; returns records accepted now."""
        for w in windows:
            self.enqueue(w.partition_key(), w.model_dump_json().encode())
        return self._deliver()

    def flush(self) -> None:
        self._deliver()
        if self.pending:
            log.error("kinesis: %d flow records still pending after flush", self.pending)

    # -- internals ---------------------------------------------------------------------

    def enqueue(self, key: str, data: bytes) -> None:
        if len(data) + len(key.encode()) > MAX_RECORD_BYTES:
            raise ValueError(f"flow record for key {key} exceeds 1 MB ({len(data)} bytes)")
        self._queues.setdefault(key, deque()).append(_Entry(next(self._counter), key, data))
        self.stats["enqueued"] += 1

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
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** max(attempt - 1, 0)))
        delay = self._rng.uniform(0, cap)  # full jitter
        self.stats["backoffs"] += 1
        if delay > 0:
            self._sleep(delay)

    def _deliver(self) -> int:
        accepted = 0
        failed_rounds = 0
        while self.pending:
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
                if not self._queues[e.key]:
                    del self._queues[e.key]
                self.stats["sent"] += 1
                accepted += 1
            if len(results) < len(batch):  # malformed response: keep the rest pending
                any_failed = True
            if any_failed:
                failed_rounds += 1
                if failed_rounds >= self.max_attempts:
                    log.error(
                        "kinesis: giving up for now after %d rounds; %d records pending",
                        failed_rounds,
                        self.pending,
                    )
                    break
                self._backoff(failed_rounds)
            else:
                failed_rounds = 0
        self.stats["pending"] = self.pending
        return accepted
