"""Typed configuration of the monitor function (env MAGIC8_*), parsed once per container."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from magic8.domain.cache import CacheConfig
from magic8.domain.service import ServiceConfig
from magic8.monitor.drift import (
    DEFAULT_MIN_DAYS,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_WINDOW_DAYS,
)
from magic8.monitor.sweep import SweepConfig
from magic8.settings import DEFAULT_MODEL_DIR, AwsSettings


class MonitorSettings(AwsSettings):
    """Env: MAGIC8_MONITOR_MOVE_THRESHOLD, MAGIC8_MONITOR_STALE_AFTER_S,
    MAGIC8_WS_ENDPOINT, MAGIC8_MODEL_DIR, ..."""

    monitor_move_threshold: float = Field(default=0.10, gt=0, le=1)
    monitor_stale_after_s: float = Field(default=180.0, gt=0)
    # API Gateway WebSocket Management API endpoint (https://{id}.execute-api.{region}
    # .amazonaws.com/{stage}, set by infra/constructs/push.py); the local WebSocket server
    # serves the same API. Empty: no push.
    ws_endpoint: str = ""
    model_dir: Path = DEFAULT_MODEL_DIR
    monitor_drift_psi_threshold: float = Field(default=DEFAULT_PSI_THRESHOLD, gt=0)
    monitor_drift_min_samples: int = Field(default=DEFAULT_MIN_SAMPLES, ge=1)
    monitor_drift_window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1, le=60)
    monitor_drift_min_days: int = Field(default=DEFAULT_MIN_DAYS, ge=1, le=60)
    monitor_accuracy_windows: list[int] = Field(default_factory=lambda: [1, 7, 30])
    # a sweep must read fresh snapshots: keep the market cache shorter than the interval
    monitor_market_ttl_s: float = Field(default=20.0, ge=0)
    history_ttl_days: float = Field(default=30.0, gt=0)

    def service_config(self) -> ServiceConfig:
        """Used by magic8.adapters.prediction_service.build_prediction_service. No confidence
        decay: a sweep compares the model's view with the previous sweep's, and an answer
        cached a few minutes ago (same market snapshot) must not look like a move or a
        crossing."""
        return ServiceConfig(
            caches=CacheConfig(market_ttl_s=self.monitor_market_ttl_s), decay_half_life_s=0.0
        )

    def sweep_config(self) -> SweepConfig:
        return SweepConfig(
            move_threshold=self.monitor_move_threshold,
            stale_after_s=self.monitor_stale_after_s,
        )
