"""Confidence decay of cached answers.

An answer served from the prediction cache was computed `age` seconds ago, on a market
snapshot that is now that much older. The service does not pretend it is as sure as when
it was computed: the probability shrinks toward the model's base rate for the trade's
symbol x strategy (the win rate the model saw in training) with a half-life,

    p = base + (p0 - base) * 2 ** (-age / half_life)

so a fresh answer (age 0) is p0, an answer one half-life old is halfway to the base rate,
and nothing ever crosses the base rate or leaves [0, 1] (a convex combination of two
probabilities). A half-life <= 0 or infinite turns decay off (factor 1).

Pure functions: a scalar form for the service's per-answer loop (O(1), no allocation but
the float) and a vectorised form for arrays.
"""

from __future__ import annotations

import math

import numpy as np

# ServiceConfig / MAGIC8_DECAY_HALF_LIFE_S default: a cached answer at the end of the
# default 300 s prediction TTL keeps 2 ** -0.5 = 71 % of its distance from the base rate.
DEFAULT_HALF_LIFE_S = 600.0


def decay_factor(age_s: float, half_life_s: float) -> float:
    """2 ** (-age / half_life) in (0, 1]; 1.0 for age <= 0 or decay off (half-life <= 0,
    infinite or NaN)."""
    if not age_s > 0.0 or not 0.0 < half_life_s < math.inf:
        return 1.0
    return float(2.0 ** (-age_s / half_life_s))


def decayed_probability(p0: float, base_rate: float, factor: float) -> float:
    """p0 shrunk toward base_rate by `factor` (1: unchanged, 0: the base rate)."""
    return base_rate + (p0 - base_rate) * factor


def decay(p0: float, base_rate: float, age_s: float, half_life_s: float) -> tuple[float, float]:
    """(decayed probability, factor) of one answer."""
    f = decay_factor(age_s, half_life_s)
    return (p0 if f == 1.0 else decayed_probability(p0, base_rate, f)), f


def decay_many(
    p0: np.ndarray, base_rate: np.ndarray | float, age_s: np.ndarray, half_life_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """The vectorised `decay`: (probabilities, factors) for arrays of answers."""
    p0 = np.asarray(p0, dtype=np.float64)
    age = np.asarray(age_s, dtype=np.float64)
    if not 0.0 < half_life_s < math.inf:
        return p0.copy(), np.ones_like(p0)
    factors = np.where(age > 0.0, np.exp2(-np.maximum(age, 0.0) / half_life_s), 1.0)
    base = np.asarray(base_rate, dtype=np.float64)
    return base + (p0 - base) * factors, factors
