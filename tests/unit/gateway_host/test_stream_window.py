"""A simulated trading day through a stand-in databento.Live (driven by hand, simulated clock):

- streaming starts when the window opens and stops when it closes (no gap reported for the
  planned pause; the day's open windows are emitted at the close); no stream on Christmas;
- spend is estimated from the records and charged to the ledger; at the streaming budget
  the gateway says so, backfill stops first, and (when configured) the stream stops;
- a feed that delivers Databento heartbeats but no MBO turns unhealthy; MBO age per product;
- the gateway's EMF metrics carry the spend, the budget flag and the MBO age.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import databento as db
import pytest

from gateway_host.databento.config import DatabentoConfig
from gateway_host.databento.session import DatabentoSession
from gateway_host.databento.spend import SpendBudget, SpendTracker
from gateway_host.metrics import GatewayMetrics
from magic8.flow.backfill import Backfiller, DbnFileHistoricalSource, InMemoryBudgetLedger
from magic8.market_hours import ET, StreamingWindow
from tests.integration.test_fake_databento import DEFS, MBO


def et(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ET)


class SystemMsg:
    """What a Databento heartbeat looks like to the session (only its type name matters)."""


class FakeLive:
    """databento.Live as the session uses it; records are pushed by the test."""

    def __init__(self) -> None:
        self.callback: Callable[[Any], None] | None = None
        self.subscriptions: list[tuple[str, str]] = []
        self.closed = threading.Event()
        self.started = threading.Event()
        self.session_id = "1"

    def add_callback(self, cb: Callable[[Any], None], _err: Any = None) -> None:
        self.callback = cb

    def add_reconnect_callback(self, _cb: Any, _err: Any = None) -> None:
        pass

    def subscribe(self, dataset: str, schema: str, symbols: Any, stype_in: str) -> None:
        self.subscriptions.append((schema, stype_in))

    def start(self) -> None:
        self.started.set()

    def block_for_close(self, timeout: float | None = None) -> None:
        self.closed.wait(timeout)

    def stop(self) -> None:
        self.closed.set()

    def push(self, records: Iterator[Any]) -> int:
        n = 0
        for r in records:
            assert self.callback is not None
            self.callback(r)
            n += 1
        return n


class Rig:
    def __init__(self, now: datetime, **session_kw: Any) -> None:
        self.now = now
        self.lives: list[FakeLive] = []
        self.sent: list[Any] = []
        config = DatabentoConfig(
            mode="live",
            window_poll_s=0.02,
            pump_interval_s=0.02,
            idle_advance_seconds=None,
            stale_after_s=session_kw.pop("stale_after_s", 120.0),
        )
        self.session = DatabentoSession(
            config,
            producer=self,
            clock=lambda: self.now,
            live_factory=self._make,
            window=StreamingWindow(),
            **session_kw,
        )

    def _make(self) -> FakeLive:
        live = FakeLive()
        self.lives.append(live)
        return live

    # FlowProducer
    def send(self, windows: Any) -> int:
        ws = list(windows)
        self.sent.extend(ws)
        return len(ws)

    def flush(self) -> None:
        pass

    def until(self, cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def close(self) -> None:
        self.session.stop()
        self.session.flush()
        assert not any(t.is_alive() for t in self.session._threads)


def mbo(lo: int, hi: int) -> Iterator[Any]:
    return itertools.islice(iter(db.DBNStore.from_file(MBO)), lo, hi)


def definitions() -> Iterator[Any]:
    """The feed's instrument definitions (they arrive before market data; the ingest
    guard drops records of instruments it does not know)."""
    return iter(db.DBNStore.from_file(DEFS))


def test_streaming_starts_and_stops_with_the_window() -> None:
    rig = Rig(et(2026, 11, 23, 9, 0))  # Monday, before the open
    s = rig.session
    s.start()
    try:
        rig.until(lambda: s.state == "outside_window", "outside_window before the open")
        assert rig.lives == [] and s.healthy  # a planned pause is healthy
        assert s.window_facts()["start"] == et(2026, 11, 23, 9, 30).astimezone(UTC).isoformat()
        rig.now = et(2026, 11, 23, 9, 30)
        rig.until(lambda: s.state == "streaming", "streaming at 09:30")
        live = rig.lives[0]
        assert live.subscriptions == [("definition", "parent"), ("mbo", "parent")]
        live.push(definitions())
        assert live.push(mbo(0, 3000)) == 3000
        rig.now = et(2026, 11, 23, 16, 0)
        rig.until(lambda: s.state == "outside_window", "outside_window at 16:00")
        assert live.closed.is_set()
        assert s.window_opens == 1 and s.window_closes == 1
        assert s.gaps == [], "a planned pause is not a gap"
        # the day's open windows went out at the close, without a shutdown
        rig.until(lambda: len(rig.sent) == s.windows_emitted > 0, "the day's windows sent")
        assert s.aggregator.open_windows == 0
        # Christmas (a Friday): Globex closed, no stream; the next window is Monday
        rig.now = et(2026, 12, 25, 10, 0)
        time.sleep(0.1)
        assert s.state == "outside_window" and len(rig.lives) == 1
        assert s.window_facts()["start"] == et(2026, 12, 28, 9, 30).astimezone(UTC).isoformat()
    finally:
        rig.close()


def test_budget_reached_stops_backfill_then_streaming_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = InMemoryBudgetLedger()
    spend = SpendTracker(
        ledger,
        # 1 MB of records = $1: the budget is reached within the test
        SpendBudget(streaming_usd=0.05, usd_per_gb=1000.0, stop_streaming=True, persist_every_s=0),
        clock=lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
    )
    backfiller = Backfiller(DbnFileHistoricalSource([MBO]), ledger, daily_budget_usd=20.0)
    rig = Rig(et(2026, 11, 23, 10, 0), spend=spend, backfiller=backfiller)
    s = rig.session
    caplog.set_level(logging.INFO, logger="magic8")
    s.start()
    try:
        rig.until(lambda: s.state == "streaming", "streaming")
        rig.lives[0].push(mbo(0, 2000))  # 2000 x 56 B = 0.112 MB = $0.11 > $0.05
        rig.until(lambda: s.state == "over_budget", "over_budget")
        facts = s.health()["spend"]
        assert facts["streaming_over_budget"] and facts["backfill_stopped"]
        assert facts["streaming_stopped"] and facts["streaming_usd"] >= 0.05
        # charged to the ledger under the day's streaming key
        assert ledger.used("stream#2026-11-23") == pytest.approx(facts["streaming_usd"], rel=1e-3)
        assert rig.lives[0].closed.is_set() and s.healthy
        assert any("streaming budget reached" in r.getMessage() for r in caplog.records)
        # a gap now is not backfilled: backfill (the optional part) stopped first
        s._report_gap(1, 2, "test")
        rig.until(lambda: s._gaps_outstanding == 0, "gap done")
        assert s.backfills == {"skipped_streaming_budget": 1}
        assert ledger.used("2026-11-23") == 0.0  # nothing spent on backfill
        # the metrics say so
        out = io.StringIO()
        m = GatewayMetrics(lambda: {"ib": {"state": "disabled"}, "databento": s.health()}, out=out)
        m.emit()
        line = json.loads(out.getvalue())
        assert line["BudgetExceeded"] == 1.0 and line["StreamingSpendUsd"] >= 0.05
        assert line["StreamingBudgetUsd"] == 0.05 and line["BackfillBudgetUsd"] == 20.0
        names = {x["Name"] for x in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert {"BudgetExceeded", "StreamingSpendUsd", "ProducerBacklog"} <= names
    finally:
        rig.close()


def test_heartbeats_without_mbo_turn_the_stream_unhealthy() -> None:
    rig = Rig(et(2026, 11, 23, 10, 0), stale_after_s=0.3)
    s = rig.session
    s.start()
    try:
        rig.until(lambda: s.state == "streaming", "streaming")
        live = rig.lives[0]
        live.push(mbo(0, 500))
        assert s.healthy and s.mbo_age_s() is not None
        ages = s.mbo_age_by_product()
        assert ages and all(v >= 0 for v in ages.values())
        # from now on only Databento heartbeats: the record clock ticks, the MBO one does not
        stop_beats = threading.Event()

        def beats() -> None:
            while not stop_beats.wait(0.02):
                live.push(iter([SystemMsg()]))

        t = threading.Thread(target=beats)
        t.start()
        try:
            rig.until(lambda: not s.healthy, "unhealthy without MBO")
            assert s.state == "streaming"  # connected, heartbeats flowing, and still unhealthy
            assert (s.mbo_age_s() or 0) >= 0.3
            # in the window, the metric carries the MBO age for the no-data alarm
            m = GatewayMetrics(lambda: {"ib": {}, "databento": s.health()}, out=io.StringIO())
            assert m.values()["MboAgeSeconds"] >= 0.3
        finally:
            stop_beats.set()
            t.join(5)
        live.push(mbo(500, 600))
        assert s.healthy
    finally:
        rig.close()


def test_nq_front_month_bars_stream_in_the_same_window_to_the_bar_store() -> None:
    """With a bar sink, the live session also subscribes to the NQ futures front month
    (ohlcv-1m, continuous NQ.c.0) inside the window; its 1-minute bars become 5-minute bars
    written through the sink; the window's close flushes the last (complete) bar."""
    import databento_dbn as dbn

    from magic8.domain.bars import Bar

    written: list[Bar] = []
    rig = Rig(et(2026, 11, 23, 9, 30), bar_sink=written.extend)
    s = rig.session
    s.start()
    try:
        rig.until(lambda: s.state == "streaming", "streaming at 09:30")
        live = rig.lives[0]
        assert live.subscriptions == [
            ("definition", "parent"),
            ("mbo", "parent"),
            ("ohlcv-1m", "continuous"),
        ]
        open_ns = int(et(2026, 11, 23, 9, 30).timestamp()) * 1_000_000_000
        px = 20_000 * 1_000_000_000
        minutes = [
            dbn.OHLCVMsg(
                dbn.RType.OHLCV_1M, 1, 42, open_ns + m * 60_000_000_000, px, px + m, px - m, px, 10
            )
            for m in range(10)
        ]
        assert live.push(iter(minutes)) == 10
        assert written[-1].start == et(2026, 11, 23, 9, 35) and not written[-1].complete
        assert [b.start for b in written if b.complete] == [et(2026, 11, 23, 9, 30)]
        rig.now = et(2026, 11, 23, 16, 0)
        rig.until(lambda: s.state == "outside_window", "outside_window at 16:00")
        last = written[-1]
        assert last.start == et(2026, 11, 23, 9, 35) and last.complete and last.volume == 50
        health = s.health()["futures"]
        assert health["records"] == 10 and health["errors"] == 0
    finally:
        rig.close()
    # no sink: no futures subscription
    plain = Rig(et(2026, 11, 23, 10, 0))
    plain.session.start()
    try:
        plain.until(lambda: plain.session.state == "streaming", "streaming")
        assert ("ohlcv-1m", "continuous") not in plain.lives[0].subscriptions
        assert plain.session.health()["futures"] is None
    finally:
        plain.close()
