"""ACCEPTANCE: /accuracy figures equal an independent computation (pandas + scikit-learn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, brier_score_loss

from functions.predict.monitor_routes import MonitorDeps, get_monitor_deps, router
from magic8.monitor.accuracy import (
    InMemoryOutcomeStore,
    Outcome,
    OutcomeIn,
    accuracy_report,
    calibration,
)
from magic8.monitor.sweep import CrossingState, InMemorySweepStateStore
from magic8.monitor.watchlist import InMemoryWatchlistStore

NOW = datetime(2026, 11, 17, 21, 30, tzinfo=UTC)
SYMBOLS = ("SPX", "NDX")
STRATEGIES = ("Butterfly", "Iron Condor")


@pytest.fixture()
def api() -> tuple[TestClient, MonitorDeps]:
    deps = MonitorDeps(
        watchlist=InMemoryWatchlistStore(),
        outcomes=InMemoryOutcomeStore(),
        sweep_state=InMemorySweepStateStore(),
        clock=lambda: NOW,
    )
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_monitor_deps] = lambda: deps
    return TestClient(app), deps


def _random_outcomes(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # a third in the last day, the rest spread over 40 days (some outside every window)
    age_h = np.where(rng.random(n) < 1 / 3, rng.uniform(0, 24, n), rng.uniform(0, 40 * 24, n))
    p = rng.uniform(0.05, 0.95, n)
    return pd.DataFrame(
        {
            "symbol": rng.choice(SYMBOLS, n),
            "strategy": rng.choice(STRATEGIES, n),
            "win_probability": np.round(p, 4),
            "threshold": rng.choice([0.5, 0.55, 0.6], n),
            "won": rng.random(n) < p,
            "closed_at": [NOW - timedelta(hours=float(h)) for h in age_h],
        }
    )


def _expected(df: pd.DataFrame, days: int) -> dict[tuple[str, str], dict[str, object]]:
    """Independent computation: pandas windows, scikit-learn metrics."""
    win = df[df["closed_at"] >= NOW - pd.Timedelta(days=days)]
    out: dict[tuple[str, str], dict[str, object]] = {}
    parts = [((s, t), g) for (s, t), g in win.groupby(["symbol", "strategy"])]
    parts.append((("ALL", "ALL"), win))
    for key, g in parts:
        y = g["won"].astype(int).to_numpy()
        p = g["win_probability"].to_numpy()
        predicted_win = (p >= g["threshold"].to_numpy()).astype(int)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
        out[key] = {
            "n": len(g),
            "wins": int(y.sum()),
            "accuracy": accuracy_score(y, predicted_win),
            "brier": brier_score_loss(y, p),
            "prob_true": prob_true,
            "prob_pred": prob_pred,
        }
    return out


def test_accuracy_endpoint_matches_sklearn(api: tuple[TestClient, MonitorDeps]) -> None:
    client, _ = api
    df = _random_outcomes(420)
    for row in df.itertuples(index=False):
        r = client.post(
            "/outcomes",
            json={
                "symbol": row.symbol,
                "strategy": row.strategy,
                "win_probability": row.win_probability,
                "threshold": row.threshold,
                "won": bool(row.won),
                "closed_at": row.closed_at.isoformat(),
            },
        )
        assert r.status_code == 201, r.text
    resp = client.get("/accuracy", params=[("windows", 1), ("windows", 7), ("windows", 30)])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["windows_days"] == [1, 7, 30]
    for days in (1, 7, 30):
        expected = _expected(df, days)
        got = {(g["symbol"], g["strategy"]): g for g in body["groups"] if g["window_days"] == days}
        assert set(got) == set(expected)
        for key, exp in expected.items():
            g = got[key]
            assert g["n"] == exp["n"] and g["wins"] == exp["wins"], key
            assert g["accuracy"] == pytest.approx(exp["accuracy"], abs=1e-12), key
            assert g["brier"] == pytest.approx(exp["brier"], abs=1e-12), key
            cal = g["calibration"]
            np.testing.assert_allclose([b["observed_rate"] for b in cal], exp["prob_true"])
            np.testing.assert_allclose([b["mean_predicted"] for b in cal], exp["prob_pred"])
            assert sum(b["count"] for b in cal) == exp["n"]
            ece = sum(b["count"] * abs(b["observed_rate"] - b["mean_predicted"]) for b in cal)
            assert g["ece"] == pytest.approx(ece / exp["n"])  # type: ignore[operator]


def test_accuracy_filters_and_validation(api: tuple[TestClient, MonitorDeps]) -> None:
    client, deps = api
    for row in _random_outcomes(60, seed=3).itertuples(index=False):
        deps.outcomes.add(
            Outcome(
                symbol=row.symbol,
                strategy=row.strategy,
                win_probability=row.win_probability,
                won=bool(row.won),
                closed_at=row.closed_at,
            )
        )
    body = client.get("/accuracy", params={"symbol": "spx", "strategy": "iron_condor"}).json()
    assert body["groups"] and all(
        (g["symbol"], g["strategy"]) == ("SPX", "Iron Condor") for g in body["groups"]
    )
    r = client.get("/accuracy", params={"windows": 0})
    assert r.status_code == 422 and "windows" in r.text
    r = client.get("/accuracy", params={"strategy": "Straddle"})
    assert r.status_code == 422 and "strategy" in r.text
    assert client.get("/accuracy", params={"symbol": "AAPL"}).status_code == 422


def test_outcome_for_a_watched_trade_uses_the_last_sweep_score(
    api: tuple[TestClient, MonitorDeps],
) -> None:
    client, deps = api
    entry = client.post(
        "/watchlist",
        json={
            "symbol": "SPX",
            "strategy": "Vertical",
            "strikes": [5850, 5860],
            "premium": 3.1,
            "predicted_price": 5855,
            "action": "SELL",
        },
    ).json()
    state = deps.sweep_state.load()
    state.crossings[entry["id"]] = CrossingState(
        probability=0.71, threshold=0.6, above=True, at=NOW
    )
    deps.sweep_state.save(state)
    r = client.post("/outcomes", json={"entry_id": entry["id"], "won": False, "pnl": -690})
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["symbol"], out["strategy"], out["win_probability"], out["threshold"]) == (
        "SPX",
        "Vertical",
        0.71,
        0.6,
    )
    # neither an entry nor a probability: 422 naming the field
    r = client.post("/outcomes", json={"symbol": "SPX", "strategy": "Vertical", "won": True})
    assert r.status_code == 422 and "win_probability" in r.text
    r = client.post("/outcomes", json={"entry_id": "nope", "won": True})
    assert r.status_code == 422 and "entry_id" in r.text
    r = client.post("/outcomes", json={"symbol": "SPX", "won": "maybe"})
    assert r.status_code == 422 and "won" in r.text
    r = client.post(
        "/outcomes",
        json={"symbol": "SPX", "strategy": "Vertical", "win_probability": 1.5, "won": True},
    )
    assert r.status_code == 422 and "win_probability" in r.text


def test_calibration_bins_are_right_closed_like_sklearn() -> None:
    p = np.array([0.0, 0.1, 0.1000001, 0.5, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1, 1], dtype=float)
    bins = calibration(p, y, 10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b.observed_rate for b in bins], prob_true)
    np.testing.assert_allclose([b.mean_predicted for b in bins], prob_pred)
    assert bins[0].count == 2  # 0.0 and 0.1 share the first bin


def test_windows_exclude_future_and_old_outcomes() -> None:
    mk = lambda h, won: Outcome(  # noqa: E731
        symbol="SPX",
        strategy="Sonar",
        win_probability=0.8,
        won=won,
        closed_at=NOW - timedelta(hours=h),
    )
    report = accuracy_report([mk(1, True), mk(30, False), mk(-2, False)], NOW, [1, 7])
    one = report.group("SPX", "Sonar", 1)
    seven = report.group("SPX", "Sonar", 7)
    assert one is not None and one.n == 1 and one.accuracy == 1.0
    assert seven is not None and seven.n == 2 and seven.brier == pytest.approx((0.04 + 0.64) / 2)
    assert OutcomeIn(won=True, strategy="sonar").strategy is not None
