"""The generated training world is causal, its forecasts carry the stated information,
its base rates are the real record's, and the trained model is calibrated.

Small data on purpose (fits in `make test`); `magic8 train` measures the same things on
the full data and writes them to models/manifest.json and models/datacard.md."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from magic8_dev.ml import data as D
from magic8_dev.ml import train as T

pytestmark = pytest.mark.xdist_group("training")


@pytest.fixture(scope="module")
def world() -> tuple[Any, Any]:
    daily = D.load_daily()
    return daily, D.build_market(daily, np.random.default_rng(11))


def _trades(world: tuple[Any, Any], level: str, seed: int = 5) -> D.Dataset:
    daily, market = world
    days = np.arange(1, len(daily.dates), 2)
    return D.generate_trades(market, days, 1, np.random.default_rng(seed), info_level=level)


def test_market_features_at_entry_do_not_predict_the_rest_of_the_day(
    world: tuple[Any, Any],
) -> None:
    ds = _trades(world, "default")
    sp = T.split_days(ds.day)
    # fitted on the early days, scored on the held-out test days (2016-2018, real VIX)
    auc = D.direction_auc(ds, sp.train | sp.early_stop | sp.select, sp.test | sp.calibrate)
    assert 0.45 <= auc <= 0.55, auc


def test_the_paths_end_on_the_real_close_and_are_not_pinned_to_the_real_range(
    world: tuple[Any, Any],
) -> None:
    daily, market = world
    bars = market.bars["sp500"].reshape(len(daily.dates), D.BARS_PER_DAY, 6)
    o, h, _lo, c = daily.ohlc["sp500"].T
    np.testing.assert_allclose(bars[:, -1, 4], c, rtol=1e-9)
    np.testing.assert_allclose(bars[:, 0, 1], o, rtol=1e-9)
    # the generated high is the real high on almost no day (a pinned bridge hits it daily)
    assert np.mean(np.isclose(bars[:, :, 2].max(axis=1), h, rtol=1e-7)) < 0.05


@pytest.mark.parametrize(("level", "target"), [("none", 0.50), ("default", 0.55)])
def test_forecast_direction_agreement_is_the_stated_level(
    world: tuple[Any, Any], level: str, target: float
) -> None:
    ds = _trades(world, level)
    assert ds.notes["info_level"] == level
    assert abs(ds.notes["forecast_direction_agreement"] - target) < 0.02
    if level == "none":
        assert abs(ds.notes["forecast_corr"]) < 0.03


def test_unknown_information_level_is_refused() -> None:
    with pytest.raises(ValueError, match="information level"):
        D.info_correlation("psychic")


def test_win_rates_sit_near_the_real_magic8_record(world: tuple[Any, Any]) -> None:
    ds = _trades(world, "default")
    for code in range(4):
        name = D.strategy_name(code)
        rate = float(ds.y[ds.strategy == code].mean())
        assert abs(rate - D.REAL_WIN_RATES[name]) <= 0.05, (name, rate)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: Path = tmp_path_factory.mktemp("calibrated")
    # every other day of the whole history, one entry per day and family: the same eras
    # in each part of the split as the shipped models (a short recent window would
    # calibrate on calm 2017 and test on 2018's volatility spike), ~20 k rows per level
    cfg = T.Config(
        slots_per_day=1,
        day_stride=2,
        last_days=0,
        rounds=400,
        early_stop=20,
        min_train=4000,
        min_valid=800,
        min_class=200,
        min_calibration=300,
        info_levels=("default", "none"),
    )
    return T.train(out, cfg=cfg, report=False, progress=False)


@pytest.mark.parametrize("level", ["default", "none"])
def test_calibrated_on_held_out_days_at_each_information_level(
    trained: dict[str, Any], level: str
) -> None:
    summary = trained["levels"][level]
    assert summary["ece_test"] <= 0.03, summary["ece_test"]
    test = summary["test"]
    # the model beats the calibrated option-math baseline overall on Brier and log loss
    assert test["model"]["brier"] < test["option_math"]["brier"]
    assert test["model"]["logloss"] < test["option_math"]["logloss"]
    assert test["model"]["brier"] < test["majority"]["brier"]


def test_manifest_states_level_calibration_and_round_caps(trained: dict[str, Any]) -> None:
    assert trained["information_level"]["name"] == "default"
    assert trained["metrics"]["ece_test"] <= 0.03
    for key, spec in trained["models"].items():
        assert not spec["hit_round_cap"], key
        assert spec["calibration"] or spec["calibration_by_strategy"], key
    split = trained["split"]
    names = [name for name, _ in T.SPLIT]
    assert list(split) == names
    for a, b in itertools.pairwise(names):  # disjoint, in time order
        assert split[a]["days"][1] < split[b]["days"][0]
    rules = trained["metrics"]["pnl_test"]["rules"]
    assert set(rules) == {"take_all", "f1_rule", "ev_rule"}
