"""PredictionService with the real feature module and small in-test fakes for the
repositories and the model (the real XGBoost hierarchy is exercised in
tests/integration/test_predict_api.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from magic8.domain import features as F
from magic8.domain.cache import CacheConfig
from magic8.domain.confidence import ConfidencePoint, Trend
from magic8.domain.market import Bar, MarketSnapshot
from magic8.domain.service import (
    DefaultFeatureBuilder,
    PredictionService,
    ServiceConfig,
)
from magic8.domain.trades import TradeRequest
from tests.factories import BUTTERFLY, SONAR_NDX
from tests.factories import IRON_CONDOR as CONDOR

NOW = datetime(2026, 1, 6, 16, 2, 30, tzinfo=UTC)  # 11:02:30 ET, a Tuesday


@dataclass(frozen=True)
class Answer:
    win_probability: float
    threshold: float
    model_type: str
    model_version: str


class FakeModel:
    """A fixed random linear-logistic model over every feature: any input change moves p."""

    def __init__(self, version: str = "fake-1") -> None:
        self.version = version
        self.feature_names = F.FEATURE_NAMES
        rng = np.random.default_rng(3)
        self.w = rng.normal(size=len(F.FEATURE_NAMES))
        self.rows_seen: list[int] = []

    def predict(
        self, features: np.ndarray, symbols: Sequence[str], strategies: Sequence[str]
    ) -> list[Answer]:
        assert features.shape == (len(symbols), len(self.feature_names))
        self.rows_seen.append(features.shape[0])
        # squash each feature first so that small ratios (premium/width, distances) matter
        z = np.tanh(np.nan_to_num(features, nan=0.0) * 10.0) @ self.w
        p = 1.0 / (1.0 + np.exp(-z / 3.0))
        return [
            Answer(float(v), 0.55, f"{s}:{st}", self.version)
            for v, s, st in zip(p, symbols, strategies, strict=True)
        ]


def bars(last: float, n: int = 60, end: datetime = NOW, step: float = 1.0) -> tuple[Bar, ...]:
    start = int(end.timestamp()) // 300 * 300 - 300 * n
    out = []
    price = last - step * n / 2
    for i in range(n):
        o = price
        price = price + (step if i % 3 else -step / 2)
        out.append(
            Bar(
                ts=start + 300 * i,
                open=o,
                high=max(o, price) + 1,
                low=min(o, price) - 1,
                close=price,
                volume=100,
            )
        )
    return tuple(out)


def snapshot(
    symbol: str, last: float, updated: datetime = NOW - timedelta(seconds=20)
) -> MarketSnapshot:
    return MarketSnapshot(
        symbol=symbol, last=last, bars=bars(last, end=updated), updated_at=updated, source="seed"
    )


class FakeMarket:
    def __init__(self, snaps: dict[str, MarketSnapshot]) -> None:
        self.snaps = snaps
        self.reads: list[list[str]] = []
        self.fail = False

    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        self.reads.append(list(symbols))
        if self.fail:
            raise ConnectionError("dynamodb down")
        return {s: self.snaps[s] for s in symbols if s in self.snaps}

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        self.snaps[snapshot.symbol] = snapshot


class FakeHistory:
    def __init__(self) -> None:
        self.points: list[ConfidencePoint] = []
        self.fail = False

    def record(self, points: Sequence[ConfidencePoint]) -> int:
        if self.fail:
            raise ConnectionError("throttled")
        self.points.extend(points)
        return len(points)

    def query(self, series: str, start_ms: int, end_ms: int) -> list[ConfidencePoint]:
        return [p for p in self.points if p.series == series and start_ms <= p.ts_ms <= end_ms]

    def trends(self, hours: float, now_ms: int, series: Sequence[str] | None = None) -> list[Trend]:
        return []


class CountingFeatures(DefaultFeatureBuilder):
    def __init__(self) -> None:
        super().__init__()
        self.build_calls: list[int] = []

    def build(
        self, trades: Sequence[TradeRequest], contexts: Sequence[Any], now: datetime | None
    ) -> np.ndarray:
        self.build_calls.append(len(trades))
        return super().build(trades, contexts, now)


class Clocks:
    def __init__(self) -> None:
        self.now = NOW
        self.mono = 10_000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def make(
    snaps: dict[str, MarketSnapshot] | None = None, model: FakeModel | None = None, **config: Any
) -> tuple[PredictionService, FakeMarket, FakeHistory, CountingFeatures, Clocks, FakeModel]:
    market = FakeMarket(
        snaps
        if snaps is not None
        else {
            "SPX": snapshot("SPX", 5850.0),
            "XSP": snapshot("XSP", 585.0),
            "NDX": snapshot("NDX", 21000.0),
            "VIX": snapshot("VIX", 16.5),
        }
    )
    history = FakeHistory()
    feats = CountingFeatures()
    clocks = Clocks()
    model = model or FakeModel()
    svc = PredictionService(
        market,
        model,
        history,
        clock=clocks.wall,
        config=ServiceConfig(**config),
        monotonic=clocks.monotonic,
        features=feats,
    )
    return svc, market, history, feats, clocks, model


def t(base: dict[str, Any] = BUTTERFLY, **over: Any) -> TradeRequest:
    return TradeRequest.model_validate({**base, **over})


def mixed_batch(n: int = 40) -> list[TradeRequest]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(t(premium=20 + i * 0.1))
        elif kind == 1:
            out.append(t(CONDOR, premium=0.5 + i * 0.01))
        elif kind == 2:
            out.append(
                t(
                    {
                        "strategy": "Vertical",
                        "symbol": "XSP",
                        "premium": 1.1,
                        "predicted_price": 586 + i * 0.1,
                        "strikes": [580, 585],
                        "action": "SELL",
                    }
                )
            )
        else:
            out.append(t({**SONAR_NDX, "short_term": 21000 + i}))
    return out


def test_batch_answers_in_request_order_with_every_field() -> None:
    svc, market, _, feats, _, model = make()
    reqs = [t(), t(CONDOR)]
    preds, metrics = svc.predict_batch(reqs, share_market_data=True)
    assert [(p.symbol, p.strategy) for p in preds] == [("SPX", "Butterfly"), ("SPX", "Iron Condor")]
    for p in preds:
        d = p.to_dict()
        assert set(d) == {
            "timestamp",
            "symbol",
            "strategy",
            "win_probability",
            "prediction",
            "threshold",
            "model_type",
            "model_version",
            "data_source",
            "data_age_s",
            "n_features",
            "expected_value",
            "cache_age_s",
            "decay_factor",
            "probability_undecayed",
        }
        assert 0.0 <= p.win_probability <= 1.0
        assert p.prediction == ("WIN" if p.win_probability >= p.threshold else "LOSS")
        assert p.model_version == "fake-1" and p.n_features == len(F.FEATURE_NAMES)
        assert p.data_source == "seed" and p.data_age_s == pytest.approx(20.0)
    assert metrics["prediction_misses"] == 2 and metrics["prediction_hits"] == 0
    assert metrics["feature_misses"] == 2 and metrics["market_data_fetches"] == 1
    assert market.reads == [["SPX", "VIX"]]  # one read: the batch's symbols + VIX
    assert feats.build_calls == [2] and model.rows_seen == [2]


def test_one_market_read_and_one_feature_build_for_a_mixed_batch() -> None:
    svc, market, _, feats, _, model = make()
    _preds, metrics = svc.predict_batch(mixed_batch(40))
    assert len(market.reads) == 1 and set(market.reads[0]) == {"SPX", "XSP", "NDX", "VIX"}
    assert feats.build_calls == [40] and model.rows_seen == [40]
    assert metrics["market_data_fetches"] == 1


def test_without_shared_market_data_each_symbol_is_read_on_its_own() -> None:
    svc, market, _, _, _, _ = make()
    svc.predict_batch(mixed_batch(8), share_market_data=False)
    assert sorted(len(r) for r in market.reads) == [1, 1, 1, 1]


def test_repeat_is_served_from_the_prediction_cache() -> None:
    svc, market, history, feats, clocks, model = make()
    reqs = mixed_batch(20)
    first, _ = svc.predict_batch(reqs)
    clocks.advance(30)
    again, metrics = svc.predict_batch(reqs)
    assert metrics["prediction_hits"] == 20 and metrics["prediction_misses"] == 0
    assert metrics["market_data_fetches"] == 0 and len(market.reads) == 1
    assert feats.build_calls == [20] and model.rows_seen == [20]
    # the model's answers are reused; the served probability decays with the cache age
    assert [p.probability_undecayed for p in again] == [p.win_probability for p in first]
    assert all(p.cache_age_s == pytest.approx(30.0) for p in again)
    assert all(p.cache_age_s == 0.0 and p.decay_factor == 1.0 for p in first)
    # cached answers are not written to the history again; their age moved on
    assert sum(p.count for p in history.points) == 20
    assert len(history.points) == len({p.series for p in history.points})
    assert again[0].data_age_s == pytest.approx(first[0].data_age_s + 30)


def test_trades_differing_only_in_premium_never_share_a_row_or_an_answer() -> None:
    svc, _, _, feats, _, _model = make()
    a, b = t(premium=24.82), t(premium=12.0)
    pa, _ = svc.predict_batch([a])
    pb, metrics = svc.predict_batch([b])
    assert metrics["prediction_hits"] == 0 and metrics["feature_hits"] == 0
    assert feats.build_calls == [1, 1] and len(svc.caches.features) == 2
    assert pa[0].win_probability != pb[0].win_probability


@pytest.mark.parametrize(
    "change",
    [
        {"premium": 30.0},
        {"strikes": [5910, 5855, 5800]},
        {"predicted_price": 5870},
        {"action": "SELL"},
        {"strategy": "Vertical", "strikes": [5855, 5805]},
    ],
)
def test_each_trade_field_moves_the_answer(change: dict[str, Any]) -> None:
    svc, _, _, _, _, _ = make()
    (base,), _ = svc.predict_batch([t()])
    (other,), metrics = svc.predict_batch([t(**change)])
    assert metrics["prediction_hits"] == 0
    assert other.win_probability != base.win_probability


def test_batch_equals_one_by_one() -> None:
    reqs = mixed_batch(40)
    svc, *_ = make()
    batch, _ = svc.predict_batch(reqs)
    single_svc, *_ = make()
    singles = [single_svc.predict_batch([r])[0][0] for r in reqs]
    assert [p.to_dict() for p in batch] == [p.to_dict() for p in singles]


def test_duplicate_trades_in_a_batch_build_one_row() -> None:
    svc, _, history, feats, _, model = make()
    preds, _metrics = svc.predict_batch([t(), t(), t(CONDOR)])
    assert feats.build_calls == [2] and model.rows_seen == [2]
    assert preds[0] == preds[1]
    assert len(history.points) == 2


def test_feature_cache_serves_when_the_prediction_cache_has_expired() -> None:
    svc, _, _, feats, clocks, _ = make(caches=CacheConfig(predictions_ttl_s=10, features_ttl_s=60))
    svc.predict_batch([t()])
    clocks.advance(11)
    _, metrics = svc.predict_batch([t()])
    assert metrics["prediction_misses"] == 1 and metrics["feature_hits"] == 1
    assert feats.build_calls == [1]
    clocks.advance(300)  # past every TTL (and into a new feature-time bucket)
    _, metrics = svc.predict_batch([t()])
    assert metrics["feature_misses"] == 1 and metrics["market_data_fetches"] == 1


def test_time_features_come_from_the_snapshot_so_repeats_hit_across_minutes() -> None:
    svc, *_ = make()
    svc.predict_batch([t()])
    # NOW is 16:02:30: a repeat at 16:06 (another 5-minute bucket) still uses the same
    # snapshot (market cache) and so the same time features: a hit
    svc.clock = lambda: NOW + timedelta(seconds=210)
    assert svc.predict_batch([t()])[1]["prediction_hits"] == 1


def test_time_features_use_the_snapshot_time_and_the_trade_timestamp() -> None:
    svc, _, _, feats, _, _ = make()
    from magic8.domain.features import FEATURE_NAMES

    col = FEATURE_NAMES.index("minutes_since_open")
    rows: list[np.ndarray] = []
    orig = feats.build

    def spy(
        trades: Sequence[TradeRequest], contexts: Sequence[Any], now: datetime | None
    ) -> np.ndarray:
        x = orig(trades, contexts, now)
        rows.extend(x)
        return x

    feats.build = spy  # type: ignore[method-assign]
    svc.predict_batch([t(), t(timestamp="2026-01-06T15:00:00Z")])
    snap_time = NOW - timedelta(seconds=20)  # the SPX snapshot's updated_at: 11:02:10 ET
    assert rows[0][col] == pytest.approx(
        (snap_time.hour - 14) * 60 + snap_time.minute - 30 + 10 / 60
    )
    assert rows[1][col] == pytest.approx(30.0)  # 10:00 ET


def test_without_any_snapshot_the_serve_time_bucket_is_in_the_key() -> None:
    svc, *_ = make(snaps={})
    svc.predict_batch([t()])
    # NOW is 16:02:30; the bucket [16:00, 16:05) still holds at 16:04:59
    svc.clock = lambda: NOW + timedelta(seconds=149)
    assert svc.predict_batch([t()])[1]["prediction_hits"] == 1
    svc.clock = lambda: NOW + timedelta(seconds=151)
    assert svc.predict_batch([t()])[1]["prediction_hits"] == 0
    # a trade with its own timestamp does not depend on the serve time
    stamped = t(timestamp="2026-01-06T16:00:00Z")
    svc.predict_batch([stamped])
    svc.clock = lambda: NOW + timedelta(seconds=600)
    assert svc.predict_batch([stamped])[1]["prediction_hits"] == 1


def test_new_market_snapshot_or_model_version_is_never_served_an_old_answer() -> None:
    svc, market, _, _, clocks, model = make(caches=CacheConfig(market_ttl_s=5))
    svc.predict_batch([t()])
    market.snaps["SPX"] = snapshot("SPX", 5870.0, updated=NOW + timedelta(seconds=3))
    clocks.advance(6)  # market cache expired: the new snapshot is read
    (_p,), metrics = svc.predict_batch([t()])
    assert metrics["prediction_hits"] == 0 and metrics["market_data_fetches"] == 1
    model.version = "fake-2"
    (p2,), metrics = svc.predict_batch([t()])
    assert metrics["prediction_hits"] == 0 and p2.model_version == "fake-2"


def test_missing_market_data_still_answers_flagged_unavailable() -> None:
    svc, market, _, _, _, _ = make(snaps={"VIX": snapshot("VIX", 16.0)})
    (p,), _metrics = svc.predict_batch([t()])
    assert p.data_source == "unavailable" and p.data_age_s is None
    assert 0.0 <= p.win_probability <= 1.0
    # a missing symbol is remembered briefly, not re-read for every request
    svc.predict_batch([t(premium=1.0)])
    assert len(market.reads) == 1


def test_stale_market_data_is_flagged_with_its_age() -> None:
    old = NOW - timedelta(hours=2)
    svc, _, _, _, _, _ = make(
        snaps={"SPX": snapshot("SPX", 5850.0, updated=old), "VIX": snapshot("VIX", 16.0)}
    )
    (p,), _ = svc.predict_batch([t()])
    assert p.data_source == "stale" and p.data_age_s == pytest.approx(7200.0)


def test_market_read_failure_degrades_and_is_not_remembered() -> None:
    svc, market, _, _, _, _ = make()
    market.fail = True
    (p,), metrics = svc.predict_batch([t()])
    assert p.data_source == "unavailable"
    assert metrics["errors"] == ["market_data: ConnectionError"]
    market.fail = False
    (p,), _ = svc.predict_batch([t()])
    assert p.data_source == "seed"


def test_history_failure_does_not_fail_the_batch() -> None:
    svc, _, history, _, _, _ = make()
    history.fail = True
    preds, metrics = svc.predict_batch(mixed_batch(4))
    assert len(preds) == 4 and metrics["errors"] == ["history: ConnectionError"]


def test_history_points_carry_the_answer() -> None:
    svc, _, history, _, _, _ = make()
    preds, metrics = svc.predict_batch([t(), t(CONDOR)])
    assert metrics["history_written"] == 2
    pts = history.points
    assert [p.series for p in pts] == ["SPX#Butterfly", "SPX#Iron Condor"]
    assert pts[0].win_probability == preds[0].win_probability
    assert pts[0].ts_ms == int(NOW.timestamp() * 1000)
    assert [p.to_dict()["win_probability"] for p in svc.history("SPX", "Butterfly", 1.0)] == [
        preds[0].win_probability
    ]


def test_history_gets_one_point_per_series_of_a_batch() -> None:
    svc, _, history, _, _, _ = make()
    reqs = mixed_batch(100)
    preds, metrics = svc.predict_batch(reqs)
    by_series: dict[str, list[float]] = {}
    for p in preds:
        by_series.setdefault(f"{p.symbol}#{p.strategy}", []).append(p.win_probability)
    pts = {p.series: p for p in history.points}
    assert len(history.points) == len(pts) == len(by_series) == metrics["history_written"]
    for series, probs in by_series.items():
        pt = pts[series]
        assert pt.count == len(probs)
        assert pt.win_probability == pytest.approx(sum(probs) / len(probs), abs=1e-6)
        assert (pt.min_probability, pt.max_probability) == (min(probs), max(probs))
        assert pt.prediction == ("WIN" if pt.win_probability >= pt.threshold else "LOSS")


def test_empty_batch() -> None:
    svc, market, *_ = make()
    assert svc.predict_batch([]) == ([], svc.predict_batch([])[1])
    assert market.reads == []


def test_feature_mismatch_fails_fast() -> None:
    model = FakeModel()
    model.feature_names = F.FEATURE_NAMES[:-1]
    with pytest.raises(ValueError, match="retrain"):
        make(model=model)


class RatedModel(FakeModel):
    """FakeModel with a training base rate per strategy (as ModelHierarchy.base_rate)."""

    RATES = {"Butterfly": 0.55, "Iron Condor": 0.9}

    def base_rate(self, symbol: str, strategy: str) -> float:
        return self.RATES[strategy]


def test_a_cached_answer_decays_toward_the_base_rate_and_says_so() -> None:
    svc, _, _, _, clocks, _ = make(model=RatedModel(), decay_half_life_s=120.0)
    reqs = [t(), t(CONDOR)]
    first, _ = svc.predict_batch(reqs)
    clocks.advance(120)  # one half-life (the prediction TTL is 300 s)
    again, metrics = svc.predict_batch(reqs)
    assert metrics["prediction_hits"] == 2
    for old, new, base in zip(first, again, (0.55, 0.9), strict=True):
        p0 = old.win_probability
        assert new.probability_undecayed == p0 and new.cache_age_s == pytest.approx(120.0)
        assert new.decay_factor == pytest.approx(0.5)
        assert new.win_probability == pytest.approx(base + (p0 - base) * 0.5, abs=1e-6)
        assert new.prediction == ("WIN" if new.win_probability >= new.threshold else "LOSS")
    clocks.advance(120)  # two half-lives: a quarter of the distance left
    later, _ = svc.predict_batch(reqs)
    assert later[0].decay_factor == pytest.approx(0.25)
    assert later[0].win_probability == pytest.approx(0.55 + (first[0].win_probability - 0.55) / 4)


def test_decay_off_serves_the_cached_probability_unchanged() -> None:
    svc, _, _, _, clocks, _ = make(model=RatedModel(), decay_half_life_s=0.0)
    first, _ = svc.predict_batch([t()])
    clocks.advance(200)
    again, _ = svc.predict_batch([t()])
    assert again[0].win_probability == first[0].win_probability
    assert again[0].decay_factor == 1.0 and again[0].cache_age_s == pytest.approx(200.0)


def test_a_model_without_base_rates_decays_toward_one_half() -> None:
    svc, _, _, _, clocks, _ = make(decay_half_life_s=60.0)
    first, _ = svc.predict_batch([t()])
    clocks.advance(60)
    again, _ = svc.predict_batch([t()])
    assert again[0].win_probability == pytest.approx(0.5 + (first[0].win_probability - 0.5) / 2)


def test_deferred_history_is_handed_over_only_when_the_task_runs() -> None:
    svc, _, history, _, _, _ = make()
    deferred: list[Any] = []
    reqs = mixed_batch(40)
    preds, metrics = svc.predict_batch(reqs, defer=deferred.append)
    # the answer is complete before any point reaches the repository
    assert len(preds) == 40 and history.points == [] and len(deferred) == 1
    deferred[0]()
    series = {f"{p.symbol}#{p.strategy}" for p in preds}
    assert {p.series for p in history.points} == series
    assert metrics["history_written"] == len(history.points)


def test_a_failed_deferred_hand_over_is_counted_not_raised() -> None:
    svc, _, history, _, _, _ = make()
    history.fail = True
    deferred: list[Any] = []
    _, metrics = svc.predict_batch(mixed_batch(4), defer=deferred.append)
    assert "errors" not in metrics  # the answer went out whole
    deferred[0]()  # after the response: nothing raises to a caller that has gone
    assert svc.history_failures == 1 and svc.status()["history_failures"] == 1


def test_cached_answers_defer_nothing() -> None:
    svc, _, history, _, _, _ = make()
    reqs = mixed_batch(8)
    svc.predict_batch(reqs)
    before = len(history.points)
    deferred: list[Any] = []
    _, metrics = svc.predict_batch(reqs, defer=deferred.append)
    assert deferred == [] and metrics["history_written"] == 0
    assert len(history.points) == before
