"""A circuit breaker for calls to a dependency that can fail in bursts (market-data reads).

closed → (failure_threshold consecutive failures) → open: calls fail fast for
reset_timeout_s → half-open: one trial call; success closes, failure re-opens.
Clock injectable so tests need no sleeps. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(RuntimeError):
    """Raised instead of calling the dependency while the circuit is open."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        reset_timeout_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self.opened_count = 0
        self.rejected_count = 0

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._current_state()

    def _current_state(self) -> CircuitState:
        if (
            self._state == CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout_s
        ):
            self._state = CircuitState.HALF_OPEN
        return self._state

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            state = self._current_state()
            if state == CircuitState.OPEN:
                self.rejected_count += 1
                raise CircuitOpenError(f"circuit {self.name} is open")
        try:
            result = fn()
        except Exception:
            self._record_failure()
            raise
        self._record_success()
        return result

    def _record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                if self._state != CircuitState.OPEN:
                    self.opened_count += 1
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()

    def _record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._state = CircuitState.CLOSED
