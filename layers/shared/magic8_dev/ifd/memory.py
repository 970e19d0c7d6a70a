"""In-memory implementations of the IFD ports (evaluation, tests, benchmarks)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from magic8.domain.alerts import Alert
from magic8.domain.flow import PressureWindow
from magic8.ifd.baselines import Baseline
from magic8.ifd.ports import SignalQuery
from magic8.ifd.values import DispatchResult, OptionState, Signal, WindowLite


class MemoryBaselineStore:
    def __init__(self) -> None:
        self.options: dict[tuple[str, str, float], OptionState] = {}
        self.priors: dict[tuple[str, str], Baseline] = {}

    def load_option(self, underlying: str, option_type: str, strike: float) -> OptionState | None:
        return self.options.get((underlying, option_type, strike))

    def save_option(self, state: OptionState) -> None:
        self.options[(state.underlying, state.option_type, state.strike)] = state

    def load_prior(self, underlying: str, option_type: str) -> Baseline | None:
        return self.priors.get((underlying, option_type))

    def save_prior(self, underlying: str, option_type: str, baseline: Baseline) -> None:
        self.priors[(underlying, option_type)] = baseline

    def prefetch(self, keys: Sequence[tuple[str, str, float]]) -> None:
        return None

    def flush(self) -> None:
        return None


class MemoryWindowStore:
    """Keeps only the most recent ``keep`` window starts per underlying."""

    def __init__(self, keep: int = 24) -> None:
        self.keep = keep
        self.by_ws: dict[str, dict[int, dict[tuple[str, float], WindowLite]]] = defaultdict(dict)

    def prefetch(self, underlying: str, starts: Sequence[datetime]) -> None:
        return None

    def put_many(
        self, windows: Sequence[PressureWindow], volume_z: Mapping[str, float] | None = None
    ) -> None:
        for w in windows:
            lite = WindowLite.of(w, (volume_z or {}).get(w.window_key, 0.0))
            slots = self.by_ws[w.underlying]
            slots.setdefault(lite.ws, {})[(lite.option_type, lite.strike)] = lite
            if len(slots) > self.keep:
                for old in sorted(slots)[: len(slots) - self.keep]:
                    del slots[old]

    def peers(self, underlying: str, window_start: datetime) -> list[WindowLite]:
        slot = self.by_ws.get(underlying, {}).get(int(window_start.timestamp()), {})
        return list(slot.values())


class MemorySignalStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Signal] = {}

    def put(self, signal: Signal) -> None:
        self.items[(signal.underlying, signal.signal_id)] = signal

    def query(self, q: SignalQuery) -> list[Signal]:
        out = [s for s in self.items.values() if q.matches(s)]
        return sorted(out, key=lambda s: (s.window_end, s.signal_id))[: q.limit]


class MemoryRateLimiter:
    def __init__(self) -> None:
        self.taken: dict[str, int] = defaultdict(int)
        self.excess: dict[str, int] = defaultdict(int)

    def try_acquire(self, bucket: str, limit: int) -> bool:
        if self.taken[bucket] >= limit:
            return False
        self.taken[bucket] += 1
        return True

    def record_excess(self, bucket: str) -> int:
        self.excess[bucket] += 1
        return self.excess[bucket]


@dataclass
class ListPublisher:
    alerts: list[Alert] = field(default_factory=list)

    def publish(self, alert: Alert) -> str | None:
        self.alerts.append(alert)
        return f"mem-{len(self.alerts)}"


class OnceDispatch:
    """In-memory idempotency: a window key dispatches once, later calls get the result."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.done: dict[str, DispatchResult] = {}

    def __call__(self, signal: Signal) -> DispatchResult:
        if signal.window_key not in self.done:
            self.done[signal.window_key] = self.inner(signal)  # type: ignore[operator]
        return self.done[signal.window_key]
