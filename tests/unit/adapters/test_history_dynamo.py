"""The history adapter's write path against a fake DynamoDB client (no network)."""

from __future__ import annotations

import threading
from typing import Any

from magic8.adapters.history_dynamo import DynamoHistoryRepository, _point
from magic8.domain.confidence import ConfidencePoint, all_series


class FakeDdb:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.items: list[dict[str, Any]] = []
        self.gate = gate
        self.lock = threading.Lock()

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.wait()
        (requests,) = RequestItems.values()
        with self.lock:
            self.calls.append(len(requests))
            self.items.extend(r["PutRequest"]["Item"] for r in requests)
        return {}


def _pt(series: str, p: float = 0.6, ts: int = 1_800_000_000_000) -> ConfidencePoint:
    sym, strat = series.split("#")
    return ConfidencePoint(
        sym, strat, ts, p, "WIN", 0.5, "default", "v1", "seed", 7, p - 0.1, p + 0.1
    )


def test_one_point_per_series_is_one_batch_write_item() -> None:
    ddb = FakeDdb()
    repo = DynamoHistoryRepository("h", ddb=ddb)
    assert len(all_series()) <= 25
    assert repo.record([_pt(s) for s in all_series()]) == len(all_series())
    assert ddb.calls == [len(all_series())]
    back = _point(ddb.items[0])
    assert (back.count, back.min_probability, back.max_probability) == (7, 0.5, 0.7)
    repo.close()


def test_more_than_25_items_go_in_concurrent_calls_of_25() -> None:
    ddb = FakeDdb()
    repo = DynamoHistoryRepository("h", ddb=ddb)
    assert repo.record([_pt("SPX#Butterfly", ts=1_800_000_000_000 + i) for i in range(60)]) == 60
    assert sorted(ddb.calls) == [10, 25, 25]
    repo.close()


def test_a_slow_write_does_not_hold_the_caller_past_its_budget() -> None:
    gate = threading.Event()
    ddb = FakeDdb(gate)
    repo = DynamoHistoryRepository("h", ddb=ddb, write_budget_s=0.01)
    try:
        # the write is blocked until the gate opens: record returns without it
        assert repo.record([_pt("SPX#Butterfly")]) == 0
        assert repo.late_writes == 1 and ddb.calls == []
    finally:
        gate.set()
        repo.close()
    assert ddb.calls == [1]  # and the write still happened


def test_items_written_before_the_summary_fields_still_read() -> None:
    ddb = FakeDdb()
    repo = DynamoHistoryRepository("h", ddb=ddb)
    repo.record([_pt("SPX#Sonar")])
    repo.close()
    item = {k: v for k, v in ddb.items[0].items() if k not in ("count", "min_probability")}
    old = _point(item)
    assert old.count == 1 and old.min_probability is None and old.max_probability == 0.7
