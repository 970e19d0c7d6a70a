"""The recommendation's outside world: the external predictors over HTTP and the flags
and weights through Powertools feature flags.

HttpScoreSource: POST <url> with the trade (JSON, as the API received it after aliases and
defaults) -> {"score" or "win_probability": 0..1, "confidence": 0..1 (optional, default
the score's certainty max(p, 1 - p))}. Each call has a timeout and `retries` extra
attempts; a circuit breaker per source opens after `failures` failed calls and skips the
source (left out, named "CircuitOpenError") until `reset_s` has passed.

Flags and weights (Powertools feature flags; AppConfig in AWS, a JSON file locally,
re-read on every request without a restart, so flipping a flag changes the next answer):

    {"recommend_magic8": {"default": true},
     "recommend_mloptiontrading": {"default": true},
     "recommend_companion": {"default": true},
     "recommend_weights": {"boolean_type": false,
        "default": {"magic8": 0.5, "MLOptionTrading": 0.3, "Magic8-Companion": 0.2}},
     "recommend_thresholds": {"boolean_type": false,
        "default": {"min_win_probability": 0.7, "min_confidence": 0.8}}}
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.feature_flags import FeatureFlags
from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

from magic8.adapters.circuit import CircuitBreaker
from magic8.domain.recommend import (
    DEFAULT_WEIGHTS,
    MIN_CONFIDENCE,
    MIN_WIN_PROBABILITY,
    RecommendConfig,
    SourceScore,
)
from magic8.domain.trades import TradeRequest

FLAG_OF = {
    "magic8": "recommend_magic8",
    "MLOptionTrading": "recommend_mloptiontrading",
    "Magic8-Companion": "recommend_companion",
}
DEFAULT_FLAGS: dict[str, Any] = {
    **{flag: {"default": True} for flag in FLAG_OF.values()},
    "recommend_weights": {"boolean_type": False, "default": dict(DEFAULT_WEIGHTS)},
    "recommend_thresholds": {
        "boolean_type": False,
        "default": {"min_win_probability": MIN_WIN_PROBABILITY, "min_confidence": MIN_CONFIDENCE},
    },
}


class BadAnswer(ValueError):
    pass


class HttpScoreSource:
    def __init__(
        self,
        name: str,
        url: str,
        timeout_s: float = 1.0,
        retries: int = 1,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.breaker = breaker or CircuitBreaker(name, failure_threshold=3, reset_timeout_s=30.0)

    def _once(self, body: bytes) -> SourceScore:
        req = urllib.request.Request(
            self.url, data=body, headers={"content-type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            data = json.loads(resp.read(65536))
        raw = data.get("score", data.get("win_probability"))
        if not isinstance(raw, int | float) or not 0.0 <= float(raw) <= 1.0:
            raise BadAnswer(f"{self.name}: no score in 0..1")
        score = float(raw)
        conf = data.get("confidence")
        if not isinstance(conf, int | float) or not 0.0 <= float(conf) <= 1.0:
            conf = max(score, 1.0 - score)
        return SourceScore(score, float(conf))

    def score(self, trade: TradeRequest) -> SourceScore:
        body = trade.model_dump_json().encode()

        def attempt() -> SourceScore:
            last: Exception | None = None
            for _ in range(1 + self.retries):
                try:
                    return self._once(body)
                except Exception as exc:
                    last = exc
            assert last is not None
            raise last

        return self.breaker.call(attempt)


class JsonFileStore(StoreProvider):
    """The local feature-flag store: a JSON file, read on every evaluation (a missing or
    broken file means the defaults)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return DEFAULT_FLAGS
        return data if isinstance(data, dict) else DEFAULT_FLAGS

    def get_configuration(self) -> dict[str, Any]:
        return self.get_raw_configuration


class StaticStore(JsonFileStore):
    """The defaults (no file, no AppConfig)."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))


def appconfig_store(application: str, environment: str, profile: str) -> StoreProvider:
    from aws_lambda_powertools.utilities.feature_flags import AppConfigStore

    # max_age 30 s: a changed flag reaches a warm container within half a minute
    return AppConfigStore(
        environment=environment, application=application, name=profile, max_age=30
    )


def load_config(flags: FeatureFlags) -> RecommendConfig:
    """The recommendation's config, evaluated now (the store decides how fresh)."""
    enabled = {
        source: bool(flags.evaluate(name=flag, default=True)) for source, flag in FLAG_OF.items()
    }
    weights = flags.evaluate(name="recommend_weights", default=dict(DEFAULT_WEIGHTS))
    thresholds = flags.evaluate(name="recommend_thresholds", default={})
    w = {
        k: float(v)
        for k, v in (weights if isinstance(weights, dict) else DEFAULT_WEIGHTS).items()
        if isinstance(v, int | float) and v >= 0
    }
    t = thresholds if isinstance(thresholds, dict) else {}
    return RecommendConfig(
        enabled=enabled,
        weights=w or dict(DEFAULT_WEIGHTS),
        min_win_probability=float(t.get("min_win_probability", MIN_WIN_PROBABILITY)),
        min_confidence=float(t.get("min_confidence", MIN_CONFIDENCE)),
    )
