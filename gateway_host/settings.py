"""GatewaySettings: the gateway host's configuration, parsed once at startup.

Env vars (prefix MAGIC8_, plus the AwsSettings table/stream names):
  MAGIC8_IB_ENABLED (true), MAGIC8_IB_HOST (127.0.0.1), MAGIC8_IB_PORT (4002),
  MAGIC8_IB_CLIENT_ID (11), MAGIC8_IB_ACCOUNT (""), MAGIC8_IB_MARKET_DATA_TYPE (1 live,
  3 delayed), MAGIC8_OUTSIDE_HOURS (false: no IB requests outside NYSE RTH),
  MAGIC8_SNAPSHOT_INTERVAL_S (1.0), MAGIC8_SNAPSHOT_TTL_S (3600),
  MAGIC8_IB_BACKOFF_INITIAL_S (1.0), MAGIC8_IB_BACKOFF_MAX_S (60),
  MAGIC8_IB_REQUIRED_FOR_HEALTH (false: IB down -> /health 200 with "degraded": ["ib"]),
  MAGIC8_DATABENTO_ENABLED (false), MAGIC8_DATABENTO_API_KEY or DATABENTO_API_KEY (secret,
  injected by ECS from Secrets Manager), MAGIC8_DATABENTO_MODE (live | replay),
  MAGIC8_DATABENTO_REPLAY_PATH, MAGIC8_DATABENTO_REPLAY_SPEED (0 = as fast as possible),
  MAGIC8_DATABENTO_PARENTS (comma list; empty = the session's default),
  MAGIC8_DATABENTO_DATASET (GLBX.MDP3), MAGIC8_DATABENTO_FUTURES (NQ.c.0: the NQ front month's
  1-minute bars -> 5-minute bars in the bars table; "" = none),
  MAGIC8_BACKFILL_DAILY_BUDGET_USD (20.0),
  MAGIC8_STREAMING_DAILY_BUDGET_USD (25.0), MAGIC8_DATABENTO_USD_PER_GB (5.0: the estimate's
  price; set it from your Databento plan), MAGIC8_STOP_STREAMING_AT_BUDGET (false: alert and
  stop backfill only), MAGIC8_STREAM_WINDOW ("09:30-16:00" America/New_York on CME Globex
  session days; "always" = whenever Globex is open), MAGIC8_STREAM_WINDOW_TZ,
  MAGIC8_FLOW_MAX_BUFFERED (20000 windows in memory), MAGIC8_FLOW_SPILL_DIR ("" = none:
  backpressure; the ECS task sets /tmp/magic8-flow-outbox), MAGIC8_FLOW_FLUSH_TIMEOUT_S (12),
  MAGIC8_METRICS_ENABLED (true), MAGIC8_METRICS_INTERVAL_S (60),
  MAGIC8_HEALTH_HOST (0.0.0.0), MAGIC8_HEALTH_PORT (8080), MAGIC8_HEARTBEAT_INTERVAL_S (10),
  MAGIC8_HEARTBEAT_TTL_S (86400), MAGIC8_SHUTDOWN_TIMEOUT_S (25; the ECS stop timeout is 30),
  MAGIC8_LOG_LEVEL (INFO).
Secrets are SecretStr: their repr, str and JSON dump are masked.
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr

from gateway_host.ib.config import IbSessionConfig
from magic8.market_hours import StreamingWindow
from magic8.settings import AwsSettings


class GatewaySettings(AwsSettings):
    ib_enabled: bool = True
    ib_host: str = "127.0.0.1"
    ib_port: int = 4002
    ib_client_id: int = 11
    ib_account: str = ""
    ib_market_data_type: int = Field(default=1, ge=1, le=4)
    ib_backoff_initial_s: float = 1.0
    ib_backoff_max_s: float = 60.0
    ib_connect_timeout_s: float = 5.0
    outside_hours: bool = False
    # false: IB unavailable is reported (/health "degraded", IbConnected metric) but never
    # fails the container health check (no crash loop while IB waits for the second factor)
    ib_required_for_health: bool = False
    snapshot_interval_s: float = 1.0
    snapshot_ttl_s: int = 3600

    databento_enabled: bool = False
    databento_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MAGIC8_DATABENTO_API_KEY", "DATABENTO_API_KEY"),
    )
    databento_mode: Literal["live", "replay"] = "live"
    databento_replay_path: str = ""
    databento_replay_speed: float = 0.0
    databento_parents: str = ""  # "" = the DatabentoSession default (NQ.OPT + weeklies)
    databento_dataset: str = "GLBX.MDP3"
    databento_futures: str = "NQ.c.0"  # continuous symbols, comma list; "" = no NQ bars
    backfill_daily_budget_usd: float = 20.0
    streaming_daily_budget_usd: float = 25.0
    databento_usd_per_gb: float = Field(default=5.0, ge=0)
    stop_streaming_at_budget: bool = False
    stream_window: str = "09:30-16:00"
    stream_window_tz: str = "America/New_York"

    # the Kinesis producer: bounded memory, spill to disk, flush deadline at shutdown
    flow_max_buffered: int = Field(default=20_000, ge=1)
    flow_spill_dir: str = ""
    flow_flush_timeout_s: float = Field(default=12.0, ge=0)

    metrics_enabled: bool = True  # EMF lines on stdout (CloudWatch extracts the metrics)
    metrics_interval_s: float = Field(default=60.0, gt=0)

    health_host: str = "0.0.0.0"
    health_port: int = 8080
    heartbeat_interval_s: float = 10.0
    heartbeat_ttl_s: int = 86400
    shutdown_timeout_s: float = 25.0
    log_level: str = "INFO"

    def streaming_window(self) -> StreamingWindow:
        """MAGIC8_STREAM_WINDOW as a StreamingWindow on the CME Globex calendar."""
        if self.stream_window.strip().lower() == "always":
            return StreamingWindow(always=True)
        start, end = (time.fromisoformat(p.strip()) for p in self.stream_window.split("-", 1))
        return StreamingWindow(start, end, ZoneInfo(self.stream_window_tz))

    @property
    def parent_symbols(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.databento_parents.split(",") if p.strip())

    @property
    def futures_symbols(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.databento_futures.split(",") if p.strip())

    def ib_config(self) -> IbSessionConfig:
        return IbSessionConfig(
            host=self.ib_host,
            port=self.ib_port,
            client_id=self.ib_client_id,
            account=self.ib_account,
            market_data_type=self.ib_market_data_type,
            hours_policy="always" if self.outside_hours else "rth",
            snapshot_interval_s=self.snapshot_interval_s,
            snapshot_ttl_s=self.snapshot_ttl_s,
            backoff_initial_s=self.ib_backoff_initial_s,
            backoff_max_s=self.ib_backoff_max_s,
            connect_timeout_s=self.ib_connect_timeout_s,
        )
