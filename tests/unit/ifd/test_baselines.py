"""Baselines: incremental per-day aggregates equal a batch recomputation; 20-day roll;
shrinkage cold start."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import numpy as np
import pytest

from magic8.ifd.baselines import (
    Baseline,
    BaselineConfig,
    baseline_stats,
    batch_moments,
    in_window,
    log_volume,
    tod_bucket,
    trading_day,
)
from tests.factories import session_start, window


def weekdays(start: date, n: int) -> list[str]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def random_rows(rng: random.Random, days: list[str], per_day: int) -> list[tuple]:
    rows = []
    for d in days:
        for _ in range(per_day):
            rows.append(
                (d, rng.randint(19, 26), rng.uniform(-1, 1), log_volume(rng.expovariate(0.1)))
            )
    return rows


def test_incremental_equals_batch_over_a_rolling_20_days() -> None:
    rng = random.Random(1)
    days = weekdays(date(2025, 8, 1), 35)
    rows = random_rows(rng, days, 60)
    incremental = Baseline()
    for i, day in enumerate(days):
        for d, b, r, v in rows:
            if d == day:
                incremental.add(d, b, r, v)
        incremental.roll(day)
        if i % 5 == 4 or i == len(days) - 1:
            for bucket in (19, 22, 26):
                got = incremental.moments(day, bucket)
                want = batch_moments(rows, day, bucket)
                assert got.n == want.n
                assert got.to_list() == pytest.approx(want.to_list(), rel=1e-9, abs=1e-9)
            # all buckets at once: the sum of the per-bucket batch results
            want_all = np.sum(
                [batch_moments(rows, day, b).to_list() for b in range(19, 27)], axis=0
            )
            assert incremental.moments(day).to_list() == pytest.approx(list(want_all))


def test_roll_keeps_today_and_the_20_trading_days_before() -> None:
    days = weekdays(date(2025, 8, 1), 30)
    base = Baseline()
    for d in days:
        base.add(d, 20, 0.5, 1.0)
        base.roll(d)
    kept = sorted(base.buckets[20])
    assert kept == days[-21:]  # today + 20 trading days
    today = days[-1]
    assert base.moments(today, 20).n == 20  # history excludes today
    assert base.moments(today, 20, include_today=True).n == 21
    assert not in_window(days[-22], today)
    assert in_window(days[-21], today)


def test_json_round_trip_and_remove() -> None:
    base = Baseline()
    base.add("2025-09-15", 20, 0.25, 3.0)
    base.add("2025-09-15", 20, -0.5, 2.0)
    again = Baseline.from_json(base.to_json())
    assert again.moments("2025-09-16", 20).to_list() == base.moments("2025-09-16", 20).to_list()
    again.remove("2025-09-15", 20, -0.5, 2.0)
    assert again.moments("2025-09-16", 20).to_list() == pytest.approx([1, 0.25, 0.0625, 3, 9])


def test_window_day_and_bucket_are_exchange_local() -> None:
    w = window(20100, "C", session_start("2025-09-15"), 10, 5)  # 09:30 New York
    assert trading_day(w.window_start) == "2025-09-15"
    assert tod_bucket(w.window_start) == 19  # 09:30 / 30 min
    base = Baseline()
    base.add_window(w)
    assert base.buckets[19]["2025-09-15"].n == 1
    assert base.buckets[19]["2025-09-15"].s_r == pytest.approx(1 / 3)


COLD = BaselineConfig()


@pytest.mark.parametrize(
    ("prior_days", "strike_windows", "cold", "uses_today"),
    [
        (0, 0, True, False),  # nothing at all: defaults, capped
        (0, 40, False, False),  # first day: today's windows warm the prior (no cap)
        (1, 0, False, True),  # a strike never seen: the underlying's bucket prior
        (3, 12, False, True),  # history at the strike: shrunk towards its own mean
    ],
)
def test_cold_start(prior_days: int, strike_windows: int, cold: bool, uses_today: bool) -> None:
    today = "2025-09-18"
    prior, strike = Baseline(), Baseline()
    previous = ["2025-09-15", "2025-09-16", "2025-09-17"]
    for d in previous[len(previous) - prior_days :] if prior_days else []:
        for _ in range(40):
            prior.add(d, 20, 0.0, math.log1p(20))
    for _ in range(strike_windows):  # strike history: busier than the underlying's average
        day = "2025-09-17" if prior_days else today
        strike.add(day, 20, 0.1, math.log1p(200))
        prior.add(day, 20, 0.1, math.log1p(200))
    stats = baseline_stats(strike, prior, today, 20, COLD)
    assert stats.cold is cold
    assert stats.history_days is (prior_days > 0)
    if prior_days == 0 and strike_windows == 0:
        assert stats.logvol.mean == pytest.approx(COLD.default_logvol_mean)
    if uses_today and strike_windows == 0:
        assert stats.logvol.mean == pytest.approx(math.log1p(20), rel=0.02)
    if strike_windows and prior_days:
        # between the prior (log 21) and the strike's own mean (log 201), nearer its own
        assert math.log1p(20) < stats.logvol.mean < math.log1p(200)
        assert stats.logvol.mean > (math.log1p(20) + math.log1p(200)) / 2
