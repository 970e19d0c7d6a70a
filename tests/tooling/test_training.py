"""Training end to end on tiny data (--fast): artifacts, split, CSV exports."""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from magic8.adapters.xgb_native import load_hierarchy
from magic8.domain import features as F
from magic8.domain.pricing import STRATEGY_ORDER
from magic8_dev.ml import data as D
from magic8_dev.ml import train as T
from magic8_dev.ml.magic8_csv import MissingColumnError, load_csv_dataset

pytestmark = pytest.mark.xdist_group("training")


@pytest.mark.parametrize("n_days", [5, 40, 333])
def test_split_is_by_whole_days_in_time_order(n_days: int) -> None:
    day = np.repeat(np.arange(n_days), 7)
    parts = T.split_days(day)
    assert len(parts) == len(T.SPLIT) == 5
    assert (np.sum(parts, axis=0) == 1).all()  # every row in exactly one part
    for a, b in itertools.pairwise(parts):  # each part non-empty, in time order
        assert a.any() and b.any() and day[a].max() < day[b].min()
    for d in range(n_days):  # a day never straddles two parts
        assert sum(bool(m[day == d].all()) for m in parts) == 1
    if n_days == 333:
        shares = [m.sum() / len(day) for m in parts]
        np.testing.assert_allclose(shares, [s for _, s in T.SPLIT], atol=0.01)
    with pytest.raises(ValueError, match="at least 5"):
        T.split_days(np.repeat(np.arange(4), 3))


def test_fast_training_via_cli_writes_native_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "models"
    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    assert T.run(parser.parse_args(["--fast", "--out", str(out)])) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    files = {p.name for p in out.iterdir()}
    assert {"manifest.json", "report.md", "roc.png", "reliability.png", "importance.png"} <= files
    assert "default.ubj" in files and not any(f.endswith((".pkl", ".pickle")) for f in files)
    assert manifest["feature_names"] == list(F.FEATURE_NAMES)
    w = manifest["training_window"]
    assert w["train"][1] < w["valid"][0] <= w["valid"][1] < w["test"][0]
    m = manifest["metrics"]["test"]
    assert m["model"]["auc"] > 0.6
    assert m["model"]["brier"] < m["majority"]["brier"]
    for baseline in ("logistic_regression", "option_math", "majority"):
        assert {"auc", "brier", "logloss"} <= set(m[baseline])
    assert manifest["information_level"]["name"] == "default"
    assert 0 <= manifest["metrics"]["ece_test"] < 0.2
    assert manifest["payoff"] and set(manifest["payoff"]) <= {s.value for s in STRATEGY_ORDER}
    for frac in manifest["payoff"].values():
        assert 0 < frac["win_fraction"] <= 1 and 0 < frac["loss_fraction"] <= 1
    assert set(manifest["metrics"]["test_per_strategy"]) == {s.value for s in STRATEGY_ORDER}
    # the training win rate per hierarchy key: what cached answers decay toward
    rates = manifest["base_rates"]
    assert "default" in rates and all(0.0 <= r <= 1.0 for r in rates.values())
    assert 0.0 < rates["default"] < 1.0
    assert {f"strategy:{s.value}" for s in STRATEGY_ORDER} <= set(rates)
    for spec in manifest["models"].values():
        assert 0 < spec["threshold"] < 1
    assert manifest["elapsed_s"]["total"] > 0
    report = (out / "report.md").read_text()
    assert "logreg" in report and "Brier" in report and "option math" in report
    assert "EV rule" in report and "F1 rule" in report
    hier = load_hierarchy(out)
    assert hier.base_rate("SPX", "Butterfly") == pytest.approx(
        rates.get("symbol_strategy:SPX:Butterfly", rates["strategy:Butterfly"])
    )
    h = load_hierarchy(out)
    assert h.version == manifest["version"]


