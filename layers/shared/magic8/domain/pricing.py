"""Vectorised option pricing for the four Magic8 structures: Black-Scholes value and payoff.

Used to price generated trades and to label them (profit at the day's real close), and by
the feature module (fair value of a trade's structure at the current VIX).

Conventions (per share, index points) match magic8.domain.risk_reward:
- Strategy codes follow ``STRATEGY_ORDER``; strikes are given sorted ascending in an
  (n, 4) array padded with NaN (a Vertical uses columns 0-1, a Butterfly 0-2).
- The *long structure* (what BUY holds): Butterfly +1 K1, -2 K2, +1 K3 (calls; puts give
  the same payoff); Iron Condor and Sonar +1 put K2, -1 put K1, +1 call K3, -1 call K4
  (reverse iron condor, so SELL is the usual credit iron condor); Vertical call +1 K1,
  -1 K2, Vertical put +1 put K2, -1 put K1.
- BUY pays the premium, SELL receives it: profit = sign * (value_at_expiry - premium),
  sign = +1 for BUY, -1 for SELL.
- A Vertical without option type is the spread that profits if the predicted price is
  right: predicted >= midpoint of the strikes is bullish (BUY -> call, SELL -> put),
  otherwise bearish (BUY -> put, SELL -> call).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from magic8.domain.trades import Strategy

STRATEGY_ORDER: tuple[Strategy, ...] = (
    Strategy.BUTTERFLY,
    Strategy.IRON_CONDOR,
    Strategy.VERTICAL,
    Strategy.SONAR,
)
BUTTERFLY, IRON_CONDOR, VERTICAL, SONAR = 0, 1, 2, 3
STRATEGY_CODE: dict[Strategy, int] = {s: i for i, s in enumerate(STRATEGY_ORDER)}
N_STRIKES = np.array([3, 4, 2, 4])

# Trading-time year for 0DTE: 252 sessions of 390 minutes.
MINUTES_PER_YEAR = 252.0 * 390.0


def infer_vertical_call(
    action_sell: np.ndarray, strikes: np.ndarray, predicted: np.ndarray
) -> np.ndarray:
    """1.0 where a Vertical without option type is a call spread, else 0.0 (see module doc)."""
    mid = (strikes[:, 0] + strikes[:, 1]) / 2.0
    bullish = predicted >= mid
    sell = action_sell > 0.5
    return np.where(bullish != sell, 1.0, 0.0)


def leg_quantities(strategy: np.ndarray, is_call: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed call and put quantities (n, 4) per sorted strike for the long structure."""
    n = len(strategy)
    qc = np.zeros((n, 4))
    qp = np.zeros((n, 4))
    bf = strategy == BUTTERFLY
    qc[bf, 0], qc[bf, 1], qc[bf, 2] = 1.0, -2.0, 1.0
    ic = (strategy == IRON_CONDOR) | (strategy == SONAR)
    qp[ic, 0], qp[ic, 1], qc[ic, 2], qc[ic, 3] = -1.0, 1.0, 1.0, -1.0
    vc = (strategy == VERTICAL) & (is_call > 0.5)
    qc[vc, 0], qc[vc, 1] = 1.0, -1.0
    vp = (strategy == VERTICAL) & ~(is_call > 0.5)
    qp[vp, 1], qp[vp, 0] = 1.0, -1.0
    return qc, qp


def value_at_expiry(
    strategy: np.ndarray, strikes: np.ndarray, is_call: np.ndarray, underlying: np.ndarray
) -> np.ndarray:
    """Value of the long structure at expiry for each row's underlying price."""
    qc, qp = leg_quantities(strategy, is_call)
    k = np.nan_to_num(strikes, nan=0.0)
    s = np.asarray(underlying, dtype=np.float64)[:, None]
    calls = np.maximum(s - k, 0.0)
    puts = np.maximum(k - s, 0.0)
    out: np.ndarray = (qc * calls + qp * puts).sum(axis=1)
    return out


def profit_at_expiry(
    strategy: np.ndarray,
    action_sell: np.ndarray,
    strikes: np.ndarray,
    is_call: np.ndarray,
    premium: np.ndarray,
    underlying: np.ndarray,
) -> np.ndarray:
    """Profit per share at expiry: sign * (value - premium)."""
    sign = np.where(action_sell > 0.5, -1.0, 1.0)
    value = value_at_expiry(strategy, strikes, is_call, underlying)
    out: np.ndarray = sign * (value - premium)
    return out


