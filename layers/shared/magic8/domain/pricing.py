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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


# --- the standard normal CDF -----------------------------------------------------------
# Cephes' ndtr (Moshier; the algorithm and coefficients scipy.special.ndtr uses) in
# numpy: importing scipy.special costs ~0.45 s of a Lambda cold start, and this gives
# bitwise the same values (tests/unit/test_pricing.py compares them when scipy is present).
_SQRT1_2 = 0.70710678118654752440
_MAXLOG = 7.09782712893383996843e2
_ERFC_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_ERFC_Q = (
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_ERFC_R = (
    5.64189583547755073984e-1,
    1.27536670759978104416e0,
    5.01905042251180477414e0,
    6.16021097993053585195e0,
    7.40974269950448939160e0,
    2.97886665372100240670e0,
)
_ERFC_S = (
    2.26052863220117276590e0,
    9.39603524938001434673e0,
    1.20489539808096656605e1,
    1.70814450747565897222e1,
    9.60896809063285878198e0,
    3.36907645100081516050e0,
)
_ERF_T = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_ERF_U = (
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)


def _polevl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    y = coef[0] * x + coef[1]
    for c in coef[2:]:
        y = y * x + c
    return y


def _p1evl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Polynomial with an implied leading coefficient 1."""
    y = x + coef[0]
    for c in coef[1:]:
        y = y * x + c
    return y


def _half_erfc(z: np.ndarray) -> np.ndarray:
    """erfc(z) / 2 for z >= 1 (1-d)."""
    out = np.empty_like(z)
    mid = z < 8.0
    zm = z[mid]
    out[mid] = np.exp(-zm * zm) * _polevl(zm, _ERFC_P) / _p1evl(zm, _ERFC_Q)
    if not mid.all():
        far = ~mid
        zf = z[far]
        with np.errstate(under="ignore", invalid="ignore"):
            v = np.exp(-zf * zf) * _polevl(zf, _ERFC_R) / _p1evl(zf, _ERFC_S)
        out[far] = np.where(zf * zf > _MAXLOG, 0.0, v)
    return 0.5 * out


def ndtr(a: np.ndarray | float) -> np.ndarray:
    """Standard normal CDF, elementwise (bitwise the values of scipy.special.ndtr)."""
    a = np.asarray(a, dtype=np.float64)
    x = a * _SQRT1_2
    z = np.abs(x)
    if (z >= 8.0).any():  # far tails or inf present: branch per element (NaN stays NaN)
        return _ndtr_masked(x, z)
    # |x| < 8 everywhere (the usual case): both branches on all elements, then pick
    zz = x * x
    central = 0.5 + 0.5 * (x * _polevl(zz, _ERF_T) / _p1evl(zz, _ERF_U))
    h = 0.5 * (np.exp(-zz) * _polevl(z, _ERFC_P) / _p1evl(z, _ERFC_Q))
    out: np.ndarray = np.where(z < 1.0, central, np.where(x > 0, 1.0 - h, h))
    return out


def _ndtr_masked(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    central = z < 1.0  # 0.5 + erf(x) / 2 with erf's rational approximation
    xc = x[central]
    zc = xc * xc
    out[central] = 0.5 + 0.5 * (xc * _polevl(zc, _ERF_T) / _p1evl(zc, _ERF_U))
    nan = np.isnan(x)
    tail = ~central & ~nan
    if tail.any():
        xt = x[tail]
        h = _half_erfc(np.abs(xt))
        out[tail] = np.where(xt > 0, 1.0 - h, h)
    out[nan] = np.nan
    return out


def infer_vertical_call(
    action_sell: np.ndarray, strikes: np.ndarray, predicted: np.ndarray
) -> np.ndarray:
    """1.0 where a Vertical without option type is a call spread, else 0.0 (see module doc)."""
    mid = (strikes[:, 0] + strikes[:, 1]) / 2.0
    bullish = predicted >= mid
    sell = action_sell > 0.5
    return np.where(bullish != sell, 1.0, 0.0)


# Leg tables of the long structures: row = structure type, column = sorted strike.
_BF, _IC, _VCALL, _VPUT, _NONE = 0, 1, 2, 3, 4
_QC_TABLE = np.array(
    [[1.0, -2.0, 1.0, 0.0], [0.0, 0.0, 1.0, -1.0], [1.0, -1.0, 0.0, 0.0], [0.0] * 4, [0.0] * 4]
)
_QP_TABLE = np.array(
    [[0.0] * 4, [-1.0, 1.0, 0.0, 0.0], [0.0] * 4, [-1.0, 1.0, 0.0, 0.0], [0.0] * 4]
)
# strategy code -> structure type (a Vertical is refined by is_call); unknown codes: no legs
_TYPE_OF_CODE = np.array([_BF, _IC, _VCALL, _IC, _NONE])


def leg_quantities(strategy: np.ndarray, is_call: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed call and put quantities (n, 4) per sorted strike for the long structure."""
    code = np.asarray(strategy)
    kind = _TYPE_OF_CODE[np.where((code >= 0) & (code <= SONAR), code, len(STRATEGY_ORDER))]
    kind = np.where(kind == _VCALL, np.where(is_call > 0.5, _VCALL, _VPUT), kind)
    return _QC_TABLE[kind], _QP_TABLE[kind]


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
        return self.prob_profit_many(premium, (mu,), sd, at_strikes)[0]

    def prob_profit_many(
        self,
        premium: np.ndarray,
        mus: Sequence[np.ndarray],
        sd: np.ndarray,
        at_strikes: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """prob_profit for several means at once (same values; the strike geometry is
        worked out once and the normal CDF is evaluated in one call)."""
        v = self.values_at_strikes() if at_strikes is None else at_strikes
        vals = self.sign[:, None] * (v - np.asarray(premium)[:, None])
        k = self.k
        sd = np.maximum(np.asarray(sd, dtype=np.float64), 1e-9)[:, None]
        mu = np.stack([np.asarray(m, dtype=np.float64) for m in mus])[:, :, None]  # (M, n, 1)
        pa, pb = vals[:, :3], vals[:, 1:]
        a, b = k[:, :3], k[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            root = a + (b - a) * pa / (pa - pb)
            # one CDF call for the strikes (M, n, 4) and the roots (M, n, 3)
            both = ndtr(np.concatenate(((k - mu) / sd, (root - mu) / sd), axis=2))
        cdf, croot = both[:, :, :4], both[:, :, 4:]
        total = np.where(vals[:, 0] > 0, cdf[:, :, 0], 0.0)  # left tail
        total = total + np.where(vals[:, 3] > 0, 1.0 - cdf[:, :, 3], 0.0)  # right tail
        ca, cb = cdf[:, :, :3], cdf[:, :, 1:]
        pos_a, pos_b = pa > 0, pb > 0
        seg = np.where(pos_a & pos_b, cb - ca, 0.0)
        seg = seg + np.where((pa <= 0) & pos_b, cb - croot, 0.0)
        seg = seg + np.where(pos_a & (pb <= 0), croot - ca, 0.0)
        seg = np.where(b > a, seg, 0.0)
        seg = np.where(np.isnan(seg), 0.0, seg)  # CDF differences: NaN possible, never inf
        out = np.minimum(np.maximum(total + seg.sum(axis=2), 0.0), 1.0)
        return list(out)


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
    n12 = ndtr(np.stack(np.broadcast_arrays(d1, d2)))  # one CDF call for d1 and d2
    call = s * n12[0] - k * n12[1]
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
