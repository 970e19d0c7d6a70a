"""λ monitor: EventBridge rate(5 minutes) -> one scheduled sweep (magic8.monitor.scheduled).

Parses the scheduled event (its `time` is the sweep's clock), calls the use case with the
dependencies built on the first invocation (functions.monitor.deps), returns its summary.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from functions.monitor.deps import build
from functions.monitor.settings import MonitorSettings
from magic8.monitor.scheduled import MonitorDeps, scheduled_sweep
from magic8.wiring import Lazy

_runtime = Lazy(build)
reset = _runtime.reset  # the local runtime starts the function cold; tests


def event_time(event: dict[str, Any] | None) -> datetime:
    """The scheduled event's `time` (when the rule fired); now if absent or unreadable."""
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def sweep(event: dict[str, Any], deps: MonitorDeps, settings: MonitorSettings) -> dict[str, Any]:
    return scheduled_sweep(
        event_time(event), deps, settings.sweep_config(), settings.monitor_accuracy_windows
    )


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    settings, deps = _runtime()
    return sweep(event, deps, settings)
