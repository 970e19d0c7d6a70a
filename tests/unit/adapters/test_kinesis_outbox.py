"""Bounded memory, nothing lost: the flow producer against a throttled Kinesis.

- spill: at most `max_buffered` records in memory, the rest on disk, read back in order;
  traced memory stays under 4 MB while 20,000 windows wait for a throttled
  stream, and every window arrives once, in order per key;
- backpressure (no spill directory): `send` waits for room; memory stays bounded;
- shutdown while Kinesis is down: what was not accepted is persisted ahead of the spill
  and the next producer delivers it first;
- the DatabentoSession's bounded outbox: a replay against a throttled producer never
  holds more than `outbox_max_windows`, and delivers every window once.
"""

from __future__ import annotations

import json
import random
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway_host.databento.config import DatabentoConfig
from gateway_host.databento.outbox import Outbox
from gateway_host.databento.session import DatabentoSession
from magic8.adapters.kinesis_flow import KinesisFlowProducer
from magic8.adapters.spill import SpillQueue
from magic8.domain.flow import PressureWindow
from tests.factories import numbered_window

T0 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)
SAMPLE_DAY = (
    Path(__file__).resolve().parents[3]
    / "layers/shared/magic8_dev/data/sessions/sample/day-2025-09-16"
)


def window(iid: int, k: int) -> PressureWindow:
    return numbered_window(iid, k, T0, strike=20000.0 + iid)


class Throttled:
    """PutRecords that accepts at most `per_call` entries (the rest: throughput exceeded)."""

    def __init__(self, per_call: int, seed: int = 3) -> None:
        self.per_call = per_call
        self.accepted: list[tuple[str, str]] = []
        self.calls = 0
        self.down = False
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            take = 0 if self.down else self.rng.randint(0, self.per_call)
            out = []
            for i, r in enumerate(Records):
                if i < take:
                    self.accepted.append((r["PartitionKey"], json.loads(r["Data"])["window_start"]))
                    out.append({"SequenceNumber": str(len(self.accepted)), "ShardId": "s-0"})
                else:
                    out.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            return {"FailedRecordCount": len(Records) - take, "Records": out}


