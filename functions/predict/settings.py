"""Typed configuration of the predict API (env MAGIC8_*), parsed once per container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from magic8.domain.cache import CacheConfig
from magic8.domain.decay import DEFAULT_HALF_LIFE_S
from magic8.domain.service import ServiceConfig
from magic8.domain.warming import DEFAULT_TOP_N, DEFAULT_TRACKED
from magic8.settings import DEFAULT_MODEL_DIR, AwsSettings


class ApiSettings(AwsSettings):
    """Env: MAGIC8_MODEL_DIR, MAGIC8_CACHE_MARKET_TTL_S, MAGIC8_CACHE_FEATURES_TTL_S,
    MAGIC8_CACHE_PREDICTIONS_TTL_S, MAGIC8_DECAY_HALF_LIFE_S, MAGIC8_STALE_AFTER_S,
    MAGIC8_HISTORY_TTL_DAYS, MAGIC8_WARM_TRADES, MAGIC8_WARM_SYMBOLS, MAGIC8_MAX_BODY_BYTES,
    MAGIC8_API_KEY, ... (plus the table
    names of AwsSettings)."""

    model_dir: Path = DEFAULT_MODEL_DIR
    cache_market_ttl_s: float = Field(default=300.0, ge=0)
    cache_features_ttl_s: float = Field(default=60.0, ge=0)
    cache_predictions_ttl_s: float = Field(default=300.0, ge=0)
    cache_missing_market_ttl_s: float = Field(default=15.0, ge=0)
    cache_max_entries: int = Field(default=50_000, ge=1)
    # market data older than this is still used, flagged data_source "stale"
    stale_after_s: float = Field(default=900.0, gt=0)
    # without any market snapshot, time features use the serve time floored to this grid
    feature_time_bucket_s: int = Field(default=300, ge=1)
    record_history: bool = True
    history_ttl_days: float = Field(default=30.0, gt=0)  # retention (TTL) of history
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # /health/detailed reports the gateway stale when its heartbeat is older than this
    gateway_stale_after_s: float = Field(default=120.0, gt=0)
    # market-data circuit breaker: open after N failed reads, retry after this many seconds
    market_circuit_failures: int = Field(default=3, ge=1)
    market_circuit_reset_s: float = Field(default=15.0, gt=0)
    # recommendations (POST /recommend): the external predictors ("" = not configured: left
    # out, named) and where the flags/weights live (AppConfig in AWS, else a JSON file,
    # else the defaults)
    mloptiontrading_url: str = ""
    companion_url: str = ""
    recommend_timeout_s: float = Field(default=1.0, gt=0, le=10)
    recommend_retries: int = Field(default=1, ge=0, le=3)
    recommend_flags_file: Path | None = None
    appconfig_application: str = ""
    appconfig_environment: str = ""
    appconfig_profile: str = ""
    # the key the local HTTP front requires in x-api-key (API Gateway enforces it in AWS)
    api_key: str = "local-dev-key"

    # a prediction's threshold = its expected-value breakeven win probability + this margin
    ev_margin: float = Field(default=0.0, ge=0.0, le=0.5)
    # confidence decay: a cached answer's probability shrinks toward the model's base rate
    # for its symbol x strategy with this half-life in seconds of cache age (0 = off)
    decay_half_life_s: float = Field(default=DEFAULT_HALF_LIFE_S, ge=0.0)
    # cache warming (magic8.domain.warming): trades (the /predict body shape, JSON) and
    # symbols predicted / read ahead at init and on the 5-minute warm event, plus the
    # warm_top_n most requested of the warm_track trade identities counted in memory
    warm_trades: list[dict[str, Any]] = Field(default_factory=list)
    warm_symbols: list[str] = Field(default_factory=list)
    warm_top_n: int = Field(default=DEFAULT_TOP_N, ge=0, le=100)
    warm_track: int = Field(default=DEFAULT_TRACKED, ge=0, le=100_000)

    def service_config(self) -> ServiceConfig:
        return ServiceConfig(
            ev_margin=self.ev_margin,
            decay_half_life_s=self.decay_half_life_s,
            track_requests=self.warm_track,
            caches=CacheConfig(
                market_ttl_s=self.cache_market_ttl_s,
                features_ttl_s=self.cache_features_ttl_s,
                predictions_ttl_s=self.cache_predictions_ttl_s,
                missing_market_ttl_s=self.cache_missing_market_ttl_s,
                max_entries=self.cache_max_entries,
            ),
            stale_after_s=self.stale_after_s,
            feature_time_bucket_s=self.feature_time_bucket_s,
            record_history=self.record_history,
        )
