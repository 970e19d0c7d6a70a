"""The soak's per-process figures (pure helpers; the soak itself is `make soak`)."""

from __future__ import annotations

import os

from magic8_dev.benchmarks.soak import cpu_s, per_role, role, slope_per_min


def test_slope_is_per_minute_and_needs_two_distinct_times() -> None:
    # +1 MB every 30 s = 2 MB/min, whatever the intercept
    assert abs(slope_per_min([(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)]) - 2.0) < 1e-9
    assert slope_per_min([(0.0, 5.0)]) is None
    assert slope_per_min([(10.0, 5.0), (10.0, 6.0)]) is None


def test_roles() -> None:
    assert role("python magic8 run --port 1", is_root=True) == "runner"
    assert role("python -m magic8_dev.local.moto_process --port 2", is_root=False) == "moto"
    assert role("node something", is_root=False) == "other"


def _sample(t: float, runner: float, moto: float, cpu: float) -> dict[str, object]:
    return {
        "t_s": t,
        "processes": {
            "1": {"rss_mb": runner, "cpu_s": cpu, "role": "runner"},
            "2": {"rss_mb": moto, "cpu_s": cpu / 2, "role": "moto"},
        },
    }


def test_per_role_slopes_from_the_warm_up_on() -> None:
    samples = [_sample(t, 230.0, 100.0 + t / 60.0 * 14.0, t / 10.0) for t in range(0, 601, 30)]
    samples[0]["processes"]["2"]["rss_mb"] = 500.0  # before the warm-up: ignored
    got = per_role(samples, from_t_s=120.0)
    assert got["runner"]["rss_slope_mb_per_min"] == 0.0
    assert abs(got["moto"]["rss_slope_mb_per_min"] - 14.0) < 1e-6
    assert got["moto"]["rss_first_mb"] == 128.0
    assert got["moto"]["rss_last_mb"] == 240.0
    # 0.1 CPU-s per s = 6 CPU-s a minute for the runner, half of it for moto
    assert got["runner"]["cpu_s_per_min_first_third"] == 6.0
    assert got["moto"]["cpu_s_per_min_last_third"] == 3.0


def test_cpu_seconds_of_this_process() -> None:
    used = cpu_s(os.getpid())
    assert used is not None and used > 0.0
    assert cpu_s(2**22 + 12345) is None  # no such process


def test_latency_trend_from_the_warm_up_on() -> None:
    from magic8_dev.benchmarks.soak import trend

    samples: list[dict[str, object]] = [{"t_s": 0.0, "b": 99.0}, {"t_s": 60.0}]  # before / none
    samples += [{"t_s": 120.0 + 60.0 * i, "b": 10.0 + i} for i in range(6)]
    got = trend(samples, "b", from_t_s=120.0)
    assert got["probes"] == 6
    assert abs(got["slope_ms_per_min"] - 1.0) < 1e-9
    assert (got["first_3_median_ms"], got["last_3_median_ms"]) == (11.0, 14.0)
    assert trend([], "b", 0.0)["probes"] == 0
