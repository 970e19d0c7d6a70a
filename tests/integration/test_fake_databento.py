"""ACCEPTANCE: an unmodified databento.Live against the fake gateway, through DatabentoSession.

A disconnect mid-stream is detected, the gap is backfilled (the DBN file stands in for the
historical API, the budget is tracked in the state table on moto), and the windows emitted
equal those of an uninterrupted run. Over budget, the gap is skipped and reported.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import databento as db
import pytest

from gateway_host.databento.session import DatabentoConfig, DatabentoSession
from magic8.adapters.budget_dynamo import DynamoBudgetLedger
from magic8.domain.flow import PressureWindow
from magic8.flow.backfill import BUDGET_PK, Backfiller, DbnFileHistoricalSource
from magic8.settings import AwsSettings
from magic8_dev.local.provision import LocalResources
from tests.fakes.fake_databento import FakeDatabentoGateway, cram_response

pytestmark = pytest.mark.xdist_group("fake_databento")

DAY = (
    Path(__file__).resolve().parents[2]
    / "layers/shared/magic8_dev/data/sessions/sample/day-2025-09-16"
)
DEFS, MBO = DAY / "definition.dbn.zst", DAY / "mbo.dbn.zst"
KEY = "db-magic8fakekey0000000000FAKE1"


class ListProducer:
    def __init__(self) -> None:
        self.windows: list[PressureWindow] = []
        self.flushed = 0
        self._lock = threading.Lock()

    def send(self, windows: Iterable[PressureWindow]) -> int:
        ws = list(windows)
        with self._lock:
            self.windows.extend(ws)
        return len(ws)

    def flush(self) -> None:
        self.flushed += 1


def run_session(
    fake: FakeDatabentoGateway, backfiller: Backfiller | None, expect_records: int
) -> tuple[DatabentoSession, ListProducer]:
    producer = ListProducer()
    config = DatabentoConfig(
        api_key=KEY,  # type: ignore[arg-type]
        gateway="127.0.0.1",
        port=fake.port,
        parents=("NQ.OPT", "Q1C.OPT"),
        idle_advance_seconds=None,
        pump_interval_s=0.05,
        early_window_seconds=None,  # final windows compared exactly once (no early cuts)
    )
    session = DatabentoSession(config, producer=producer, backfiller=backfiller)
    session.start()
    assert fake.finished.wait(30), "the fake never finished streaming"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = session.ingest.seen["MBOMsg"] >= expect_records
        if done and session.aggregator.held is False and not session._gaps_outstanding:
            break
        time.sleep(0.05)
    assert session.ingest.seen["MBOMsg"] == expect_records
    session.stop()
    session.flush()
    return session, producer


def key(w: PressureWindow) -> tuple[int, str]:
    return (w.instrument_id, w.window_start.isoformat())


def comparable(windows: list[PressureWindow]) -> dict[tuple[int, str], dict]:
    out = {}
    for w in windows:
        out[key(w)] = w.model_dump(exclude={"source"})  # latest emission wins
    return out


@pytest.fixture(scope="module")
def uninterrupted() -> list[PressureWindow]:
    n = len(db.DBNStore.from_file(MBO).to_ndarray())
    with FakeDatabentoGateway(DEFS, MBO, KEY, close_at_end=False) as fake:
        session, producer = run_session(fake, None, n)
        assert session.gaps == []
        assert fake.connections[0].subscriptions[0]["schema"] == "definition"
    return producer.windows


def test_cram_response_matches_the_client() -> None:
    from databento.common.cram import get_challenge_response

    assert cram_response("abc", KEY) == get_challenge_response("abc", KEY)
    assert cram_response("abc", KEY).startswith(hashlib.sha256(f"abc|{KEY}".encode()).hexdigest())


def test_bad_key_is_rejected() -> None:
    with FakeDatabentoGateway(DEFS, MBO, KEY) as fake:
        live = db.Live(key="db-wrongkey000000000000000WRONG", gateway="127.0.0.1", port=fake.port)
        with pytest.raises(Exception, match="Authentication failed"):
            live.subscribe("GLBX.MDP3", "mbo", ["NQ.OPT"], stype_in="parent")
        assert not fake.connections[0].authenticated


def test_disconnect_detected_gap_backfilled_windows_equal(
    uninterrupted: list[PressureWindow], aws_resources: LocalResources
) -> None:
    n = len(db.DBNStore.from_file(MBO).to_ndarray())
    gap = 400
    ledger = DynamoBudgetLedger(AwsSettings().state_table)
    backfiller = Backfiller(DbnFileHistoricalSource([MBO]), ledger, daily_budget_usd=5.0)
    with FakeDatabentoGateway(
        DEFS, MBO, KEY, disconnect_after=6000, gap_records=gap, close_at_end=False
    ) as fake:
        session, producer = run_session(fake, backfiller, n - gap)
        assert fake.connections[0].reset and len(fake.connections) == 2
        # the new connection re-subscribed definitions then MBO, without `start`
        assert [s["schema"] for s in fake.connections[1].subscriptions] == ["definition", "mbo"]
    (g_start, g_end, reason) = session.gaps[0]
    assert reason == "reconnect" and g_end > g_start
    assert session.backfills == {"done": 1}
    assert session.ingest.backfill_records >= gap
    assert session.aggregator.stats["duplicate_trades_dropped"] > 0  # boundary overlap
    health = session.health()
    assert health["gaps"] == 1 and health["backfill_budget_used"] > 0
    assert ledger.used(backfiller.clock().date().isoformat()) == pytest.approx(
        health["backfill_budget_used"]
    )
    # each window emitted once, and equal to the uninterrupted run
    assert len({key(w) for w in producer.windows}) == len(producer.windows)
    assert comparable(producer.windows) == comparable(uninterrupted)
    assert any(w.source == "backfill" for w in producer.windows)
    assert sum(w.total_trades for w in producer.windows) == sum(
        w.total_trades for w in uninterrupted
    )


def test_over_budget_gap_is_skipped_and_reported(
    uninterrupted: list[PressureWindow], aws_resources: LocalResources
) -> None:
    n = len(db.DBNStore.from_file(MBO).to_ndarray())
    gap = 400
    ledger = DynamoBudgetLedger(AwsSettings().state_table)
    backfiller = Backfiller(
        DbnFileHistoricalSource([MBO], usd_per_million_records=1000.0),
        ledger,
        daily_budget_usd=0.01,
    )
    with FakeDatabentoGateway(
        DEFS, MBO, KEY, disconnect_after=6000, gap_records=gap, close_at_end=False
    ) as fake:
        session, producer = run_session(fake, backfiller, n - gap)
    assert session.backfills == {"skipped_budget": 1}
    assert backfiller.history[-1].status == "skipped_budget"
    assert session.health()["backfill_budget_used"] == 0.0
    item = ledger.table.get_item(
        Key={"pk": BUDGET_PK, "sk": backfiller.clock().date().isoformat()}
    ).get("Item")
    assert item is None  # nothing was spent
    lost = sum(w.total_trades for w in uninterrupted) - sum(
        w.total_trades for w in producer.windows
    )
    assert lost > 0  # the gap's trades are missing, and that is reported, not hidden
