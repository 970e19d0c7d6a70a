"""Per-option detector state: the strike's baseline, its recent windows, its last alert."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from magic8.domain.flow import PressureWindow
from magic8.ifd.analysis import WindowLite
from magic8.ifd.baselines import Baseline

RECENT_WINDOWS = 8


@dataclass
class OptionState:
    underlying: str
    option_type: str  # "C" | "P"
    strike: float
    baseline: Baseline = field(default_factory=Baseline)
    recent: list[WindowLite] = field(default_factory=list)
    last_ws: int | None = None  # window_start (epoch s) of the last final window applied
    last_alert_ws: int | None = None
    last_alert_direction: str | None = None
    # the latest window that continued the last alert (same direction, no gap longer than
    # the re-alert interval): one alert per episode, however long it lasts
    last_chain_ws: int | None = None

    def apply(self, w: PressureWindow, bucket_minutes: int, keep: int = RECENT_WINDOWS) -> None:
        """Fold a final window in: baseline aggregate, recent list, high-water mark."""
        self.baseline.add_window(w, bucket_minutes)
        lite = WindowLite.of(w)
        kept = [r for r in self.recent if r.ws != lite.ws][-(keep - 1) :]
        self.recent = [*kept, lite]
        self.last_ws = lite.ws if self.last_ws is None else max(self.last_ws, lite.ws)

    def recorded(self, ws: int) -> WindowLite | None:
        return next((r for r in self.recent if r.ws == ws), None)

    def to_item(self) -> dict[str, Any]:
        return {
            "underlying": self.underlying,
            "option_type": self.option_type,
            "strike": self.strike,
            "baseline": self.baseline.to_json(),
            "recent": json.dumps([r.to_list() for r in self.recent], separators=(",", ":")),
            "last_ws": self.last_ws,
            "last_alert_ws": self.last_alert_ws,
            "last_alert_direction": self.last_alert_direction,
            "last_chain_ws": self.last_chain_ws,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OptionState:
        option_type = str(item["option_type"])
        return cls(
            underlying=str(item["underlying"]),
            option_type=option_type,
            strike=float(item["strike"]),
            baseline=Baseline.from_json(item.get("baseline")),
            recent=[
                WindowLite.from_list(option_type, v) for v in json.loads(item.get("recent") or "[]")
            ],
            last_ws=_opt_int(item.get("last_ws")),
            last_alert_ws=_opt_int(item.get("last_alert_ws")),
            last_alert_direction=item.get("last_alert_direction"),
            last_chain_ws=_opt_int(item.get("last_chain_ws")),
        )


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)
