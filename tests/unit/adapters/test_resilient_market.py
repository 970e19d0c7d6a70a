from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from magic8.adapters.circuit import CircuitBreaker, CircuitState
from magic8.adapters.resilient_market import ResilientMarketRepository
from magic8.domain.market import MarketSnapshot
from tests.fakes.clock import ManualClock

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


class FlakyRepo:
    def __init__(self) -> None:
        self.fail = False
        self.calls = 0

    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("ThrottlingException")
        return {s: MarketSnapshot(symbol=s, last=100.0, updated_at=T0) for s in symbols}

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        raise NotImplementedError


def test_failed_read_serves_last_good_flagged_stale_then_circuit_opens() -> None:
    inner, clock = FlakyRepo(), ManualClock()
    repo = ResilientMarketRepository(inner, CircuitBreaker("m", 2, 30, clock))
    assert repo.get_snapshots(["SPX"])["SPX"].source == "gateway"
    inner.fail = True
    for _ in range(5):
        snap = repo.get_snapshots(["SPX"])["SPX"]
        assert snap.source == "stale"
        assert snap.updated_at == T0  # age stays honest
    assert repo.breaker.state == CircuitState.OPEN
    assert inner.calls == 1 + 2  # the open circuit spares the store
    inner.fail = False
    clock.now = 30.0
    assert repo.get_snapshots(["SPX"])["SPX"].source == "gateway"
    assert repo.breaker.state == CircuitState.CLOSED


def test_no_last_good_reraises_so_the_service_reports_unavailable() -> None:
    inner = FlakyRepo()
    inner.fail = True
    repo = ResilientMarketRepository(inner)
    with pytest.raises(ConnectionError):
        repo.get_snapshots(["NDX"])


def test_stale_age_reflects_original_update_time() -> None:
    inner = FlakyRepo()
    repo = ResilientMarketRepository(inner)
    repo.get_snapshots(["SPX"])
    inner.fail = True
    snap = repo.get_snapshots(["SPX"])["SPX"]
    assert snap.age_seconds(T0 + timedelta(minutes=10)) == pytest.approx(600.0)