def stream_of(n_keys: int, n_windows: int) -> Iterator[PressureWindow]:
    for i in range(n_windows):
        yield window(i % n_keys, i // n_keys)


def assert_all_once_in_order(accepted: list[tuple[str, str]], n_keys: int, n: int) -> None:
    assert len(accepted) == n, "every window delivered exactly once"
    assert len(set(accepted)) == n
    by_key: dict[str, list[str]] = {}
    for k, start in accepted:
        by_key.setdefault(k, []).append(start)
    assert len(by_key) == n_keys
    for starts in by_key.values():
        assert starts == sorted(starts), "order per partition key kept"


def throttled_producer(kinesis: Throttled, **options: Any) -> KinesisFlowProducer:
    """A producer on the throttled stream that retries at once (no real sleeping)."""
    return KinesisFlowProducer(
        "flow", client=kinesis, max_attempts=2, sleep=lambda _s: None, **options
    )


def test_spill_keeps_memory_bounded_under_a_throttled_stream(tmp_path: Path) -> None:
    n_keys, n, bound = 200, 20_000, 1_000
    kinesis = Throttled(per_call=20)
    producer = throttled_producer(
        kinesis, max_buffered=bound, spill_dir=tmp_path / "spill", spill_segment_bytes=256 * 1024
    )
    windows = stream_of(n_keys, n)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        batch: list[PressureWindow] = []
        for w in windows:  # the gateway's sender hands over windows as they close
            batch.append(w)
            if len(batch) == 100:
                producer.send(batch)
                batch = []
        producer.send(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the stream could not keep up: most windows wait, on disk, not in memory
    assert producer.pending > n // 2
    assert producer.stats["spilled"] > n // 2
    assert producer.stats["max_buffered_seen"] <= bound
    # 20,000 windows are ~10 MB as JSON; the bounded producer's memory stays under 4 MB
    print(f"traced peak {(peak - base) / 1e6:.2f} MB")
    assert peak - base < 4 * 1024 * 1024, f"traced peak {(peak - base) / 1e6:.1f} MB"
    assert producer.oldest_age_s >= 0
    kinesis.per_call = 500  # the stream catches up
    producer.flush_timeout_s = 600
    producer.flush()
    assert producer.pending == 0 and producer.stats["spill_pending"] == 0
    assert_all_once_in_order(kinesis.accepted, n_keys, n)
    assert not list((tmp_path / "spill").glob("*.spill")), "drained segments are deleted"


def test_backpressure_without_a_spill_directory_bounds_memory() -> None:
    n_keys, n, bound = 50, 3_000, 200
    kinesis = Throttled(per_call=30)
    producer = throttled_producer(kinesis, max_buffered=bound)
    windows = list(stream_of(n_keys, n))
    for i in range(0, n, 100):
        producer.send(windows[i : i + 100])
        assert producer.pending <= bound
    assert producer.stats["backpressure_waits"] > 0
    assert producer.stats["max_buffered_seen"] <= bound
    producer.flush_timeout_s = 600
    producer.flush()
    assert_all_once_in_order(kinesis.accepted, n_keys, n)


def test_shutdown_while_kinesis_is_down_persists_and_the_next_run_delivers_first(
    tmp_path: Path,
) -> None:
    n_keys, n, bound = 40, 2_000, 300
    kinesis = Throttled(per_call=50)
    kinesis.down = True
    spill = tmp_path / "spill"
    first = KinesisFlowProducer(
        "flow",
        client=kinesis,
        max_attempts=1,
        sleep=lambda _s: None,
        max_buffered=bound,
        spill_dir=spill,
        flush_timeout_s=0.0,
    )
    windows = list(stream_of(n_keys, n))
    first.send(windows[: n // 2])
    kinesis.down = False
    first.send(windows[n // 2 : n // 2 + 100])  # some go out
    kinesis.down = True
    first.send(windows[n // 2 + 100 :])
    delivered_before = len(kinesis.accepted)
    assert 0 < delivered_before < n
    first.flush()  # deadline 0: nothing more goes out; memory is persisted ahead of the spill
    assert first.stats["persisted_at_exit"] > 0
    assert first.pending == n - delivered_before
    # the next process starts on the same directory and delivers everything, in order
    kinesis.down = False
    second = KinesisFlowProducer(
        "flow", client=kinesis, sleep=lambda _s: None, max_buffered=bound, spill_dir=spill
    )
    assert second.pending == n - delivered_before
    second.flush_timeout_s = 600
    second.flush()
    assert_all_once_in_order(kinesis.accepted, n_keys, n)


def test_spill_queue_is_fifo_across_segments_and_push_front(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path, segment_bytes=200)
    for i in range(50):
        q.append(f"k{i % 3}", f"r{i}".encode(), float(i))
    assert q.count == 50 and len(list(tmp_path.glob("*.spill"))) > 3
    assert q.oldest_at == 0.0
    got = q.pop(7)
    assert [d for _, d, _ in got] == [f"r{i}".encode() for i in range(7)]
    assert q.oldest_at == 7.0
    q.push_front([("k", b"early", -1.0)])
    again = SpillQueue(tmp_path, segment_bytes=200)
    rest = again.pop(1000)
    assert [d for _, d, _ in rest] == [b"early"] + [f"r{i}".encode() for i in range(7, 50)]
    assert again.count == 0 and again.oldest_at is None


def test_outbox_waits_when_full_and_never_when_told_not_to() -> None:
    waiting = threading.Event()
    ok_to_wait = [True]
    box: Outbox[int] = Outbox(3, should_wait=lambda: ok_to_wait[0])
    box.put([1, 2, 3])
    t = threading.Thread(target=lambda: (waiting.set(), box.put([4])))
    t.start()
    waiting.wait(5)
    items, closed = box.take(timeout=5)
    t.join(5)
    assert not t.is_alive()
    rest, _ = box.take(timeout=5)
    assert items + rest == [1, 2, 3, 4] and not closed
    ok_to_wait[0] = False  # stopping: put never blocks
    box.put([5, 6, 7])
    box.put([8])
    assert len(box) == 4 and box.max_seen == 4 and box.max_batch == 3
    box.close()
    assert box.take(timeout=0) == ([5, 6, 7, 8], True)


@pytest.mark.parametrize("spill", [True, False], ids=["spill", "backpressure"])
def test_replay_through_a_throttled_producer_keeps_the_outbox_bounded(
    tmp_path: Path, spill: bool
) -> None:
    kinesis = Throttled(per_call=200)
    producer = throttled_producer(
        kinesis,
        max_buffered=300,
        spill_dir=tmp_path / "spill" if spill else None,
        flush_timeout_s=120,
    )
    config = DatabentoConfig(mode="replay", replay_paths=(str(SAMPLE_DAY),), outbox_max_windows=500)
    session = DatabentoSession(config, producer=producer)
    session.start()
    try:
        assert session.wait_replay(120)
    finally:
        session.stop()
        session.flush()
    assert not any(t.is_alive() for t in session._threads)
    emitted = session.windows_emitted
    assert emitted > 1_000
    # the outbox may overshoot by one closing batch; never unbounded
    assert session._outbox.max_seen < 500 + session._outbox.max_batch
    assert producer.stats["max_buffered_seen"] <= 300
    assert session.windows_sent == emitted == len(kinesis.accepted)
    assert len(set(kinesis.accepted)) == emitted