def bs_call_put(
    spot: np.ndarray, strike: np.ndarray, t_years: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Black-Scholes call and put values (rate 0, no dividends); broadcasts."""
    s = np.asarray(spot, dtype=np.float64)
    k = np.asarray(strike, dtype=np.float64)
    sd = np.maximum(np.asarray(sigma, dtype=np.float64) * np.sqrt(np.maximum(t_years, 0.0)), 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(s / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    call = s * ndtr(d1) - k * ndtr(d2)
    put = call - s + k
    return np.maximum(call, 0.0), np.maximum(put, 0.0)


def structure_value(
    strategy: np.ndarray,
    strikes: np.ndarray,
    is_call: np.ndarray,
    spot: np.ndarray,
    t_years: np.ndarray,
    sigma: np.ndarray,
) -> np.ndarray:
    """Black-Scholes value of the long structure (what a fair BUY premium would be)."""
    qc, qp = leg_quantities(strategy, is_call)
    k = np.where(np.isfinite(strikes), strikes, 1.0)
    c, p = bs_call_put(
        np.asarray(spot)[:, None], k, np.asarray(t_years)[:, None], np.asarray(sigma)[:, None]
    )
    out: np.ndarray = (qc * c + qp * p).sum(axis=1)
    return np.maximum(out, 0.0)


def structure_extremes(
    strategy: np.ndarray, strikes: np.ndarray, is_call: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max value at expiry of the long structure (reached at a strike: the
    payoffs are piecewise linear with flat tails)."""
    k = np.where(np.isfinite(strikes), strikes, np.nan)
    vals = np.stack(
        [
            value_at_expiry(
                strategy, strikes, is_call, np.where(np.isfinite(k[:, i]), k[:, i], k[:, 0])
            )
            for i in range(4)
        ],
        axis=1,
    )
    return vals.min(axis=1), vals.max(axis=1)


def prob_profit(
    strategy: np.ndarray,
    action_sell: np.ndarray,
    strikes: np.ndarray,
    is_call: np.ndarray,
    premium: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
) -> np.ndarray:
    """P(profit at expiry > 0) when the close is Normal(mu, sd), exactly.

    The profit is piecewise linear with kinks at the strikes and flat tails, so its
    positive set is a union of intervals found per segment between strikes."""
    n = len(strategy)
    k = strikes.copy()
    # pad missing strikes with the last present one (zero-length segments)
    for j in range(1, 4):
        k[:, j] = np.where(np.isfinite(k[:, j]), k[:, j], k[:, j - 1])
    vals = np.stack(
        [
            profit_at_expiry(strategy, action_sell, strikes, is_call, premium, k[:, j])
            for j in range(4)
        ],
        axis=1,
    )
    sd = np.maximum(np.asarray(sd, dtype=np.float64), 1e-9)
    mu = np.asarray(mu, dtype=np.float64)

    def cdf(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = ndtr((x - mu) / sd)
        return out

    total = np.where(vals[:, 0] > 0, cdf(k[:, 0]), 0.0)  # left tail
    total = total + np.where(vals[:, 3] > 0, 1.0 - cdf(k[:, 3]), 0.0)  # right tail
    for j in range(3):
        a, b = k[:, j], k[:, j + 1]
        pa, pb = vals[:, j], vals[:, j + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            root = a + (b - a) * pa / (pa - pb)
        both = (pa > 0) & (pb > 0)
        up = (pa <= 0) & (pb > 0)  # positive on [root, b]
        down = (pa > 0) & (pb <= 0)  # positive on [a, root]
        seg = np.where(both, cdf(b) - cdf(a), 0.0)
        seg = seg + np.where(up, cdf(b) - cdf(np.where(up, root, a)), 0.0)
        seg = seg + np.where(down, cdf(np.where(down, root, a)) - cdf(a), 0.0)
        total = total + np.where(b > a, seg, 0.0)
    out: np.ndarray = np.clip(total, 0.0, 1.0)
    return out if n else np.empty(0)
