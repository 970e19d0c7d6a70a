"""The two gap/backfill races the Databento resilience scenario found, reproduced
deterministically (each interleaving is driven by hand, no thread timing):

1. a trade at a gap's end is carried by both the live stream and the backfill: whether the
   live copy is still in FlowIngest's buffer, or arrives only after the merge, it is
   counted once;
2. databento's reconnect callback and the new session's first record come in either order
   (TCP segmentation): the gap is counted once, and windows are released when its backfill
   is done (not held until the 60 s fallback).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import databento as db
import numpy as np
import pandas as pd
import pytest

from gateway_host.databento.session import DatabentoConfig, DatabentoSession
from magic8.domain.flow import PressureWindow
from magic8.flow.aggregator import PressureAggregator
from magic8.flow.backfill import Backfiller, DbnFileHistoricalSource
from magic8.flow.ingest import FlowIngest
from tests.integration.test_fake_databento import MBO

RECORDS = db.DBNStore.from_file(MBO).to_ndarray()
TRADES = np.flatnonzero(RECORDS["action"].view(np.uint8) == ord("T"))
GAP_FIRST = 4000  # live misses RECORDS[GAP_FIRST:RESUME]
RESUME = int(TRADES[np.searchsorted(TRADES, 4300)])  # the new session starts on a trade
END = RESUME + 200


def _objects(lo: int, hi: int) -> Iterator[Any]:
    """The records [lo, hi) as the live client delivers them (MBOMsg objects)."""
    return itertools.islice(iter(db.DBNStore.from_file(MBO)), lo, hi)


def _backfill() -> list[np.ndarray]:
    """The historical records for the gap, both ends included (as the session asks)."""
    ts = RECORDS["ts_event"]
    start, end = ts[GAP_FIRST - 1], ts[RESUME]
    return list(DbnFileHistoricalSource([MBO]).fetch(int(start), int(end)))


def _windows(windows: list[PressureWindow]) -> dict[tuple[int, str], tuple[float, ...]]:
    out: dict[tuple[int, str], tuple[float, ...]] = {}
    for w in windows:  # latest emission wins
        out[(w.instrument_id, w.window_start.isoformat())] = (
            w.total_trades,
            w.bid_volume,
            w.ask_volume,
            w.unknown_volume,
        )
    return out


def _uninterrupted(end: int = END) -> dict[tuple[int, str], tuple[float, ...]]:
    agg = PressureAggregator(lateness_seconds=30)
    out = agg.ingest(RECORDS[:end])
    return _windows(out + agg.flush())


def _live_ingest() -> tuple[FlowIngest, list[PressureWindow]]:
    out: list[PressureWindow] = []
    agg = PressureAggregator(lateness_seconds=30, track_keys=True)
    ingest = FlowIngest(agg, on_windows=out.extend, batch_records=1_000_000)
    for iid in np.unique(RECORDS["instrument_id"]):  # the live feed's symbol mappings
        ingest.instruments.add_symbol(int(iid), f"NQ {int(iid)}")
    return ingest, out


@pytest.mark.parametrize("arrival", ["buffered", "after_merge"])
def test_trade_at_gap_end_counted_once(arrival: str) -> None:
    assert RECORDS["action"][RESUME] == b"T"
    ingest, out = _live_ingest()
    ingest.on_mbo(RECORDS[:GAP_FIRST])  # before the disconnect
    ingest.hold(int(RECORDS["ts_event"][GAP_FIRST - 1]))
    if arrival == "buffered":
        # the new session's records (the gap-end trade first) wait in the live buffer
        for rec in _objects(RESUME, END):
            ingest.on_record(rec)
        for array in _backfill():
            ingest.on_mbo(array, source="backfill", dedupe=True)
    else:
        # the backfill merges before the live copy of the gap-end trade is received
        for array in _backfill():
            ingest.on_mbo(array, source="backfill", dedupe=True)
        for rec in _objects(RESUME, END):
            ingest.on_record(rec)
    ingest.release()
    ingest.flush()
    want = _uninterrupted()
    got = _windows(out)
    assert sum(v[0] for v in got.values()) == sum(v[0] for v in want.values())
    assert got == want
    assert ingest.aggregator.stats["duplicate_trades_dropped"] >= 1
    if arrival == "after_merge":
        assert ingest.aggregator.stats["duplicate_live_trades_dropped"] >= 1


def test_live_copies_dropped_once_per_backfilled_trade() -> None:
    """A backfilled trade drops one live copy; a second identical live record still counts
    (two identical trades in the feed stay two)."""
    trade = RECORDS[TRADES[10] : TRADES[10] + 1]
    agg = PressureAggregator(track_keys=True)
    agg.ingest(trade, source="backfill", dedupe=True)
    agg.ingest(trade)
    assert agg.stats["trades_counted"] == 1
    agg.ingest(trade)
    assert agg.stats["trades_counted"] == 2
    assert sum(w.total_trades for w in agg.flush()) == 2


def test_keys_kept_while_a_backfill_is_pending_however_far_the_feed_runs() -> None:
    """Retention is in event time: a fast feed (replayed, or catching up) runs hours past
    the gap before the backfill merges; the live keys at the gap's edges must survive."""
    ts = RECORDS["ts_event"]
    assert int(ts[-1]) - int(ts[RESUME]) > 2 * 3600 * 10**9  # well past the 1 h retention
    ingest, out = _live_ingest()
    ingest.on_mbo(RECORDS[:GAP_FIRST])
    ingest.hold(int(ts[GAP_FIRST - 1]))
    ingest.on_mbo(RECORDS[RESUME:])  # the rest of the day, before the backfill is back
    for array in _backfill():
        ingest.on_mbo(array, source="backfill", dedupe=True)
    ingest.release()
    ingest.flush()
    assert _windows(out) == _uninterrupted(len(RECORDS))
    assert ingest.aggregator.stats["duplicate_trades_dropped"] >= 1


