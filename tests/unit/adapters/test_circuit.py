from __future__ import annotations

import pytest

from magic8.adapters.circuit import CircuitBreaker, CircuitOpenError, CircuitState
from tests.fakes.clock import ManualClock


def _boom() -> int:
    raise ConnectionError("dependency down")


def tripped(threshold: int, reset_timeout_s: float, clock: ManualClock) -> CircuitBreaker:
    """A breaker that has just seen `threshold` failures in a row."""
    cb = CircuitBreaker("market", threshold, reset_timeout_s, clock)
    for _ in range(threshold):
        with pytest.raises(ConnectionError):
            cb.call(_boom)
    return cb


def test_opens_after_threshold_then_half_opens_and_closes_on_success() -> None:
    clock = ManualClock()
    cb = tripped(3, 10, clock)
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
    clock = ManualClock()
    cb = tripped(2, 5, clock)
    clock.now = 5.0
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    assert cb.state == CircuitState.OPEN
    assert cb.opened_count == 2


def test_success_resets_failure_count() -> None:
    cb = CircuitBreaker("market", failure_threshold=2, clock=ManualClock())
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    cb.call(lambda: None)
    with pytest.raises(ConnectionError):
        cb.call(_boom)
    assert cb.state == CircuitState.CLOSED
