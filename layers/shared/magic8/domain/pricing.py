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

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Structures:
    """n structures with their legs worked out once (used by every function below)."""

    qc: np.ndarray  # (n, 4) signed call quantities of the long structure
    qp: np.ndarray  # (n, 4) signed put quantities
    k: np.ndarray  # (n, 4) sorted strikes; missing ones repeat the last present strike
    sign: np.ndarray  # (n,) +1 BUY, -1 SELL

    @classmethod
    def of(
        cls, strategy: np.ndarray, strikes: np.ndarray, is_call: np.ndarray, action_sell: np.ndarray
    ) -> Structures:
        qc, qp = leg_quantities(strategy, is_call)
        k = strikes.copy()
        for j in range(1, 4):
            k[:, j] = np.where(np.isfinite(k[:, j]), k[:, j], k[:, j - 1])
        k = np.where(np.isfinite(k), k, 0.0)
        return cls(qc, qp, k, np.where(action_sell > 0.5, -1.0, 1.0))

    def value_at(self, points: np.ndarray) -> np.ndarray:
        """Value of the long structure at expiry; points (n,) or (n, m) -> same shape."""
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.ndim == 1
        p3 = (pts[:, None] if flat else pts)[:, :, None]
        k3 = self.k[:, None, :]
        v = (
            self.qc[:, None, :] * np.maximum(p3 - k3, 0.0)
            + self.qp[:, None, :] * np.maximum(k3 - p3, 0.0)
        ).sum(axis=2)
        out: np.ndarray = v[:, 0] if flat else v
        return out

    def values_at_strikes(self) -> np.ndarray:
        """(n, 4) value at each (padded) strike."""
        return self.value_at(self.k)

    def extremes(self, at_strikes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        v = self.values_at_strikes() if at_strikes is None else at_strikes
        return v.min(axis=1), v.max(axis=1)

    def bs_value(self, spot: np.ndarray, t_years: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        k = np.where(self.k > 0, self.k, 1.0)
        c, p = bs_call_put(
            np.asarray(spot)[:, None], k, np.asarray(t_years)[:, None], np.asarray(sigma)[:, None]
        )
        out: np.ndarray = np.maximum((self.qc * c + self.qp * p).sum(axis=1), 0.0)
        return out

    def prob_profit(
        self,
        premium: np.ndarray,
        mu: np.ndarray,
        sd: np.ndarray,
        at_strikes: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(profit at expiry > 0) when the close is Normal(mu, sd), exactly: the profit is
        piecewise linear with kinks at the strikes and flat tails, so its positive set is a
        union of intervals found per segment between strikes."""
        v = self.values_at_strikes() if at_strikes is None else at_strikes
        vals = self.sign[:, None] * (v - np.asarray(premium)[:, None])
        k = self.k
        sd = np.maximum(np.asarray(sd, dtype=np.float64), 1e-9)[:, None]
        cdf = ndtr((k - np.asarray(mu, dtype=np.float64)[:, None]) / sd)  # (n, 4)
        total = np.where(vals[:, 0] > 0, cdf[:, 0], 0.0)  # left tail
        total = total + np.where(vals[:, 3] > 0, 1.0 - cdf[:, 3], 0.0)  # right tail
        pa, pb = vals[:, :3], vals[:, 1:]
        a, b = k[:, :3], k[:, 1:]
        ca, cb = cdf[:, :3], cdf[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            root = a + (b - a) * pa / (pa - pb)
            croot = ndtr((root - np.asarray(mu)[:, None]) / sd)
        seg = np.where((pa > 0) & (pb > 0), cb - ca, 0.0)
        seg = seg + np.where((pa <= 0) & (pb > 0), cb - croot, 0.0)
        seg = seg + np.where((pa > 0) & (pb <= 0), croot - ca, 0.0)
        seg = np.where(b > a, seg, 0.0)
        out: np.ndarray = np.clip(total + np.nan_to_num(seg).sum(axis=1), 0.0, 1.0)
        return out


def value_at_expiry(
    strategy: np.ndarray, strikes: np.ndarray, is_call: np.ndarray, underlying: np.ndarray
) -> np.ndarray:
    """Value of the long structure at expiry for each row's underlying price."""
    return Structures.of(strategy, strikes, is_call, np.zeros(len(strategy))).value_at(underlying)


def profit_at_expiry(
    strategy: np.ndarray,
    action_sell: np.ndarray,
    strikes: np.ndarray,
    is_call: np.ndarray,
    premium: np.ndarray,
    underlying: np.ndarray,
) -> np.ndarray:
    """Profit per share at expiry: sign * (value - premium)."""
    st = Structures.of(strategy, strikes, is_call, action_sell)
    out: np.ndarray = st.sign * (st.value_at(underlying) - premium)
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
    st = Structures.of(strategy, strikes, is_call, np.zeros(len(strategy)))
    return st.bs_value(spot, t_years, sigma)


def structure_extremes(
    strategy: np.ndarray, strikes: np.ndarray, is_call: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Min and max value at expiry of the long structure (reached at a strike: the
    payoffs are piecewise linear with flat tails)."""
    return Structures.of(strategy, strikes, is_call, np.zeros(len(strategy))).extremes()


def prob_profit(
    strategy: np.ndarray,
    action_sell: np.ndarray,
    strikes: np.ndarray,
    is_call: np.ndarray,
    premium: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
) -> np.ndarray:
    """P(profit at expiry > 0) when the close is Normal(mu, sd) (see Structures)."""
    return Structures.of(strategy, strikes, is_call, action_sell).prob_profit(premium, mu, sd)
