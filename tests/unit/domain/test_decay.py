"""magic8.domain.decay: a cached answer's probability shrinks toward the base rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from magic8.domain.decay import (
    DEFAULT_HALF_LIFE_S,
    decay,
    decay_factor,
    decay_many,
    decayed_probability,
)


@pytest.mark.parametrize(
    ("age", "half_life", "factor"),
    [
        (0.0, 600.0, 1.0),  # fresh
        (-5.0, 600.0, 1.0),  # clock skew never amplifies
        (600.0, 600.0, 0.5),
        (1200.0, 600.0, 0.25),
        (300.0, 600.0, 2**-0.5),
        (30.0, 60.0, 2**-0.5),
        (1e9, 600.0, 0.0),  # underflows to 0: the base rate
        (100.0, 0.0, 1.0),  # off
        (100.0, -1.0, 1.0),  # off
        (100.0, math.inf, 1.0),  # off
        (100.0, math.nan, 1.0),  # off
        (math.nan, 600.0, 1.0),
    ],
)
def test_decay_factor(age: float, half_life: float, factor: float) -> None:
    assert decay_factor(age, half_life) == pytest.approx(factor, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("p0", "base", "age", "half_life", "expected"),
    [
        (0.9, 0.55, 0.0, 600.0, 0.9),
        (0.9, 0.55, 600.0, 600.0, 0.725),
        (0.2, 0.55, 600.0, 600.0, 0.375),  # below the base rate: decays upward
        (0.55, 0.55, 600.0, 600.0, 0.55),  # at the base rate: unchanged
        (1.0, 0.0, 1200.0, 600.0, 0.25),
        (0.7, 0.9, 1e9, 600.0, 0.9),
        (0.7, 0.9, 600.0, 0.0, 0.7),  # off
    ],
)
def test_decay_table(p0: float, base: float, age: float, half_life: float, expected: float) -> None:
    p, f = decay(p0, base, age, half_life)
    assert p == pytest.approx(expected, rel=1e-12)
    assert p == pytest.approx(decayed_probability(p0, base, f), rel=1e-12)
    # never past the base rate, never outside [0, 1]
    assert min(p0, base) - 1e-12 <= p <= max(p0, base) + 1e-12


def test_vectorised_form_matches_the_scalar_one() -> None:
    rng = np.random.default_rng(5)
    p0 = rng.uniform(0, 1, 200)
    base = rng.uniform(0.3, 0.95, 200)
    age = rng.uniform(-10, 3000, 200)
    got_p, got_f = decay_many(p0, base, age, DEFAULT_HALF_LIFE_S)
    for i in range(200):
        p, f = decay(float(p0[i]), float(base[i]), float(age[i]), DEFAULT_HALF_LIFE_S)
        assert got_p[i] == pytest.approx(p, rel=1e-12, abs=1e-15)
        assert got_f[i] == pytest.approx(f, rel=1e-12)
    off_p, off_f = decay_many(p0, base, age, 0.0)
    assert np.array_equal(off_p, p0) and np.all(off_f == 1.0)
