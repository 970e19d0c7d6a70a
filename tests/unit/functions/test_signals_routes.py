"""GET /signals on the predict app, with an in-memory signal store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.predict.signals_routes import get_signal_store, router
from magic8.ifd.analysis import analyze
from magic8.ifd.baselines import BaselineStats, Estimate
from magic8.ifd.values import Signal, WindowLite
from magic8_dev.ifd.memory import MemorySignalStore
from tests.factories import session_start, window

WARM = BaselineStats(Estimate(2.0, 0.64, 100), Estimate(0.0, 0.36, 100), 20, 500, False)


def signal(underlying: str, minute: int, ask: float, bid: float) -> Signal:
    w = window(
        20100,
        "C",
        session_start() + timedelta(minutes=minute),
        ask,
        bid,
        15.0,
        underlying=underlying,
    )
    history = [
        WindowLite.of(window(20100, "C", w.window_start - timedelta(minutes=5 * i), ask, bid, 15.0))
        for i in (1, 2, 3)
    ]
    return Signal.from_assessment(w, analyze(w, history, [], WARM))


@pytest.fixture()
def client() -> TestClient:
    store = MemorySignalStore()
    for s in (signal("NQZ5", 0, 300, 10), signal("NQZ5", 30, 200, 40), signal("NQH6", 60, 300, 10)):
        store.put(s)
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_signal_store] = lambda: store
    return TestClient(app)


def test_filters_by_time_underlying_and_confidence(client: TestClient) -> None:
    since = session_start().isoformat()
    until = (session_start() + timedelta(hours=2)).isoformat()
    every = client.get("/signals", params={"since": since, "until": until}).json()
    assert every["count"] == 3
    times = [s["window_end"] for s in every["signals"]]
    assert times == sorted(times)
    nq = client.get("/signals", params={"since": since, "until": until, "underlying": "NQZ5"})
    assert {s["underlying"] for s in nq.json()["signals"]} == {"NQZ5"}
    top = max(s["confidence"] for s in every["signals"])
    strong = client.get(
        "/signals", params={"since": since, "until": until, "min_confidence": top}
    ).json()
    assert strong["count"] >= 1 and all(s["confidence"] >= top for s in strong["signals"])
    later = client.get(
        "/signals",
        params={
            "since": session_start().replace(tzinfo=None).isoformat(),
            "until": until,
            "limit": 1,
        },
    )
    assert later.json()["count"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_confidence": "2"}, "min_confidence"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2025-09-16T00:00:00Z", "until": "2025-09-15T00:00:00Z"}, "until"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2025-09-15T00:00:00Z"}, "since"),
        ({"underlying": "NQ Z5;"}, "underlying"),
        ({"limit": "0"}, "limit"),
        ({"min_confidence": "nan"}, "min_confidence"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-05:00"}, "until"),
        ({"since": "1960-01-01T00:00:00Z", "until": "1960-01-02T00:00:00Z"}, "until"),
    ],
)
def test_bad_query_is_a_422_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    r = client.get("/signals", params=params)
    assert r.status_code == 422
    assert field in r.text


def test_without_a_range_the_most_recent_signals_come_back() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store = MemorySignalStore()
    for minutes_ago in (180, 40, 20):
        w = window(20100, "C", now - timedelta(minutes=minutes_ago), 300, 10, 15.0)
        history = [
            WindowLite.of(
                window(20100, "C", w.window_start - timedelta(minutes=5 * i), 300, 10, 15.0)
            )
            for i in (1, 2, 3)
        ]
        store.put(Signal.from_assessment(w, analyze(w, history, [], WARM)))
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_signal_store] = lambda: store
    api = TestClient(app)
    recent = api.get("/signals").json()
    assert recent["count"] == 2  # the last hour's, oldest first
    ends = [s["window_end"] for s in recent["signals"]]
    assert ends == sorted(ends)
    newest = api.get("/signals", params={"limit": 1}).json()["signals"]
    assert [s["window_end"] for s in newest] == [ends[-1]]


def test_signals_answer_says_the_cme_globex_session() -> None:
    """IFD signals are about NQ options: the answer names CME Globex's session now."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from functions.predict.signals_routes import get_signal_store, router

    class Empty:
        def query(self, *a: object, **k: object) -> list[object]:
            return []

    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_signal_store] = lambda: Empty()
    market = TestClient(app).get("/signals").json()["market"]
    assert market["exchange"] == "CME Globex"
    assert market["session"] in {"regular", "early_close", "closed"}
    assert isinstance(market["market_open"], bool)
