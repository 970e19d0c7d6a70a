"""ACCEPTANCE (shortened): the IFD scenario grid of `magic8 evaluate-ifd --grid`.

A few grid rows, one seed and three generated days each (the full grid: 15 rows x 6 seeds
of four days, bench/results/ifd_grid.json). Seeds differ from the ones the calibration was
fitted on.
"""

from __future__ import annotations

import pytest

from magic8_dev.ifd.grid import GRID_SEEDS, QUICK_DAYS, SCENARIOS, grid, table

QUICK_ROWS = ("default", "volume x10", "purity 0.7", "small single strike", "bait x4")


@pytest.fixture(scope="module")
def result() -> dict:
    rows = [s for s in SCENARIOS if s.name in QUICK_ROWS]
    out = grid(rows, seeds=GRID_SEEDS[:1], days=QUICK_DAYS, jobs=1)
    print()
    print(table(out))
    return out


def test_every_row_meets_recall_and_the_false_alarm_budget(result: dict) -> None:
    assert [r["scenario"] for r in result["rows"]] == list(QUICK_ROWS)
    for row in result["rows"]:
        assert row["episodes"] >= 3, row
        assert row["recall"] >= row["min_recall"], row
        # <= 1 false alert per underlying per 5 trading days (3 days here: at most 0)
        assert row["false_alerts_per_day"] <= 0.2, row


def test_alerts_come_early(result: dict) -> None:
    medians = [r["latency_median_s"] for r in result["rows"] if r["latency_median_s"]]
    assert medians
    # default-sized, 90%-pure flow is caught from an early window, minutes after it starts
    default = next(r for r in result["rows"] if r["scenario"] == "default")
    assert default["latency_median_s"] <= 4 * 60  # measured 3.4 min here, 3.0 on the full grid
    # measured worst cases here: <= 8.5 min (volume x10; full grid 15.6), 70%-pure flow
    # 9.6 (full grid 21.0, where even the oracle bound's worst exceeds 10 min; README)
    for r in result["rows"]:
        limit = 25 if r["scenario"] == "purity 0.7" else 15
        assert r["latency_max_s"] is not None and r["latency_max_s"] <= limit * 60, r
