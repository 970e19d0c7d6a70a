"""FlowIngest (the shared live/replay path), sequence gaps, replay pacing, backfill budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from magic8.flow.backfill import Backfiller, InMemoryBudgetLedger
from magic8.flow.ingest import MBO_DTYPE, FlowIngest, SequenceGapDetector
from magic8.flow.replay import Pacer, dbn_files
from tests.unit.flow.test_aggregator import T0, mbo

S = 1_000_000_000


def test_sequence_gap_detector_off_by_default_and_forward_jumps_only() -> None:
    a = mbo([(1, i, "A", "B", 1, 1.0) for i in range(6)])
    a["sequence"] = [1, 2, 3, 10, 11, 5]  # a jump of 7, then a reset
    assert SequenceGapDetector().check(a) == []
    det = SequenceGapDetector(max_jump=1)
    assert det.check(a) == [(T0 + 2 * S, T0 + 3 * S)]
    assert det.resets == 1
    b = mbo([(1, 9, "A", "B", 1, 1.0)])
    b["sequence"] = [8]  # continues from 5 (the last seen) with a jump of 3
    assert det.check(b) == [(T0 + 5 * S, T0 + 9 * S)]


def test_ingest_reports_sequence_gaps() -> None:
    gaps: list[tuple[int, int, str]] = []
    ingest = FlowIngest(on_gap=lambda s, e, r: gaps.append((s, e, r)), sequence_gap_threshold=5)
    ingest.instruments.add_symbol(1, "NQZ5 C20000")  # records of unknown instruments are dropped
    a = mbo([(1, i, "T", "B", 1, 1.0) for i in range(4)])
    a["sequence"] = [1, 2, 30, 31]
    ingest.on_mbo(a)
    assert gaps == [(T0 + 1 * S, T0 + 2 * S, "sequence")]


class Weird:
    """A record type the gateway has never heard of."""

    rtype = 250
    ts_event = 0


class Broken:
    """An MBO record that cannot be encoded."""

    def __bytes__(self) -> bytes:
        raise ValueError("boom")


Broken.__name__ = "MBOMsg"


def test_on_record_counts_and_never_raises() -> None:
    ingest = FlowIngest(batch_records=2)
    ingest.instruments.add_symbol(1, "NQZ5 C20000")  # records of unknown instruments are dropped
    ingest.on_record(Weird())
    ingest.on_record(Broken())
    assert ingest.skipped == {"Weird": 1, "MBOMsg": 1}
    assert ingest.errors and "boom" in ingest.errors[0]
    # live MBO objects are buffered as bytes and aggregated as one array
    windows = []
    ingest.on_windows = windows.extend
    arr = mbo([(1, 1, "T", "B", 3, 1.0), (1, 2, "F", "A", 3, 1.0), (1, 400, "A", "B", 1, 1.0)])

    class Raw:
        def __init__(self, b: bytes) -> None:
            self.b = b

        def __bytes__(self) -> bytes:
            return self.b

    Raw.__name__ = "MBOMsg"
    for rec in arr:
        ingest.on_record(Raw(rec.tobytes()))
    ingest.flush()
    assert ingest.seen["MBOMsg"] == 4 and ingest.used["MBOMsg"] == 3 and len(windows) == 1
    assert windows[0].ask_volume == 3 and windows[0].total_trades == 1
    assert MBO_DTYPE.itemsize == 56


def test_pacer_follows_speed_and_caps_idle() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(speed=60.0, max_idle_seconds=1.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait_until(T0)
    pacer.wait_until(T0 + 60 * S)  # one session minute = one wall second at 60x
    assert now[0] == pytest.approx(1.0)
    pacer.wait_until(T0 + 3600 * S)  # an hour of silence: capped to 1 s
    assert now[0] == pytest.approx(2.0)
    ts = np.array([T0 + i * S for i in range(10)], dtype=np.uint64)
    spans = list(pacer.slices(ts))
    assert spans[0][0] == 0 and spans[-1][1] == 10
    assert list(Pacer().slices(ts)) == [(0, 10)]  # as fast as possible: one slice


def test_dbn_files_orders_days_and_definitions_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for day in ("day-2025-09-16", "day-2025-09-15"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "mbo.dbn.zst").write_bytes(b"")
        (tmp_path / day / "definition.dbn.zst").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    names = [f"{p.parent.name}/{p.name}" for p in dbn_files([tmp_path])]
    assert names == [
        "day-2025-09-15/definition.dbn.zst",
        "day-2025-09-15/mbo.dbn.zst",
        "day-2025-09-16/definition.dbn.zst",
        "day-2025-09-16/mbo.dbn.zst",
    ]
    with pytest.raises(FileNotFoundError):
        dbn_files([tmp_path / "missing"])


class FileLikeSource:
    def __init__(self, cost: float, fail: bool = False) -> None:
        self.cost = cost
        self.fail = fail
        self.fetched = 0

    def estimate_cost(self, start_ns: int, end_ns: int) -> float:
        if self.fail:
            raise ConnectionError("historical API down")
        return self.cost

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[np.ndarray]:
        self.fetched += 1
        yield mbo([(1, 1, "T", "B", 1, 1.0)])


def test_backfiller_budget_per_day() -> None:
    day = [datetime(2025, 9, 15, 15, tzinfo=UTC)]
    src = FileLikeSource(cost=2.0)
    bf = Backfiller(src, InMemoryBudgetLedger(), daily_budget_usd=5.0, clock=lambda: day[0])
    assert [bf.backfill(0, 1).status for _ in range(3)] == ["done", "done", "skipped_budget"]
    assert src.fetched == 2 and bf.budget_used() == 4.0
    day[0] = datetime(2025, 9, 16, 15, tzinfo=UTC)  # a new UTC day, a new budget
    assert bf.backfill(0, 1).status == "done"
    down = Backfiller(FileLikeSource(1.0, fail=True), InMemoryBudgetLedger())
    result = down.backfill(0, 1)
    assert result.status == "failed" and "down" in result.error