class _Live(SimpleNamespace):
    session_id: str


def _session(backfiller: Backfiller | None = None) -> DatabentoSession:
    session = DatabentoSession(DatabentoConfig(mode="live"), backfiller=backfiller)
    session._live = _Live(session_id="1")
    for iid in np.unique(RECORDS["instrument_id"]):  # the live feed's symbol mappings
        session.ingest.instruments.add_symbol(int(iid), f"NQ {int(iid)}")
    return session


def _backfills_done(session: DatabentoSession) -> None:
    """Wait for the submitted backfills: the pool has one worker and runs them in order."""
    session._backfill_pool.submit(lambda: None).result(timeout=30)


def _reconnect(session: DatabentoSession) -> None:
    ts = RECORDS["ts_event"]
    session._on_reconnect(
        pd.Timestamp(int(ts[GAP_FIRST - 1]), tz="UTC"), pd.Timestamp(int(ts[RESUME]), tz="UTC")
    )


@pytest.mark.parametrize("first", ["callback", "record"])
def test_reconnect_gap_counted_once_in_either_order(first: str) -> None:
    session = _session(Backfiller(DbnFileHistoricalSource([MBO])))
    # with first == "callback" the backfill pool's one worker waits on this gate, so the gap
    # is seen outstanding before its backfill can run (no thread timing)
    gate = threading.Event()
    try:
        old, new = list(_objects(0, GAP_FIRST)), list(_objects(RESUME, END))
        for rec in old:
            session._on_record(rec)
        session._live.session_id = "2"  # the client reconnected
        if first == "callback":  # the new session's Metadata arrived in its own segment
            session._backfill_pool.submit(gate.wait, 30)
            _reconnect(session)
            assert session._gaps_outstanding == 1 and session.aggregator.held
            gate.set()
            _backfills_done(session)  # the backfill finishes before the first record
            assert session._gaps_outstanding == 0 and not session.aggregator.held
            session._on_record(new[0])
        else:  # Metadata and records in one segment: records dispatched first
            session._on_record(new[0])
            assert session._gaps_outstanding == 1 and session.aggregator.held
            _reconnect(session)
            _backfills_done(session)
        assert session._gaps_outstanding == 0, "the gap was counted twice"
        assert not session.aggregator.held, "windows held after the backfill"
        assert session._awaiting_reconnect_since is None
        for rec in new[1:]:
            session._on_record(rec)
        assert session._gaps_outstanding == 0 and not session.aggregator.held
        assert [g[2] for g in session.gaps] == ["reconnect"]
        assert session.backfills == {"done": 1}
        session.ingest.flush()
    finally:
        gate.set()  # a failed assertion must not leave the pool's worker waiting
        session._backfill_pool.shutdown(wait=True)
    # every window, as last emitted, equals the uninterrupted run's
    emitted: list[PressureWindow] = []
    emitted.extend(session._outbox.take(timeout=0)[0])
    assert _windows(emitted) == _uninterrupted()
