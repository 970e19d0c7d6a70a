"""POST /recommend: one recommendation for a trade from every enabled predictor (magic8's
model, MLOptionTrading, Magic8-Companion), and the `recommendation` block that
POST /predict/batch adds when asked (`"recommend": true`). The rules are in
magic8.domain.recommend; sources and flags in magic8.adapters.recommend_sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.feature_flags import FeatureFlags

from functions.predict.settings import ApiSettings
from magic8.adapters.recommend_sources import (
    HttpScoreSource,
    JsonFileStore,
    StaticStore,
    appconfig_store,
    load_config,
)
from magic8.domain.recommend import (
    Recommendation,
    ScoreSource,
    magic8_score,
    recommend,
)
from magic8.domain.trades import TradeRequest


class MissingSource:
    """A source with no URL configured: always left out, named."""

    def __init__(self, name: str) -> None:
        self.name = name

    def score(self, trade: TradeRequest) -> Any:
        raise LookupError(f"{self.name}: no URL configured")


@dataclass
class Recommender:
    flags: FeatureFlags
    sources: list[ScoreSource]

    def for_trade(self, trade: TradeRequest, win_probability: float | None) -> Recommendation:
        config = load_config(self.flags)
        own = magic8_score(win_probability) if win_probability is not None else None
        return recommend(trade, own, self.sources, config)


def build_recommender(settings: ApiSettings) -> Recommender:
    if settings.appconfig_application and settings.appconfig_profile:
        store: Any = appconfig_store(
            settings.appconfig_application,
            settings.appconfig_environment or "prod",
            settings.appconfig_profile,
        )
    elif settings.recommend_flags_file is not None:
        store = JsonFileStore(settings.recommend_flags_file)
    else:
        store = StaticStore()
    sources: list[ScoreSource] = []
    for name, url in (
        ("MLOptionTrading", settings.mloptiontrading_url),
        ("Magic8-Companion", settings.companion_url),
    ):
        if url:
            sources.append(
                HttpScoreSource(
                    name,
                    url,
                    timeout_s=settings.recommend_timeout_s,
                    retries=settings.recommend_retries,
                )
            )
        else:
            sources.append(MissingSource(name))
    return Recommender(FeatureFlags(store=store), sources)
