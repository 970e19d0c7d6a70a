"""DatabentoConfig and the NQ options products the session subscribes to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

NS = 1_000_000_000
# NQ options: quarterly/serial (NQ.OPT) + weeklies Mon-Thu (Q1A..Q5D), Friday (QN1..QN4),
# end of month (QNE). Weekly products have their own parent symbols.
WEEKLY_PRODUCTS: tuple[str, ...] = (
    *(f"Q{w}{d}" for d in "ABCD" for w in range(1, 6)),
    *("QN1", "QN2", "QN3", "QN4", "QNE"),
)
DEFAULT_PARENTS: tuple[str, ...] = ("NQ.OPT", *(f"{p}.OPT" for p in WEEKLY_PRODUCTS))
# the NQ futures front month for the price chart: Databento continuous symbology, calendar
# rule (NQ.c.0 = the nearest expiry; NQ.v.0 would follow volume instead)
DEFAULT_FUTURES: tuple[str, ...] = ("NQ.c.0",)


class DatabentoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None  # never logged (SecretStr masks repr/str)
    dataset: str = "GLBX.MDP3"
    parents: tuple[str, ...] = DEFAULT_PARENTS
    mode: Literal["live", "replay"] = "live"
    replay_paths: tuple[str, ...] = ()
    speed: float = Field(default=0.0, ge=0)  # replay: 0 = as fast as possible
    loop_replay: bool = False
    max_idle_seconds: float = 1.0  # replay pacing: cap on overnight waits
    gateway: str | None = None  # live gateway override (tests: the fake gateway)
    port: int = 13000
    lateness_seconds: float = 30.0
    early_window_seconds: float | None = 30.0  # unusual open windows re-sent early (issue 12)
    idle_advance_seconds: float | None = 5.0  # live: quiet feed -> close windows by wall time
    batch_records: int = 512
    pump_interval_s: float = 0.2
    sequence_gap_threshold: int | None = None
    heartbeat_interval_s: int | None = None
    outbox_max_windows: int = Field(default=10_000, ge=1)  # then the feed waits
    window_poll_s: float = 60.0  # outside the window: re-check this often
    stale_after_s: float = 120.0  # live: no MBO record for this long -> unhealthy
    # NQ futures front month -> 5-minute bars (live: subscribed with the options, inside the
    # same window, when the session has a bar sink; () = no futures subscription)
    futures_symbols: tuple[str, ...] = DEFAULT_FUTURES
    futures_stype: str = "continuous"
    futures_schema: Literal["ohlcv-1m"] = "ohlcv-1m"


def iso_ns(ns: int) -> str | None:
    return datetime.fromtimestamp(ns / NS, tz=UTC).isoformat() if ns else None
