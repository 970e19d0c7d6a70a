"""IbSessionConfig: everything the IB session needs, frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway_host.ib.contracts import DEFAULT_SYMBOLS, IbSymbol
from magic8.market_hours import HoursPolicy


class IbSessionConfig(BaseModel):
    """Everything IbSession needs; frozen. The IB API socket itself carries no password."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 11
    client_id_range: int = Field(default=10, ge=1)  # 326 -> client_id + 1 ... + range - 1
    account: str = ""
    symbols: tuple[IbSymbol, ...] = DEFAULT_SYMBOLS
    bar_size: str = "5 mins"
    history_duration: str = "2 D"  # initial load: >= SNAPSHOT_BAR_WINDOW RTH bars
    refresh_duration: str = "3600 S"  # periodic refresh / after reconnect
    what_to_show: str = "TRADES"
    use_rth: bool = True
    market_data_type: int = Field(default=1, ge=1, le=4)  # 1 live, 3 delayed
    hours_policy: HoursPolicy = "rth"
    snapshot_interval_s: float = 1.0
    snapshot_ttl_s: int = 3600
    history_refresh_s: float = 300.0
    history_cache_ttl_s: float = 60.0
    history_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    backoff_jitter: float = Field(default=0.3, ge=0, le=1)
    connectivity_grace_s: float = 30.0
    idle_poll_s: float = 60.0
