"""The committed models/ through ModelHierarchy: routing, trade-dependence, NaN safety."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from magic8.adapters.xgb_native import load_hierarchy
from magic8.domain import features as F
from magic8.domain.market import Bar, MarketSnapshot
from magic8.domain.model import ModelHierarchy, model_keys
from magic8.domain.trades import TradeRequest
from magic8.settings import DEFAULT_MODEL_DIR
from tests.factories import IRON_CONDOR as IRON_CONDOR_BODY
from tests.factories import trade

NOW = datetime(2025, 3, 14, 17, 0, tzinfo=UTC)  # 13:00 ET, a Friday


@pytest.fixture(scope="module")
def hierarchy() -> ModelHierarchy:
    return load_hierarchy(DEFAULT_MODEL_DIR)


def _with(trade: TradeRequest, update: dict[str, object]) -> TradeRequest:
    """A validated copy (model_copy(update=) skips validation)."""
    return TradeRequest(**{**trade.model_dump(), **update})


def _snapshot(symbol: str, level: float, vol: float) -> MarketSnapshot:
    rng = np.random.default_rng(abs(hash(symbol)) % 2**32)
    n = 96
    t0 = int(NOW.timestamp()) - 300 * n
    px = level * np.exp(np.cumsum(rng.normal(0, vol, n)))
    px *= level / px[-1]
    bars = tuple(
        Bar(ts=t0 + 300 * i, open=p, high=p * (1 + vol), low=p * (1 - vol), close=p, volume=1e3)
        for i, p in enumerate(px)
    )
    return MarketSnapshot(symbol=symbol, last=float(px[-1]), bars=bars, updated_at=NOW)


@pytest.fixture(scope="module")
def spx() -> F.MarketContext:
    return F.market_context_from_snapshots(
        _snapshot("SPX", 5850.0, 0.0008), _snapshot("VIX", 16.0, 0.002)
    )


BUTTERFLY = trade()
IRON_CONDOR = trade(IRON_CONDOR_BODY)


def _p(h: ModelHierarchy, ctx: F.MarketContext, *trades: TradeRequest) -> list[float]:
    x = F.build_features(list(trades), [ctx] * len(trades))
    answers = h.predict(x, [t.symbol.value for t in trades], [t.strategy.value for t in trades])
    return [a.win_probability for a in answers]


def test_manifest_is_complete_and_native(hierarchy: ModelHierarchy) -> None:
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    assert tuple(manifest["feature_names"]) == F.FEATURE_NAMES == hierarchy.feature_names
    assert "default" in manifest["models"]
    for spec in manifest["models"].values():
        assert spec["file"].endswith(".ubj")
        assert 0.0 < spec["threshold"] < 1.0
    assert not list(DEFAULT_MODEL_DIR.glob("*.pkl")) and not list(
        DEFAULT_MODEL_DIR.glob("*.pickle")
    )
    test = manifest["metrics"]["test"]
    assert test["model"]["auc"] > test["logistic_regression"]["auc"] > 0.5
    assert test["model"]["brier"] < test["logistic_regression"]["brier"]
    assert test["model"]["brier"] < test["majority"]["brier"]
    # the shipped model beats the calibrated option-math baseline on Brier and log loss,
    # overall and per strategy, at every information level trained
    assert manifest["information_level"]["name"] == "default"
    assert set(manifest["levels"]) >= {"default", "none"}
    for level in manifest["levels"].values():
        assert level["ece_test"] <= 0.03
        for block in [level["test"], *level["test_per_strategy"].values()]:
            assert block["model"]["brier"] < block["option_math"]["brier"]
            assert block["model"]["logloss"] < block["option_math"]["logloss"]
    for spec in manifest["models"].values():
        assert not spec["hit_round_cap"]
    assert set(manifest["drift"]) == set(F.FEATURE_NAMES)
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert size < 5 * 1024 * 1024


def test_routing_falls_back_through_the_hierarchy(hierarchy: ModelHierarchy) -> None:
    for symbol in ("SPX", "SPY", "XSP", "NDX", "QQQ", "RUT"):
        for strategy in ("Butterfly", "Iron Condor", "Vertical", "Sonar"):
            key = hierarchy.route(symbol, strategy)
            keys = model_keys(symbol, strategy)
            assert key in hierarchy.entries
            # the most specific key that exists serves
            assert key == next(k for k in keys if k in hierarchy.entries)
    # RUT has no model of its own
    assert not any("RUT" in k for k in hierarchy.entries)
    assert hierarchy.route("RUT", "Butterfly") in ("strategy:Butterfly", "default")


@pytest.mark.parametrize(
    "update",
    [
        {"premium": 12.0},
        {"premium": 36.0},
        {"predicted_price": 5885},
        {"strikes": [5935, 5885, 5835]},
        {"action": "SELL"},
        {"strategy": "Sonar", "strikes": [5905, 5880, 5830, 5805], "premium": 10.0},
    ],
)
def test_each_trade_field_moves_the_probability(
    hierarchy: ModelHierarchy, spx: F.MarketContext, update: dict[str, object]
) -> None:
    base = _p(hierarchy, spx, BUTTERFLY)[0]
    changed = TradeRequest(**{**BUTTERFLY.model_dump(), **update})
    assert _p(hierarchy, spx, changed)[0] != pytest.approx(base, abs=1e-4), update


@pytest.mark.parametrize(
    ("strategy", "strikes", "top"),
    [
        ("Butterfly", [5825, 5850, 5875], 24.0),
        ("Iron Condor", [5830, 5835, 5875, 5880], 4.9),
        ("Iron Condor", [5800, 5820, 5880, 5900], 19.0),
        ("Sonar", [5800, 5840, 5860, 5900], 39.0),
        ("Vertical", [5820, 5830], 9.5),
        ("Vertical", [5860, 5870], 9.5),
    ],
)
@pytest.mark.parametrize("action", ["BUY", "SELL"])
def test_a_better_price_never_lowers_the_probability(
    hierarchy: ModelHierarchy,
    spx: F.MarketContext,
    strategy: str,
    strikes: list[float],
    top: float,
    action: str,
) -> None:
    """Same trade, premium swept: a SELL wins more often the more credit it takes, a BUY
    the less it pays (monotone constraints on the premium-derived features)."""
    prems = np.linspace(0.1, top, 15)
    trades = [
        TradeRequest(
            strategy=strategy,
            symbol="SPX",
            premium=float(p),
            predicted_price=5855,
            strikes=strikes,
            action=action,
        )
        for p in prems
    ]
    p = np.array(_p(hierarchy, spx, *trades))
    steps = np.diff(p) if action == "SELL" else -np.diff(p)
    assert (steps >= -1e-6).all(), p
    assert p[0] != pytest.approx(p[-1], abs=1e-3)  # and it does move


def test_batch_equals_one_by_one(hierarchy: ModelHierarchy, spx: F.MarketContext) -> None:
    ndx = F.market_context_from_snapshots(_snapshot("NDX", 21000.0, 0.001), None)
    trades, ctxs = [], []
    for i in range(30):
        t = (BUTTERFLY if i % 2 else IRON_CONDOR).model_copy(
            update={"premium": (24.82 if i % 2 else 0.65) * (1 + i / 40)}
        )
        if i % 3 == 0:
            t = _with(t, {"symbol": "RUT"})
        trades.append(t)
        ctxs.append(spx if i % 5 else ndx)
    x = F.build_features(trades, ctxs, now=NOW)
    syms = [t.symbol.value for t in trades]
    strats = [t.strategy.value for t in trades]
    batch = hierarchy.predict(x, syms, strats)
    single = [
        hierarchy.predict(x[i : i + 1], syms[i : i + 1], strats[i : i + 1])[0] for i in range(30)
    ]
    assert batch == single


def test_nan_and_missing_market_never_leak(hierarchy: ModelHierarchy) -> None:
    empty = F.MarketContext("SPX", np.empty((0, 6)), np.empty((0, 6)), 5850.0, NOW)
    x = F.build_features([BUTTERFLY, IRON_CONDOR], [empty, empty])
    answers = hierarchy.predict(x, ["SPX", "SPX"], ["Butterfly", "Iron Condor"])
    x_nan = np.full((2, len(F.FEATURE_NAMES)), np.nan)
    answers += hierarchy.predict(x_nan, ["SPX", "RUT"], ["Vertical", "Sonar"])
    for a in answers:
        assert np.isfinite(a.win_probability) and 0.0 <= a.win_probability <= 1.0
        assert np.isfinite(a.threshold)
        assert a.model_version == hierarchy.version


def test_bad_shapes_are_rejected(hierarchy: ModelHierarchy) -> None:
    with pytest.raises(ValueError, match="features"):
        hierarchy.predict(np.zeros((1, 3)), ["SPX"], ["Butterfly"])
    with pytest.raises(ValueError, match="one symbol"):
        hierarchy.predict(np.zeros((2, len(F.FEATURE_NAMES))), ["SPX"], ["Butterfly"])


def test_served_probability_is_the_booster_through_its_calibration_map(
    hierarchy: ModelHierarchy, spx: F.MarketContext
) -> None:
    """Serve-time calibration equals the offline map: the per-strategy knots of the model
    that answers, applied to its raw booster output (the manifest holds no pickled
    calibrator, only x/y knots)."""
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    trades = [BUTTERFLY, IRON_CONDOR]
    x = F.build_features(trades, [spx] * len(trades))
    answers = hierarchy.predict(x, ["SPX", "SPX"], ["Butterfly", "Iron Condor"])
    for row, (req, ans) in enumerate(zip(trades, answers, strict=True)):
        spec = manifest["models"][ans.model_type]
        knots = spec["calibration_by_strategy"].get(req.strategy.value) or spec["calibration"]
        assert knots, ans.model_type
        raw = hierarchy.entries[ans.model_type].booster.inplace_predict(
            np.ascontiguousarray(x[row : row + 1], dtype=np.float32)
        )
        expected = float(np.interp(float(raw[0]), knots["x"], knots["y"]))
        assert ans.win_probability == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert np.all(np.diff(knots["x"]) > 0) and np.all(np.diff(knots["y"]) >= 0)


def test_base_rate_is_the_training_win_rate_most_specific_first(
    hierarchy: ModelHierarchy,
) -> None:
    """What cached answers decay toward (magic8.domain.decay)."""
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    by_strategy = manifest["data"]["win_rate_by_strategy"]
    for strategy, rate in by_strategy.items():
        assert hierarchy.base_rate("SPX", strategy) == pytest.approx(rate)
    h = ModelHierarchy(
        version="t",
        feature_names=hierarchy.feature_names,
        entries=hierarchy.entries,
        manifest={
            "base_rates": {"symbol_strategy:SPX:Butterfly": 0.4, "strategy:Butterfly": 0.6},
            "data": {"win_rate_by_strategy": {"Vertical": 0.8}},
            "metrics": {"test": {"win_rate": 0.7}},
        },
    )
    assert h.base_rate("SPX", "Butterfly") == 0.4
    assert h.base_rate("NDX", "Butterfly") == 0.6
    assert h.base_rate("NDX", "Vertical") == 0.8
    assert h.base_rate("NDX", "Sonar") == 0.7
    assert ModelHierarchy("t", (), {}, manifest={}).base_rate("SPX", "Sonar") == 0.5
