"""GET /nq/bars on the predict app, with an in-memory bar store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from functions.predict.app import create_app
from functions.predict.bars_routes import get_bar_store, session_range
from magic8.domain.bars import Bar

DAY1 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)  # 09:30 ET
DAY2 = datetime(2025, 9, 16, 13, 30, tzinfo=UTC)


class MemoryBarStore:
    def __init__(self, bars: list[Bar]) -> None:
        self.bars = {(b.symbol, b.start): b for b in bars}

    def put(self, bars: list[Bar]) -> None:
        self.bars.update({(b.symbol, b.start): b for b in bars})

    def query(self, symbol: str, since: datetime, until: datetime, limit: int) -> list[Bar]:
        out = sorted(
            (b for (s, t), b in self.bars.items() if s == symbol and since <= t < until),
            key=lambda b: b.start,
        )
        return out[:limit]

    def latest(self, symbol: str) -> Bar | None:
        mine = [b for (s, _), b in self.bars.items() if s == symbol]
        return max(mine, key=lambda b: b.start) if mine else None


def bar(start: datetime, close: float = 20_000.0) -> Bar:
    return Bar(start=start, open=close - 1, high=close + 2, low=close - 3, close=close, volume=7)


def day(start: datetime, n: int) -> list[Bar]:
    return [bar(start + timedelta(minutes=5 * i), 20_000 + i) for i in range(n)]


@pytest.fixture()
def store() -> MemoryBarStore:
    return MemoryBarStore(day(DAY1, 78) + day(DAY2, 10))


@pytest.fixture()
def api(store: MemoryBarStore) -> TestClient:
    app = create_app()
    app.dependency_overrides[get_bar_store] = lambda: store
    return TestClient(app)


def test_default_is_the_most_recent_session(api: TestClient) -> None:
    r = api.get("/nq/bars")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 10 and body["interval"] == "5m" and body["symbol"] == "NQ"
    first = body["bars"][0]
    assert first == {
        "ts": DAY2.isoformat(),
        "open": 19_999.0,
        "high": 20_002.0,
        "low": 19_997.0,
        "close": 20_000.0,
        "volume": 7,
        "complete": True,
    }
    assert [b["ts"] for b in body["bars"]] == sorted(b["ts"] for b in body["bars"])


def test_since_until_range(api: TestClient) -> None:
    r = api.get(
        "/nq/bars",
        params={"since": DAY1.isoformat(), "until": (DAY1 + timedelta(minutes=30)).isoformat()},
    )
    assert r.status_code == 200
    assert [b["close"] for b in r.json()["bars"]] == [20_000 + i for i in range(6)]
    # naive timestamps are UTC
    naive = api.get(
        "/nq/bars", params={"since": "2025-09-15T13:30:00", "until": "2025-09-15T13:40:00"}
    )
    assert naive.json()["count"] == 2


def test_last_hours_and_an_empty_store(store: MemoryBarStore) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.put(day(now - timedelta(minutes=60), 12))
    app = create_app()
    app.dependency_overrides[get_bar_store] = lambda: store
    body = TestClient(app).get("/nq/bars", params={"hours": 0.5}).json()
    assert 5 <= body["count"] <= 7  # bars opened in the last 30 minutes
    app.dependency_overrides[get_bar_store] = lambda: MemoryBarStore([])
    empty = TestClient(app).get("/nq/bars")
    assert empty.status_code == 200 and empty.json()["bars"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2025-09-16T00:00:00Z", "until": "2025-09-15T00:00:00Z"}, "until"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2025-03-01T00:00:00Z"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"hours": "0"}, "hours"),
        ({"hours": "1000"}, "hours"),
        ({"hours": "nan"}, "hours"),
        ({"hours": "2", "since": "2025-09-15T00:00:00Z"}, "hours"),
        ({"symbol": "NQ;DROP"}, "symbol"),
        ({"since": "1900-01-01T00:00:00Z", "until": "1900-01-02T00:00:00Z"}, "until"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    api: TestClient, params: dict[str, str], field: str
) -> None:
    r = api.get("/nq/bars", params=params)
    assert r.status_code == 422, r.text
    assert any(field in [str(x) for x in d["loc"]] for d in r.json()["detail"]), r.json()


def test_session_range_is_the_eastern_day() -> None:
    start, end = session_range(DAY2 + timedelta(hours=6))  # 15:30 ET
    assert start == datetime(2025, 9, 16, 4, 0, tzinfo=UTC)  # midnight EDT
    assert end - start == timedelta(days=1)
