"""Broker and feed faults (issue 8): the gateway recovers every time, and what it writes after
recovery is complete, counted against an uninterrupted run.

Everything goes through the wire-protocol test doubles with the unmodified client libraries:
IbSession (ib_async) against FakeTws writing snapshots to DynamoDB on the moto server, and
DatabentoSession (databento.Live) against FakeDatabentoGateway. One resilience-table row per
scenario; counts shrink under the quick budget (make test), grow under `--budget full`.

Row definitions (records in = what an uninterrupted run delivers, records out = what the
faulted run delivered and verified):
- IB disconnect storm: one fresh snapshot per symbol per phase (start + after each forced
  server-side disconnect); "fresh and complete" = written after the reconnection, with the
  full bar window, every completed bar equal to the fake's bar, and a last price the fake
  ticked after the reconnection.
- IB pacing 162s: consumer history requests; an answer counts when it has exactly the bars
  the fake serves for that duration.
- IB farm / 1101 cycles: one snapshot per symbol per recovery, carrying a price ticked
  after the recovery notice.
- Databento disconnects / slow reader: pressure windows; a window counts when it equals the
  uninterrupted run's window for the same instrument and start.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import databento as db
import numpy as np
import pytest

from gateway_host.databento.session import DatabentoConfig, DatabentoSession
from gateway_host.ib.pacing import SimulatedClock, max_in_any_window
from gateway_host.ib.session import IbSession
from magic8.adapters.budget_dynamo import DynamoBudgetLedger
from magic8.adapters.kinesis_flow import KinesisFlowProducer
from magic8.domain.flow import PressureWindow
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar
from magic8.domain.ports import FlowProducer
from magic8.flow.backfill import Backfiller, DbnFileHistoricalSource
from magic8_dev.local.provision import LocalResources
from magic8_dev.resilience.table import ResilienceRow, budget, record
from tests.fakes.fake_databento import FakeDatabentoGateway
from tests.fakes.fake_tws import FakeTws
from tests.integration.test_fake_databento import DEFS, KEY, MBO, ListProducer, comparable, key
from tests.integration.test_ib_session import (
    SYMBOLS,
    _FreezingGuard,
    item_bars,
    item_updated,
    read_items,
    started,
    until,
)
from tests.resilience.test_kinesis_faults import _read_stream

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-feed_faults")]

QUICK = budget() == "quick"
BAR_S = 300


def fully_subscribed(session: Any, tws: Any) -> bool:
    """Connected again with every symbol subscribed once (nothing lost, nothing doubled)."""
    return (
        session.state == "connected"
        and tws.subscribed_symbols() == set(SYMBOLS)
        and tws.active_subscriptions == len(SYMBOLS)
    )


def _bucket(ts: float) -> int:
    return int(ts) // BAR_S * BAR_S


# ------------------------------------------------------------------------------- IB helpers


def _prices_since(tws: FakeTws, symbol: str, since: float) -> set[float]:
    return {p for wall, sym, p in list(tws.tick_log) if sym == symbol and wall >= since}


def _snapshot_complete(
    tws: FakeTws, symbol: str, item: dict[str, Any], since: float, session_start: float
) -> str:
    """'' when the stored snapshot is fresh and complete, else why not."""
    if item_updated(item).timestamp() <= since:
        return "written before the recovery"
    bars = item_bars(item)
    if len(bars) != SNAPSHOT_BAR_WINDOW:
        return f"{len(bars)} bars"
    ts = [int(b[0]) for b in bars]
    if any(b - a != BAR_S for a, b in itertools.pairwise(ts)):
        return "bars not contiguous"
    if ts[-1] < _bucket(item_updated(item).timestamp()) - BAR_S:
        return "bar in progress missing"
    # bars completed before the session started are never touched by ticks: they must be
    # exactly what the fake serves
    for b in bars:
        if int(b[0]) < _bucket(session_start):
            want = tws.bar_at(symbol, int(b[0]))
            got = (int(b[0]), *(float(x) for x in b[1:6]))
            if got != tuple(float(x) for x in want):
                return f"bar {b[0]} differs: {got} != {want}"
    if float(item["last"]) not in _prices_since(tws, symbol, since):
        return f"last {item['last']} was not ticked after the recovery"
    return ""


async def _fresh_snapshots(
    table: str, tws: FakeTws, since: float, session_start: float, timeout: float
) -> dict[str, str]:
    """Wait (bounded) until every symbol has a complete snapshot written after `since`;
    returns symbol -> '' (complete) or the reason it is not."""
    verdict: dict[str, str] = {}

    async def all_complete() -> bool:
        items = await asyncio.to_thread(read_items, table)
        for sym in SYMBOLS:
            item = items.get(sym)
            verdict[sym] = (
                "no snapshot"
                if item is None
                else _snapshot_complete(tws, sym, item, since, session_start)
            )
        return not any(verdict.values())

    with contextlib.suppress(AssertionError):
        await until(all_complete, timeout, step=0.05)
    return verdict


# ------------------------------------------------------------------- 1. IB disconnect storm


def test_ib_disconnect_storm_reconnects_resubscribes_and_snapshots_complete(
    aws_resources: LocalResources,
) -> None:
    n = 5 if QUICK else 20
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[list[dict[str, str]], IbSession, FakeTws, bool]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        session_start = time.time()
        session = await started(table, tws)
        phases: list[dict[str, str]] = []
        recovered = True
        try:
            for phase in range(n + 1):
                if phase:
                    connects = session.connects
                    tws.disconnect_all()
                    try:
                        await until(lambda c=connects: session.connects == c + 1, 10)
                    except AssertionError:
                        recovered = False
                        break
                try:
                    await until(
                        lambda: fully_subscribed(session, tws),
                        10,
                    )
                except AssertionError:
                    recovered = False
                    break
                assert session.connected_at is not None
                since = session.connected_at.timestamp()
                phases.append(await _fresh_snapshots(table, tws, since, session_start, 10))
        finally:
            await session.stop()
            await tws.stop()
        return phases, session, tws, recovered

    phases, session, tws, recovered = asyncio.run(scenario())
    complete = sum(1 for p in phases for why in p.values() if not why)
    problems = {f"phase {i} {s}": why for i, p in enumerate(phases) for s, why in p.items() if why}
    per_symbol: dict[str, int] = defaultdict(int)
    for _, _, sym in tws.mkt_requests:
        per_symbol[sym] += 1
    row = record(
        ResilienceRow(
            scenario=f"IB disconnect storm ({n} server-side disconnects)",
            injected=session.disconnects,
            survived=recovered and session.reconnects == n and session.connects == n + 1,
            records_in=(n + 1) * len(SYMBOLS),
            records_out=complete,
            note=(
                "fresh complete snapshot per symbol per phase (moto DynamoDB); "
                f"{len(tws.historical_requests)} upstream history requests, "
                f"{tws.pacing_violations} pacing violations"
            ),
        )
    )
    assert recovered, "the session did not reconnect in time"
    assert not problems, problems
    assert session.disconnects == n and session.reconnects == n and session.connects == n + 1
    assert all(per_symbol[s] == n + 1 for s in SYMBOLS), per_symbol  # resubscribed every time
    # bars after a reconnect come from the guard's cache: no storm of history requests
    assert len(tws.historical_requests) <= 2 * len(SYMBOLS)
    assert tws.pacing_violations == 0
    assert row.nothing_lost


# ----------------------------------------------------- 2. IB pacing violations (162) + consumers


def test_ib_pacing_violations_interleaved_with_consumers_lose_no_request(
    aws_resources: LocalResources,
) -> None:
    consumers, per_consumer = (4, 15) if QUICK else (10, 50)
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[
        list[tuple[str, int, tuple[Bar, ...], float]], IbSession, FakeTws
    ]:
        # real IB limits on virtual time (15 s identical, 60 / 10 min, 5 per contract / 2 s,
        # 162 backoff 15 s doubling): the fake enforces the same rules on the same clock
        sim = SimulatedClock()
        tws = FakeTws(clock=sim.now, tick_interval=0.2)
        await tws.start()
        session = await started(table, tws, guard=_FreezingGuard(sim))
        answers: list[tuple[str, int, tuple[Bar, ...], float]] = []
        try:
            await until(lambda: all(s.history_loaded for s in session.symbols.values()), 10)
            async with sim.running():

                async def consumer(seed: int) -> None:
                    rng = random.Random(seed)
                    for _ in range(per_consumer):
                        sym = rng.choice(SYMBOLS)
                        dur_s = rng.randrange(1, 11) * 1800
                        # 162 replies land on whichever upstream request goes out next: the
                        # guard must back off and retry (at most 2 in a row: it retries 5x)
                        if rng.random() < 0.3 and tws.pending_historical_failures == 0:
                            tws.fail_next_historical(rng.choice((1, 1, 2)))
                        try:
                            bars = await session.history(sym, f"{dur_s} S")
                        except Exception:
                            bars = ()
                        answers.append((sym, dur_s, bars, time.time()))
                        await sim.sleep(rng.uniform(0, 20))

                await asyncio.wait_for(
                    asyncio.gather(*(consumer(i) for i in range(consumers))), timeout=120
                )
        finally:
            await session.stop()
            await tws.stop()
        return answers, session, tws

    answers, session, tws = asyncio.run(scenario())

    def right(sym: str, dur_s: int, bars: tuple[Bar, ...], at: float) -> bool:
        if len(bars) != dur_s // BAR_S:
            return False
        if not _bucket(at) - 2 * BAR_S <= bars[-1].ts <= _bucket(at) + BAR_S:
            return False
        return all(
            (b.ts, b.open, b.high, b.low, b.close, b.volume) == tws.bar_at(sym, b.ts) for b in bars
        )

    issued = consumers * per_consumer
    answered = sum(1 for a in answers if right(*a))
    rejected = [r for r in tws.historical_requests if r.rejected]
    injected = len(rejected) - tws.pacing_violations
    accepted = [r for r in tws.historical_requests if not r.rejected]
    times = [r.at for r in accepted]
    by_identity: dict[tuple[str, ...], list[float]] = defaultdict(list)
    by_symbol: dict[str, list[float]] = defaultdict(list)
    for r in accepted:
        by_identity[r.identity].append(r.at)
        by_symbol[r.symbol].append(r.at)
    within_limits = (
        max_in_any_window(times, 600) <= 60
        and all(b - a >= 15 for ts in by_identity.values() for a, b in itertools.pairwise(ts))
        and all(max_in_any_window(ts, 2) <= 5 for ts in by_symbol.values())
        and tws.pacing_violations == 0
    )
    row = record(
        ResilienceRow(
            scenario="IB pacing violations (162) interleaved with consumer history requests",
            injected=injected,
            survived=within_limits and session.guard.stats.failures == 0,
            records_in=issued,
            records_out=answered,
            note=(
                f"{len(tws.historical_requests)} upstream requests ({len(rejected)} answered 162); "
                f"max {max_in_any_window(times, 600)} accepted in any 10 min (virtual time)"
            ),
        )
    )
    assert injected >= (3 if QUICK else 10), "too few 162s landed to exercise the guard"
    assert session.guard.stats.violations == len(rejected)
    assert len(answers) == issued, "a consumer request never returned"
    assert answered == issued, "a consumer request was lost or got the wrong bars"
    assert tws.pacing_violations == 0, "the guard itself provoked a real pacing violation"
    assert within_limits
    assert row.nothing_lost


# --------------------------------------------------- 3. IB farm broken/OK cycles and 1101


def test_ib_farm_cycles_and_data_lost_resubscribe_and_ticks_reach_snapshots(
    aws_resources: LocalResources,
) -> None:
    cycles = 2 if QUICK else 8
    table = aws_resources.settings.market_table
    kinds = ("2103/2104 market data farm", "2105/2106 HMDS farm", "1100/1101 data lost")

    async def scenario() -> tuple[list[dict[str, str]], IbSession, FakeTws, bool, int]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        session_start = time.time()
        # a long grace: a 1100 must be recovered by the 1101, not by a socket reconnect
        session = await started(table, tws, connectivity_grace_s=10.0)
        recoveries: list[dict[str, str]] = []
        recovered = True
        injected = 0
        try:
            await until(lambda: tws.active_subscriptions == len(SYMBOLS), 5)
            await _fresh_snapshots(table, tws, session_start, session_start, 10)
            for _cycle in range(cycles):
                for kind in kinds:
                    asked = session.guard.stats.consumer_requests
                    if kind.startswith("2103"):
                        tws.farm_broken()  # the fake drops market data subscriptions
                    elif kind.startswith("2105"):
                        tws.error(2105, "HMDS data farm connection is broken:ushmds")
                    else:
                        tws.connectivity_lost()
                    injected += 1
                    try:
                        await until(lambda: session.state == "degraded", 3)
                    except AssertionError:
                        recovered = False
                        break
                    since = time.time()
                    if kind.startswith("2103"):
                        tws.farm_ok()
                    elif kind.startswith("2105"):
                        tws.error(2106, "HMDS data farm connection is OK:ushmds")
                    else:
                        tws.restore(data_lost=True)  # the fake forgot every subscription
                    try:
                        await until(
                            lambda: fully_subscribed(session, tws),
                            5,
                        )
                        if not kind.startswith("2103"):  # 2106 and 1101 reload the bars
                            await until(
                                lambda a=asked: (
                                    session.guard.stats.consumer_requests >= a + len(SYMBOLS)
                                ),
                                5,
                            )
                    except AssertionError:
                        recovered = False
                        break
                    recoveries.append(await _fresh_snapshots(table, tws, since, session_start, 10))
                if not recovered:
                    break
        finally:
            await session.stop()
            await tws.stop()
        return recoveries, session, tws, recovered, injected

    recoveries, session, _tws, recovered, injected = asyncio.run(scenario())
    complete = sum(1 for r in recoveries for why in r.values() if not why)
    problems = {
        f"recovery {i} ({kinds[i % 3]}) {s}": why
        for i, r in enumerate(recoveries)
        for s, why in r.items()
        if why
    }
    expected_resubs = 1 + 2 * cycles  # connect, then every 2104-after-2103 and every 1101
    row = record(
        ResilienceRow(
            scenario=f"IB farm broken/OK (2103/2104, 2105/2106) + 1101 data lost x{cycles}",
            injected=injected,
            survived=recovered and session.connects == 1,
            records_in=3 * cycles * len(SYMBOLS),
            records_out=complete,
            note="snapshot per symbol after each recovery carries a price ticked after it",
        )
    )
    assert recovered, "the session did not recover from a farm/connectivity notice in time"
    assert not problems, problems
    assert session.connects == 1, "recovered by reconnecting the socket instead of resubscribing"
    assert session.resubscriptions == expected_resubs
    assert session.errors_seen[2103] == cycles and session.errors_seen[1101] == cycles
    assert row.nothing_lost


# --------------------------------------------------------------------- Databento helpers

MBO_RECORDS = db.DBNStore.from_file(MBO).to_ndarray()
N_MBO = len(MBO_RECORDS)


class SlowReaderSession(DatabentoSession):
    """The real session with a slow record callback. databento.Live calls callbacks on its
    event-loop thread, so a slow callback stops the client reading its socket: the same
    place a slow consumer would stall in production."""

    def __init__(self, *args: Any, pause_every: int, pause_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pause_every = pause_every
        self.pause_s = pause_s
        self.records_in_callback = 0
        self.pauses = 0

    def _on_record(self, record: Any) -> None:
        self.records_in_callback += 1
        if self.records_in_callback % self.pause_every == 0:
            self.pauses += 1
            time.sleep(self.pause_s)
        super()._on_record(record)


class SlowProducer:
    """A FlowProducer slower than the feed (e.g. Kinesis under throttling)."""

    def __init__(self, inner: FlowProducer, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def send(self, windows: Iterable[PressureWindow]) -> int:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return self.inner.send(windows)

    def flush(self) -> None:
        self.inner.flush()


def _live_config(fake: FakeDatabentoGateway, **kw: Any) -> DatabentoConfig:
    base: dict[str, Any] = {
        "api_key": KEY,
        "gateway": "127.0.0.1",
        "port": fake.port,
        "parents": ("NQ.OPT", "Q1C.OPT"),
        "idle_advance_seconds": None,
        "pump_interval_s": 0.05,
        # every final window exactly once is what is compared here; early (provisional)
        # windows depend on batch timing (tests/unit/ifd/test_ifd_statistics.py covers them)
        "early_window_seconds": None,
    }
    return DatabentoConfig(**(base | kw))


def _wait_for_feed(
    fake: FakeDatabentoGateway, session: DatabentoSession, expect_records: int, timeout: float
) -> str:
    """Bounded wait until the fake streamed everything and the session took all of it in:
    '' when done, else what was still missing."""
    deadline = time.monotonic() + timeout
    if not fake.finished.wait(timeout):
        return "the fake never finished streaming"
    while True:
        state = (
            f"MBO seen {session.ingest.seen['MBOMsg']}/{expect_records}, "
            f"held {session.aggregator.held}, gaps outstanding {session._gaps_outstanding}, "
            f"gaps {[g[2] for g in session.gaps]}, backfills {session.backfills}, "
            f"connections (mbo sent, reset) {[(c.mbo_sent, c.reset) for c in fake.connections]}"
        )
        if (
            session.ingest.seen["MBOMsg"] >= expect_records
            and not session.aggregator.held
            and not session._gaps_outstanding
        ):
            return ""
        if time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def _windows_matching(
    produced: list[PressureWindow], reference: list[PressureWindow]
) -> tuple[int, int, list[tuple[int, str]]]:
    """(reference windows, produced windows equal to their reference, keys that differ)."""
    ref = comparable(reference)
    got = comparable(produced)
    same = sum(1 for k, w in got.items() if ref.get(k) == w)
    differ = sorted(k for k in set(ref) | set(got) if ref.get(k) != got.get(k))
    return len(ref), same, differ


@pytest.fixture(scope="module")
def reference_windows() -> list[PressureWindow]:
    """An uninterrupted live run of the sample day through the fake gateway."""
    producer = ListProducer()
    with FakeDatabentoGateway(DEFS, MBO, KEY, close_at_end=False) as fake:
        session = DatabentoSession(_live_config(fake), producer=producer)
        session.start()
        missing = _wait_for_feed(fake, session, N_MBO, 30)
        session.stop()
        session.flush()
    assert not missing, missing
    assert session.gaps == [] and session.ingest.seen["MBOMsg"] == N_MBO
    assert len(producer.windows) > 100
    return producer.windows


# ---------------------------------------------------------- 4. Databento disconnects + gaps


def disconnect_plan(k: int, gap: int) -> list[tuple[int, int]]:
    """k disconnects spread over the day, each missing `gap` records; each connection
    resumes on a trade record, so the records at the gap's end (which both the live stream
    and the backfill carry, as with the real gateway) include a trade to count once."""
    actions = MBO_RECORDS["action"].view("uint8")
    trades = np.flatnonzero(actions == ord("T"))
    plan: list[tuple[int, int]] = []
    start = 0
    for i in range(1, k + 1):
        resume = int(trades[np.searchsorted(trades, i * N_MBO // (k + 1))])
        plan.append((resume - gap - start, gap))
        start = resume
    return plan


def test_databento_disconnects_with_gaps_windows_equal_uninterrupted_run(
    reference_windows: list[PressureWindow], aws_resources: LocalResources
) -> None:
    k = 2 if QUICK else 5
    plan = disconnect_plan(k, gap=300)
    ledger = DynamoBudgetLedger(aws_resources.settings.state_table)
    backfiller = Backfiller(DbnFileHistoricalSource([MBO]), ledger, daily_budget_usd=5.0)
    producer = ListProducer()
    with FakeDatabentoGateway(DEFS, MBO, KEY, disconnects=plan, close_at_end=False) as fake:
        # the production pump interval: live records wait in the ingest buffer as they would
        config = _live_config(fake, pump_interval_s=DatabentoConfig().pump_interval_s)
        session = DatabentoSession(config, producer=producer, backfiller=backfiller)
        session.start()
        missing = _wait_for_feed(fake, session, N_MBO - sum(g for _, g in plan), 20)
        session.stop()
        session.flush()
        resets = sum(c.reset for c in fake.connections)
        streams = len(fake.connections)
        resubscribed = all(
            [s["schema"] for s in c.subscriptions] == ["definition", "mbo"]
            for c in fake.connections
        )
        missed = fake.records_skipped
    n_ref, same, differ = _windows_matching(producer.windows, reference_windows)
    trades_ref = sum(w.total_trades for w in reference_windows)
    trades_out = sum(w.total_trades for w in producer.windows)
    row = record(
        ResilienceRow(
            scenario=f"Databento disconnects mid-stream with gaps x{k} (backfilled)",
            injected=resets,
            survived=not missing and streams == k + 1 and session.backfills == {"done": k},
            records_in=n_ref,
            records_out=same,
            note=(
                f"{missed} MBO records missed live, {session.ingest.backfill_records} "
                f"backfilled; trades {trades_out}/{trades_ref}"
            ),
        )
    )
    assert not missing, f"the session did not take in the whole stream in time: {missing}"
    assert resets == k and streams == k + 1 and resubscribed
    assert [g[2] for g in session.gaps].count("reconnect") == k
    assert session.backfills == {"done": k}
    assert session.ingest.backfill_records >= missed
    assert len({key(w) for w in producer.windows}) == len(producer.windows), "a window twice"
    assert not differ, differ[:5]
    assert trades_out == trades_ref
    assert row.nothing_lost


# ------------------------------------------------------------------ 5. Databento slow reader


def test_databento_slow_reader_and_slow_sink_lose_nothing(
    reference_windows: list[PressureWindow], aws_resources: LocalResources
) -> None:
    # the client stalls 4 ms every 64 records (~1.1 s over the day, far slower than the
    # gateway can write); the Kinesis sink takes 50 ms more per batch than moto needs
    # (20 ms kept up with the feed on a quiet machine: the scenario needs a slow sink)
    stream = aws_resources.settings.flow_stream
    producer = SlowProducer(KinesisFlowProducer(stream), delay_s=0.05)
    with FakeDatabentoGateway(
        DEFS,
        MBO,
        KEY,
        close_at_end=False,
        chunk_records=64,
        chunk_delay_s=0.0,  # the gateway writes as fast as the client reads
        slow_reader_warning_s=0.02,
        send_buffer_bytes=32 * 1024,
    ) as fake:
        session = SlowReaderSession(
            _live_config(fake), producer=producer, pause_every=64, pause_s=0.004
        )
        session.start()
        missing = _wait_for_feed(fake, session, N_MBO, 60)
        # the feed is done; the sink is still behind (the outbox buffered, the feed never
        # waited for Kinesis)
        sink_behind = session.windows_sent < session.windows_emitted
        session.stop()
        session.flush()
        warnings = fake.slow_reader_warnings
        blocked = fake.drain_blocked_s
    stored = [PressureWindow.model_validate(r["window"]) for r in _read_stream(stream)]
    n_ref, same, differ = _windows_matching(stored, reference_windows)
    seen_warnings = session.ingest.seen.get("SystemMsg", 0)
    row = record(
        ResilienceRow(
            scenario="Databento slow reader (slow callback + slow Kinesis sink)",
            injected=warnings,
            survived=not missing and session.gaps == [] and session.state != "error",
            records_in=n_ref,
            records_out=same,
            note=(
                f"gateway waited {blocked:.2f}s on the client, {warnings} SLOW_READER_WARNINGs; "
                f"{session.pauses} callback stalls; {producer.calls} slow sends "
                f"(sink behind at feed end: {sink_behind})"
            ),
        )
    )
    assert not missing, f"the slow session did not take in the stream in time: {missing}"
    assert session.ingest.seen["MBOMsg"] == N_MBO, "a record was lost"
    assert warnings > 0 and blocked > 0.1, "the client was never behind: not a slow reader"
    assert seen_warnings == warnings  # the warnings reached the client, counted, skipped
    assert sink_behind, "the sink kept up: not a slow sink"
    assert session.gaps == []
    assert len(stored) == len(reference_windows), "every window in Kinesis exactly once"
    assert not differ, differ[:5]
    assert row.nothing_lost
