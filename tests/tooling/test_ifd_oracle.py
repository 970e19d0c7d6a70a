"""The latency bound (`magic8 evaluate-ifd --oracle`): its CUSUM and its budget."""

from __future__ import annotations

import math

import numpy as np

from magic8_dev.ifd.oracle import (
    EPISODE_RATE,
    F0,
    ROWS,
    bound,
    cusum_track,
    episode_size_pmf,
    quiet_size_pmf,
)


def test_quiet_size_mix_is_a_distribution() -> None:
    pmf = quiet_size_pmf()
    assert math.isclose(pmf.sum(), 1.0, rel_tol=1e-12)
    assert pmf[0] == 0.0
    assert pmf[1] > pmf[2] > pmf[5]


def test_cusum_matches_the_recursion() -> None:
    rng = np.random.default_rng(3)
    n = 300
    t = np.sort(rng.uniform(0, 120, n))
    lam = rng.uniform(0.05, 0.5, n)
    size = rng.integers(1, 61, n)
    side = rng.choice([-1, 0, 1], n)
    f1 = episode_size_pmf((15, 60))
    tr = cusum_track(t, lam, size, side, 2, f1, 0.9)
    base = lam * F0[size] * np.where(side == 0, 0.02, 0.49)
    mu = EPISODE_RATE / 2
    for i, sgn in enumerate((1, -1)):
        w, d, last = 0.0, 0.0, 0.0
        for j in range(n):
            w -= EPISODE_RATE * (t[j] - last)
            if w < 0:
                w, d = 0.0, 0.0
            last = t[j]
            llr = []
            for s in (sgn, -sgn):
                p1 = 0.9 if side[j] == s else (0.1 if side[j] == -s else 0.0)
                llr.append(math.log1p(mu * f1[size[j]] * p1 / base[j]))
            w += llr[0]
            d += llr[0] - llr[1]
            assert math.isclose(tr.w[i, j], w, rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(tr.d[i, j], d, rel_tol=1e-9, abs_tol=1e-9)


def test_bound_keeps_the_false_alarm_budget() -> None:
    default = next(r for r in ROWS if r.name == "default")
    b = bound(default, 8, 40, seed=5)
    assert b["false_per_day"] <= 0.2
    assert b["recall"] >= 0.9
    assert b["median_s"] < 3 * 60
