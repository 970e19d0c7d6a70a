from __future__ import annotations

import pytest

from magic8.adapters.circuit import CircuitBreaker, CircuitOpenError, CircuitState


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _boom() -> int:
    raise ConnectionError("dependency down")


def test_opens_after_threshold_then_half_opens_and_closes_on_success() -> None:
    clock = FakeClock()
    cb = CircuitBreaker("market", failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            cb.call(_boom)
    assert cb.state == CircuitState.OPEN
    calls = []
    with pytest.raises(CircuitOpenError):
        cb.call(lambda: calls.append(1))
    assert calls == [] and cb.rejected_count == 1
    clock.now = 10.0
    assert cb.state == CircuitState.HALF_OPEN
    assert cb.call(lambda: 42) == 42
    assert cb.state == CircuitState.CLOSED


def test_failure_in_half_open_reopens() -> None:
    clock = FakeClock()
    cb = CircuitBreaker("market", failure_threshold=2, reset_timeout_s=5, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(_boom)
    clock.now = 5.0
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    assert cb.state == CircuitState.OPEN
    assert cb.opened_count == 2


def test_success_resets_failure_count() -> None:
    cb = CircuitBreaker("market", failure_threshold=2, clock=FakeClock())
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    cb.call(lambda: None)
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    assert cb.state == CircuitState.CLOSED
