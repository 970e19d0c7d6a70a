"""PressureAggregator: T records by aggressor side, F never counted, windows by ts_event."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magic8.domain.flow import PressureWindow
from magic8.flow.aggregator import PressureAggregator, new_keys_mask, trade_keys
from magic8.flow.ingest import MBO_DTYPE
from magic8.flow.instruments import InstrumentMap, make_instrument

T0 = 1_757_943_000_000_000_000  # 2025-09-15 13:30 UTC (a multiple of 300 s)
S = 1_000_000_000


def mbo(rows: Sequence[tuple[int, int, str, str, int, float]]) -> np.ndarray:
    """rows: (instrument_id, ts_offset_s, action, side, size, price)."""
    a = np.zeros(len(rows), dtype=MBO_DTYPE)
    for i, (iid, off, action, side, size, price) in enumerate(rows):
        a[i]["length"] = MBO_DTYPE.itemsize // 4
        a[i]["rtype"] = 160
        a[i]["instrument_id"] = iid
        a[i]["ts_event"] = T0 + int(off * S)
        a[i]["ts_recv"] = T0 + int(off * S)
        a[i]["action"] = action.encode()
        a[i]["side"] = side.encode()
        a[i]["size"] = size
        a[i]["price"] = int(price * 1e9)
        a[i]["sequence"] = i + 1
        a[i]["order_id"] = 1000 + i
    return a


def instruments() -> InstrumentMap:
    return InstrumentMap(
        [
            make_instrument(1, "NQZ5 C20100", "C", 20100 * S, T0, "NQZ5", 20 * S),
            make_instrument(2, "NQZ5 P20100", "P", 20100 * S, T0, "NQZ5", 20 * S),
        ]
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # (bid_volume, ask_volume, unknown_volume, trades)
        ([(1, 10, "T", "B", 5, 10.0)], (0, 5, 0, 1)),
        ([(1, 10, "T", "A", 3, 10.0)], (3, 0, 0, 1)),
        ([(1, 10, "T", "N", 7, 10.0)], (0, 0, 7, 1)),
        # F is the resting side of the same trade: never counted
        ([(1, 10, "T", "B", 5, 10.0), (1, 10, "F", "A", 5, 10.0)], (0, 5, 0, 1)),
        # adds / cancels / modifies / clears do not count
        (
            [(1, 1, "A", "B", 9, 10.0), (1, 2, "C", "B", 9, 10.0), (1, 3, "M", "A", 1, 10.0)],
            None,
        ),
        ([(1, 1, "T", "B", 2, 10.0), (1, 299, "T", "A", 4, 10.0)], (4, 2, 0, 2)),
    ],
)
def test_sides_and_fills(
    rows: list[tuple[int, int, str, str, int, float]],
    expected: tuple[int, int, int, int] | None,
) -> None:
    agg = PressureAggregator(instruments())
    assert agg.ingest(mbo(rows)) == []  # nothing closed yet
    windows = agg.flush()
    if expected is None:
        assert windows == []
        return
    (w,) = windows
    assert (w.bid_volume, w.ask_volume, w.unknown_volume, w.total_trades) == expected
    assert w.strike == 20100.0 and w.option_type == "C" and w.underlying == "NQZ5"


def test_window_fields() -> None:
    agg = PressureAggregator(instruments(), source="replay")
    agg.ingest(mbo([(1, 5, "T", "B", 10, 12.5), (1, 6, "T", "A", 2, 12.0)]))
    (w,) = agg.flush()
    assert w.window_start.timestamp() == T0 / S
    assert (w.window_end - w.window_start).total_seconds() == 300
    assert w.largest_trade == 10 and w.avg_trade_size == 6
    assert w.notional_premium == pytest.approx((10 * 12.5 + 2 * 12.0) * 20)
    assert w.pressure_ratio == pytest.approx(8 / 12)
    assert w.dominant_side == "BUY" and w.source == "replay"
    assert (w.first_sequence, w.last_sequence) == (1, 2)


def test_windows_close_when_time_passes_end_plus_lateness() -> None:
    agg = PressureAggregator(instruments(), lateness_seconds=30)
    assert agg.ingest(mbo([(1, 10, "T", "B", 1, 1.0), (2, 20, "T", "A", 1, 1.0)])) == []
    assert agg.ingest(mbo([(1, 310, "A", "B", 1, 1.0)])) == []  # past end, within lateness
    closed = agg.ingest(mbo([(1, 330, "A", "B", 1, 1.0)]))
    assert sorted(w.instrument_id for w in closed) == [1, 2]
    assert agg.open_windows == 0


def test_future_without_definition_and_unknown_instrument() -> None:
    m = InstrumentMap()
    m.add_symbol(5, "NQZ5")
    agg = PressureAggregator(m)
    agg.ingest(mbo([(5, 1, "T", "B", 1, 20000.0), (6, 1, "T", "A", 1, 1.0)]))
    by_id = {w.instrument_id: w for w in agg.flush()}
    assert by_id[5].strike is None and by_id[5].option_type is None
    assert by_id[5].underlying == "NQZ5"
    assert by_id[6].underlying == "UNKNOWN"


def test_backfill_merge_counts_once() -> None:
    rows = [(1, i, "T", "B" if i % 3 else "A", 1 + i % 4, 10.0) for i in range(0, 290, 7)]
    whole = mbo(rows)
    ref = PressureAggregator(instruments())
    ref.ingest(whole)
    (expected,) = ref.flush()

    agg = PressureAggregator(instruments())
    agg.ingest(whole[:20])  # live, then the connection drops
    agg.hold(int(whole["ts_event"][19]))
    agg.ingest(whole[30:])  # live again after reconnect
    agg.ingest(whole[15:35], source="backfill", dedupe=True)  # overlapping backfill
    assert agg.stats["duplicate_trades_dropped"] == 10
    agg.release()
    (got,) = agg.flush()
    assert got.model_dump(exclude={"source"}) == expected.model_dump(exclude={"source"})
    assert got.source == "backfill"


def test_hold_keeps_windows_open_until_release() -> None:
    agg = PressureAggregator(instruments())
    agg.ingest(mbo([(1, 10, "T", "B", 1, 1.0)]))
    agg.hold(T0 + 100 * S)
    assert agg.ingest(mbo([(1, 900, "A", "B", 1, 1.0)])) == []
    assert [w.instrument_id for w in agg.release()] == [1]


def test_late_trade_reemits_closed_window() -> None:
    agg = PressureAggregator(instruments())
    agg.ingest(mbo([(1, 10, "T", "B", 1, 1.0)]))
    (first,) = agg.ingest(mbo([(1, 400, "A", "B", 1, 1.0)]))
    (again,) = agg.ingest(mbo([(1, 20, "T", "A", 2, 1.0)]))
    assert again.window_key == first.window_key
    assert (again.ask_volume, again.bid_volume) == (1, 2)
    assert agg.stats["late_trades"] == 1


def test_multiset_dedupe_keeps_identical_trades() -> None:
    existing = np.sort(np.array([5, 5, 7], dtype=np.uint64))
    cand = np.array([5, 5, 5, 7, 8], dtype=np.uint64)
    assert new_keys_mask(existing, cand).tolist() == [False, False, True, False, True]
    a = mbo([(1, 1, "T", "B", 1, 1.0)] * 2)
    a["sequence"] = 1
    a["order_id"] = 1
    k = trade_keys(a)
    assert k[0] == k[1]


row = st.tuples(
    st.integers(1, 3),
    st.floats(0, 1500, allow_nan=False),
    st.sampled_from(["T", "F", "A", "C", "M", "R"]),
    st.sampled_from(["A", "B", "N"]),
    st.integers(0, 10_000),
    st.floats(0, 50_000, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(row, max_size=60), cut=st.integers(0, 60))
def test_properties_conservation_no_nan(
    rows: list[tuple[int, float, str, str, int, float]], cut: int
) -> None:
    rows = sorted(rows, key=lambda r: r[1])
    a = mbo(rows)  # type: ignore[arg-type]
    agg = PressureAggregator(instruments(), lateness_seconds=0)
    windows = agg.ingest(a[:cut]) + agg.ingest(a[cut:]) + agg.flush()
    trades = a[a["action"] == b"T"]
    assert sum(w.total_volume for w in windows) == pytest.approx(float(trades["size"].sum()))
    assert sum(w.total_trades for w in windows) == len(trades)
    assert sum(w.ask_volume for w in windows) == float(trades["size"][trades["side"] == b"B"].sum())
    assert sum(w.bid_volume for w in windows) == float(trades["size"][trades["side"] == b"A"].sum())
    for w in windows:
        for v in (w.bid_volume, w.ask_volume, w.notional_premium, w.pressure_ratio):
            assert math.isfinite(v)
        # emitted with model_construct: the full model validation must agree
        assert PressureWindow.model_validate_json(w.model_dump_json()) == w
        assert len({(w.instrument_id, w.window_start) for w in windows}) == len(windows)
