"""Ports of the IFD domain: storage and alert-rate interfaces the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from magic8.domain.flow import PressureWindow
from magic8.ifd.baselines import Baseline
from magic8.ifd.values import DispatchResult, OptionState, Signal, WindowLite


class BaselineStore(Protocol):
    """Per-option state (strike baseline + recent windows) and per-(underlying, C/P) priors."""

    def load_option(
        self, underlying: str, option_type: str, strike: float
    ) -> OptionState | None: ...

    def save_option(self, state: OptionState) -> None: ...

    def load_prior(self, underlying: str, option_type: str) -> Baseline | None: ...

    def save_prior(self, underlying: str, option_type: str, baseline: Baseline) -> None: ...

    def prefetch(self, keys: Sequence[tuple[str, str, float]]) -> None:
        """Load the option states of a batch at once (keys: underlying, type, strike)."""
        ...

    def flush(self) -> None:
        """Persist what save_* buffered (write-behind stores); no-op otherwise."""
        ...


class WindowStore(Protocol):
    """Recent windows of all options of an underlying, by window start (for peers)."""

    def prefetch(self, underlying: str, starts: Sequence[datetime]) -> None:
        """Load the peers of these window starts at once (before put_many): the slots asked
        for, never the span between them (one window dated far away costs one slot)."""
        ...

    def put_many(
        self, windows: Sequence[PressureWindow], volume_z: Mapping[str, float] | None = None
    ) -> None:
        """Store the windows; ``volume_z``: window_key -> volume z against its own baseline."""
        ...

    def peers(self, underlying: str, window_start: datetime) -> list[WindowLite]: ...


@dataclass(frozen=True)
class SignalQuery:
    """Signals with window_end in [since, until), of one underlying or all, at or above a
    confidence; the oldest ``limit`` of them, oldest first."""

    since: datetime
    until: datetime
    underlying: str | None = None
    min_confidence: float = 0.0
    limit: int = 500

    def matches(self, signal: Signal) -> bool:
        return (
            self.since <= signal.window_end < self.until
            and (self.underlying is None or signal.underlying == self.underlying)
            and signal.confidence >= self.min_confidence
        )


class SignalStore(Protocol):
    def put(self, signal: Signal) -> None:
        """Idempotent by (underlying, signal_id)."""
        ...

    def query(self, q: SignalQuery) -> list[Signal]: ...


class AlertRateLimiter(Protocol):
    def try_acquire(self, bucket: str, limit: int) -> bool:
        """Take one alert slot in ``bucket`` (a clock hour) if fewer than ``limit`` are taken."""
        ...

    def record_excess(self, bucket: str) -> int:
        """Count one alert suppressed by the cap; returns the bucket's excess so far."""
        ...


class SignalDispatch(Protocol):
    """Publish a signal's alert at most once per window (idempotent in production)."""

    def __call__(self, signal: Signal) -> DispatchResult: ...
