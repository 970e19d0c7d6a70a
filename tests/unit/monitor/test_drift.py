from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from magic8.monitor.drift import (
    FeatureDistribution,
    check_drift,
    drift_alert,
    parse_manifest,
    psi,
)

NOW = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)


def _reference(train: dict[str, np.ndarray], bins: int = 10) -> dict[str, object]:
    """What the training manifest carries: decile edges (open-ended) + proportions."""
    out: dict[str, object] = {}
    for name, x in train.items():
        inner = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
        edges = [-math.inf, *inner.tolist(), math.inf]
        counts = np.histogram(x, bins=np.array(edges))[0]
        out[name] = {"bin_edges": edges, "expected": (counts / counts.sum()).tolist()}
    return {"model_version": "v-test", "feature_distributions": out}


@pytest.fixture()
def training() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "vix_level": rng.gamma(9.0, 2.0, 20_000),
        "mom_6": rng.normal(0.0, 0.004, 20_000),
        "minutes_to_close": rng.uniform(0, 390, 20_000),
    }


def test_quiet_on_a_fresh_sample_of_the_training_distribution(
    training: dict[str, np.ndarray],
) -> None:
    ref = parse_manifest(_reference(training))
    rng = np.random.default_rng(99)
    live = {
        "vix_level": rng.gamma(9.0, 2.0, 500),
        "mom_6": rng.normal(0.0, 0.004, 500),
        "minutes_to_close": rng.uniform(0, 390, 500),
    }
    report = check_drift(ref, live, threshold=0.25, min_samples=50)
    assert {f.feature for f in report.features} == set(training)
    assert report.drifted == [] and report.max_psi < 0.1
    assert drift_alert(report, NOW) is None
    # the training sample itself scores ~0
    assert check_drift(ref, training).max_psi < 1e-3


def test_fires_on_a_shifted_distribution(training: dict[str, np.ndarray]) -> None:
    ref = parse_manifest(_reference(training))
    rng = np.random.default_rng(5)
    live = {
        "vix_level": rng.gamma(9.0, 2.0, 500) + 12.0,  # volatility regime change
        "mom_6": rng.normal(0.0, 0.004, 500),
        "minutes_to_close": rng.uniform(0, 390, 500),
    }
    report = check_drift(ref, live, threshold=0.25)
    assert [f.feature for f in report.drifted] == ["vix_level"]
    alert = drift_alert(report, NOW, "v-test")
    assert alert is not None and alert.kind == "drift" and "vix_level" in alert.subject
    assert alert.payload["drifted"][0]["psi"] > 0.25
    assert alert.dedupe_key == "drift:v-test:2026-11-17"


def test_psi_matches_the_textbook_formula() -> None:
    e = np.array([0.25, 0.25, 0.5])
    a = np.array([0.2, 0.3, 0.5])
    expected = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    assert psi(e, a) == pytest.approx(expected)
    assert psi(e, e) == 0.0
    assert math.isfinite(psi(e, np.array([0.0, 0.5, 0.5])))


def test_out_of_range_values_fall_in_the_end_bins() -> None:
    d = FeatureDistribution(edges=[0.0, 1.0, 2.0, 3.0], proportions=[0.2, 0.5, 0.3])
    np.testing.assert_allclose(d.actual([-5.0, 0.5, 1.5, 2.5, 99.0, np.nan]), [0.4, 0.2, 0.4])


def test_too_few_live_values_are_skipped(training: dict[str, np.ndarray]) -> None:
    ref = parse_manifest(_reference(training))
    report = check_drift(ref, {"vix_level": [40.0] * 10}, min_samples=50)
    assert report.features == [] and report.skipped == ["vix_level"]


def test_manifest_shapes() -> None:
    assert parse_manifest({}) == {}
    nested = {"drift_reference": {"features": {"x": {"edges": [0, 1, 2], "proportions": [1, 3]}}}}
    d = parse_manifest(nested)["x"]
    np.testing.assert_allclose(d.expected(), [0.25, 0.75])
    with pytest.raises(ValueError):
        FeatureDistribution(edges=[0, 1], proportions=[0.5, 0.5])