def _export(ds: D.Dataset, path: Path) -> pd.DataFrame:
    """Write generated trades in the earlier predictor's CSV schema."""
    t = ds.trades
    assert t is not None and ds.ctx_index is not None
    asof = ds.contexts["asof"][ds.ctx_index]
    last = ds.contexts["last"][ds.ctx_index]
    local = [datetime.fromtimestamp(a, UTC).astimezone(F.EASTERN) for a in asof]
    strikes = np.where(np.isfinite(t.strikes), t.strikes, 0.0)[:, ::-1]  # descending, 0 = none
    df = pd.DataFrame(
        {
            "date": [d.strftime("%Y-%m-%d") for d in local],
            "time": [d.strftime("%H:%M:%S") for d in local],
            "symbol": ds.symbol,
            "strategy": [STRATEGY_ORDER[int(c)].value for c in t.strategy],
            "price": last,
            "premium": t.premium,
            "predicted": t.predicted,
            "risk": 0.0,
            "reward": 0.0,
            "profit": ds.profit * 100,
            "strike1": strikes[:, 0],
            "strike2": strikes[:, 1],
            "strike3": strikes[:, 2],
            "strike4": strikes[:, 3],
            "short_term": t.short_term,
            "long_term": t.long_term,
            "action": np.where(t.action_sell > 0.5, "SELL", "BUY"),
            "vix": 17.5,
        }
    )
    df.to_csv(path, index=False)
    return df


def test_csv_export_trains_through_the_same_pipeline(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    market = D.build_market(D.load_daily().tail(400), rng)
    ds = D.generate_trades(market, np.arange(1, 400, 2), 2, rng)
    csv = tmp_path / "magic8_export.csv"
    df = _export(ds, csv)
    # two broken rows: unknown strategy, wrong strike count
    bad = df.iloc[:2].copy()
    bad.loc[bad.index[0], "strategy"] = "Straddle"
    bad.loc[bad.index[1], "strike4"] = 0.0
    bad.loc[bad.index[1], "strategy"] = "Iron Condor"
    pd.concat([df, bad]).to_csv(csv, index=False)

    loaded = load_csv_dataset(csv)
    assert loaded.notes["rows_dropped"] >= 1
    assert len(loaded.y) >= len(df)
    np.testing.assert_array_equal(loaded.y[: len(df)], ds.y)  # label = profit > 0
    # trade part of each row equals the generated training row (same feature code)
    trade_cols = [F.FEATURE_NAMES.index(n) for n in F.TRADE_FEATURES if n != "pop_spot"]
    assert np.isfinite(loaded.X[:, trade_cols]).any()

    out = tmp_path / "csv_models"
    manifest = T.train(out, csv=csv, cfg=T.Config.fast(), report=False, progress=False)
    assert manifest["data"]["source"] == "csv:magic8_export.csv"
    assert manifest["data"]["vix"].startswith("from the export's vix column")
    assert (out / "default.ubj").exists()
    assert load_hierarchy(out).feature_names == F.FEATURE_NAMES

    # without a vix column: refused, unless allowed, and then said loudly and recorded
    no_vix = tmp_path / "no_vix.csv"
    df.drop(columns=["vix"]).to_csv(no_vix, index=False)
    with pytest.raises(MissingColumnError, match="no `vix` column"):
        load_csv_dataset(no_vix)
    parser = argparse.ArgumentParser()
    T.add_arguments(parser)
    args = parser.parse_args(["--fast", "--csv", str(no_vix), "--out", str(tmp_path / "nv")])
    assert T.run(args) == 2 and not (tmp_path / "nv" / "manifest.json").exists()
    with pytest.warns(UserWarning, match="no vix column"):
        loaded = load_csv_dataset(no_vix, allow_missing_vix=True)
    assert "no vix column" in loaded.notes["vix"]
    vix_level = loaded.X[:, F.FEATURE_NAMES.index("vix_level")]
    np.testing.assert_array_equal(vix_level, F.VIX_DEFAULT_LEVEL)


def test_csv_bars_use_only_the_past() -> None:
    from magic8_dev.ml.magic8_csv import _bars_from_prices, _windows

    open_ts = F.session_open_utc(datetime(2025, 3, 14).date()).timestamp()
    ts = open_ts + np.array([60, 180, 240, 960], dtype=np.float64)  # 9:31 9:33 9:34 9:46
    px = np.array([100.0, 102.0, 99.0, 101.0])
    bars = _bars_from_prices(ts, px, np.full(4, open_ts))
    assert len(bars) == 78
    np.testing.assert_array_equal(bars[0, 1:5], [100.0, 102.0, 99.0, 99.0])
    np.testing.assert_array_equal(bars[1, 1:5], [99.0] * 4)  # carried forward
    np.testing.assert_array_equal(bars[3, 1:5], [101.0] * 4)
    # a trade at 9:46 sees only bars closed by then: 9:30, 9:35, 9:40
    win = _windows(bars, np.array([ts[3]]), 5)[0]
    np.testing.assert_array_equal(win[-3:, 0], open_ts + np.array([0, 300, 600]))
    assert np.isnan(win[:2]).all()