def test_sweep_accumulates_the_day_and_alerts_once(training: dict[str, np.ndarray]) -> None:
    """Through run_sweep: counts add up over the day's sweeps; one `drift` alert per day;
    quiet while live rows look like training."""
    from datetime import timedelta

    from magic8.monitor.drift import DriftMonitor
    from magic8.monitor.sweep import DriftCheck, InMemorySweepStateStore, run_sweep
    from magic8.monitor.watchlist import InMemoryWatchlistStore, WatchlistEntry

    ref = parse_manifest(_reference(training))
    names = list(training)
    shift = {"vix_level": 0.0}
    rng = np.random.default_rng(1)

    def rows(requests: list[object]) -> tuple[list[str], np.ndarray]:
        n = len(requests)
        m = np.column_stack(
            [
                rng.gamma(9.0, 2.0, n) + shift["vix_level"],
                rng.normal(0.0, 0.004, n),
                rng.uniform(0, 390, n),
            ]
        )
        return names, m

    class Service:
        def predict_batch(self, requests: list[object], share: bool = True) -> object:
            return [{"win_probability": 0.6, "threshold": 0.5} for _ in requests], {}

    class Pub:
        alerts: list[object] = []

        def publish(self, alert: object) -> str:
            self.alerts.append(alert)
            return "1"

    class Beat:
        def last_beat(self) -> datetime:
            return clock[0]

    clock = [NOW]
    watch = InMemoryWatchlistStore(
        [
            WatchlistEntry.model_validate(
                {
                    "symbol": "SPX",
                    "strategy": "Vertical",
                    "strikes": [5850, 5860 + i],
                    "premium": 2.0,
                    "predicted_price": 5855,
                    "action": "BUY",
                    "created_at": NOW,
                    "expiry": NOW + timedelta(days=3),
                }
            )
            for i in range(40)
        ]
    )
    state, pub = InMemorySweepStateStore(), Pub()
    check = DriftCheck(
        DriftMonitor(ref, "v-test", threshold=0.25, min_samples=100, min_days=1), rows
    )

    def sweep() -> object:
        return run_sweep(watch, Service(), state, pub, Beat(), lambda: clock[0], drift=check)

    first = sweep()  # 40 rows < 100: not judged yet
    assert first.drift is not None and first.drift.features == []  # type: ignore[attr-defined]
    for _ in range(4):
        clock[0] += timedelta(minutes=5)
        res = sweep()
    assert res.drift.drifted == [] and pub.alerts == []  # type: ignore[attr-defined]
    assert state.state.drift is not None and state.state.drift.rows == 200
    assert sum(state.state.drift.totals()["vix_level"]) == 200
    shift["vix_level"] = 25.0  # the regime changes; counts accumulate until it shows
    kinds = []
    for _ in range(12):
        clock[0] += timedelta(minutes=5)
        kinds.append(len(sweep().alerts))  # type: ignore[attr-defined]
    assert sum(kinds) == 1 and pub.alerts[0].kind == "drift"  # type: ignore[attr-defined]
    clock[0] += timedelta(days=1)  # next trading day, still drifted: one alert that day
    assert [a.kind for a in sweep().alerts] == ["drift"]  # type: ignore[attr-defined]
    assert sweep().alerts == []  # type: ignore[attr-defined]
    assert len(state.state.drift.days) == 2 and state.state.drift.rows == 760


def test_window_keeps_the_last_days_only(training: dict[str, np.ndarray]) -> None:
    from datetime import date, timedelta

    from magic8.monitor.drift import DriftAccumulator, DriftMonitor

    mon = DriftMonitor(
        parse_manifest(_reference(training)), window_days=3, min_samples=1, min_days=2
    )
    first = mon.accumulate(DriftAccumulator(), date(2026, 11, 13), list(training), np.ones((5, 3)))
    assert mon.report(first).features == []  # one day of data: not judged yet
    acc = DriftAccumulator()
    rows = np.column_stack([training[k][:10] for k in training])
    for i in range(5):
        acc = mon.accumulate(acc, date(2026, 11, 16) + timedelta(days=i), list(training), rows)
    assert sorted(acc.days) == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    assert acc.rows == 30 and mon.report(acc).features[0].n == 30
    # JSON round trip (the sweep state item)
    assert DriftAccumulator.model_validate_json(acc.model_dump_json()) == acc
