"""Risk and reward of a Magic8 trade at expiry: max profit, max loss, breakevens.

Every strategy is a set of option legs plus a net premium, so its payoff at expiry is a
piecewise-linear function of the underlying price with kinks only at the strikes. The
extremes and zero crossings are therefore found exactly by evaluating the payoff at the
strikes (and its slope beyond them), with no grid and no approximation.

Conventions (per share, in index points; dollars = points x multiplier x quantity):
- BUY pays the premium (a debit), SELL receives it (a credit).
- Butterfly K1<K2<K3: BUY = +1 K1, -2 K2, +1 K3 (calls, or puts when option_type says so).
- Iron Condor / Sonar K1<K2<K3<K4: SELL = +1 put K1, -1 put K2, -1 call K3, +1 call K4
  (the usual credit iron condor); BUY is the reverse (debit) iron condor.
- Vertical K1<K2: call BUY = +1 call K1, -1 call K2 (bull call debit);
  put BUY = +1 put K2, -1 put K1 (bear put debit); SELL flips the legs (credit spreads).
  Without option_type the vertical's type is inferred from the trade's view: a predicted
  price at or above the strikes' midpoint is bullish (BUY -> call, SELL -> put), below it
  bearish (BUY -> put, SELL -> call): the spread that profits if the prediction is right.
Strikes may arrive in any order; they are sorted here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from magic8.domain.trades import STRIKE_COUNT, Action, Strategy, TradeRequest

OptionKind = Literal["C", "P"]
CONTRACT_MULTIPLIER = 100
_EPS = 1e-9


@dataclass(frozen=True)
class Leg:
    kind: OptionKind
    strike: float
    qty: int  # +n long, -n short (per one unit of the structure)

    def value(self, prices: np.ndarray) -> np.ndarray:
        intrinsic = (
            np.maximum(prices - self.strike, 0.0)
            if self.kind == "C"
            else np.maximum(self.strike - prices, 0.0)
        )
        return self.qty * intrinsic


@dataclass(frozen=True)
class RiskReward:
    strategy: Strategy
    action: Action
    option_type: Literal["call", "put"] | None
    legs: tuple[Leg, ...]
    net_premium: float  # + credit received, - debit paid (per share)
    max_profit: float  # per share; math.inf when unbounded
    max_loss: float  # per share, as a positive number; math.inf when unbounded
    breakevens: tuple[float, ...]
    quantity: int = 1
    multiplier: int = CONTRACT_MULTIPLIER

    @property
    def reward_to_risk(self) -> float | None:
        if self.max_loss <= _EPS or not math.isfinite(self.max_loss):
            return None
        if not math.isfinite(self.max_profit):
            return None
        return self.max_profit / self.max_loss

    def to_dict(self) -> dict[str, Any]:
        scale = self.multiplier * self.quantity

        def money(x: float) -> float | None:
            return round(x * scale, 2) if math.isfinite(x) else None

        def pts(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        rr = self.reward_to_risk
        return {
            "strategy": self.strategy.value,
            "action": self.action.value,
            "option_type": self.option_type,
            "premium_type": "credit" if self.net_premium > 0 else "debit",
            "net_premium": round(self.net_premium, 6),
            "max_profit": money(self.max_profit),
            "max_loss": money(self.max_loss),
            "max_profit_points": pts(self.max_profit),
            "max_loss_points": pts(self.max_loss),
            "unbounded_profit": not math.isfinite(self.max_profit),
            "unbounded_loss": not math.isfinite(self.max_loss),
            "breakevens": [round(b, 6) for b in self.breakevens],
            "reward_to_risk": round(rr, 6) if rr is not None else None,
            "quantity": self.quantity,
            "multiplier": self.multiplier,
            "legs": [{"type": leg.kind, "strike": leg.strike, "qty": leg.qty} for leg in self.legs],
        }


def infer_vertical_type(
    action: Action, strikes: Sequence[float], predicted_price: float | None
) -> Literal["call", "put"]:
    """The vertical that profits if the predicted price is right (see module doc)."""
    lo, hi = min(strikes), max(strikes)
    bullish = predicted_price is None or predicted_price >= (lo + hi) / 2.0
    if action == Action.BUY:
        return "call" if bullish else "put"
    return "put" if bullish else "call"


def _normalise_type(option_type: str | None) -> Literal["call", "put"] | None:
    if option_type is None or not option_type.strip():
        return None
    return "put" if option_type.strip().lower().startswith("p") else "call"


def legs_for(
    strategy: Strategy,
    action: Action,
    strikes: Sequence[float],
    option_type: str | None = None,
    predicted_price: float | None = None,
) -> tuple[tuple[Leg, ...], Literal["call", "put"] | None]:
    """The legs of one unit of the structure, signed for the action, and the option type
    used (None for the two-sided iron condor / Sonar)."""
    need = STRIKE_COUNT[strategy]
    ks = sorted(float(k) for k in strikes)
    if len(ks) != need:
        raise ValueError(f"strikes: {strategy.value} needs {need} strikes, got {len(ks)}")
    if len(set(ks)) != len(ks):
        raise ValueError("strikes: strikes must be distinct")
    otype = _normalise_type(option_type)
    legs: list[Leg]
    if strategy == Strategy.BUTTERFLY:
        otype = otype or "call"
        kind: OptionKind = "C" if otype == "call" else "P"
        legs = [Leg(kind, ks[0], 1), Leg(kind, ks[1], -2), Leg(kind, ks[2], 1)]
    elif strategy in (Strategy.IRON_CONDOR, Strategy.SONAR):
        otype = None
        # BUY orientation: long the inner strikes (reverse iron condor)
        legs = [Leg("P", ks[0], -1), Leg("P", ks[1], 1), Leg("C", ks[2], 1), Leg("C", ks[3], -1)]
    else:  # Vertical
        otype = otype or infer_vertical_type(action, ks, predicted_price)
        if otype == "call":
            legs = [Leg("C", ks[0], 1), Leg("C", ks[1], -1)]
        else:
            legs = [Leg("P", ks[1], 1), Leg("P", ks[0], -1)]
    sign = 1 if action == Action.BUY else -1
    return tuple(Leg(leg.kind, leg.strike, sign * leg.qty) for leg in legs), otype


def net_premium(action: Action, premium: float) -> float:
    """Cash per share at entry: negative for a debit (BUY), positive for a credit (SELL)."""
    return -float(premium) if action == Action.BUY else float(premium)


def payoff(legs: Sequence[Leg], net: float, prices: np.ndarray | Sequence[float]) -> np.ndarray:
    """Profit per share at expiry for each underlying price (vectorised)."""
    s = np.asarray(prices, dtype=float)
    total = np.full(s.shape, float(net))
    for leg in legs:
        total = total + leg.value(s)
    return total


def _breakevens(xs: list[float], ys: list[float], tail_slope: float) -> list[float]:
    """Zero crossings of the piecewise-linear payoff through (xs, ys), extended beyond xs[-1]
    with tail_slope. A flat stretch at exactly zero contributes its two ends."""
    roots: list[float] = []

    def add(x: float) -> None:
        if x > _EPS and not any(abs(x - r) <= 1e-7 for r in roots):
            roots.append(x)

    for i in range(len(xs) - 1):
        x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
        z0, z1 = abs(y0) <= _EPS, abs(y1) <= _EPS
        if z0 and z1:
            # flat at zero: its ends are added by the neighbouring segments that leave zero
            continue
        if z0:
            add(x0)
        elif z1:
            add(x1)
        elif (y0 < 0) != (y1 < 0):
            add(x0 + (x1 - x0) * (-y0) / (y1 - y0))
    y_last = ys[-1]
    if abs(tail_slope) > _EPS:
        if abs(y_last) <= _EPS:
            add(xs[-1])
        elif (y_last < 0) != (tail_slope < 0):
            add(xs[-1] - y_last / tail_slope)
    return sorted(roots)


def analyze(
    strategy: Strategy,
    action: Action,
    strikes: Sequence[float],
    premium: float,
    option_type: str | None = None,
    predicted_price: float | None = None,
    quantity: int = 1,
    multiplier: int = CONTRACT_MULTIPLIER,
) -> RiskReward:
    """Exact max profit, max loss and breakevens at expiry (prices from 0 to infinity)."""
    if not math.isfinite(premium) or premium < 0:
        raise ValueError("premium: must be a finite number >= 0")
    legs, otype = legs_for(strategy, action, strikes, option_type, predicted_price)
    net = net_premium(action, premium)
    ks = sorted({leg.strike for leg in legs})
    xs = [0.0, *ks]
    ys = [float(v) for v in payoff(legs, net, np.asarray(xs))]
    # slope beyond the highest strike: the calls' net quantity (puts are worthless there)
    tail_slope = float(sum(leg.qty for leg in legs if leg.kind == "C"))
    hi = max(ys)
    lo = min(ys)
    max_profit = math.inf if tail_slope > _EPS else hi
    max_loss = math.inf if tail_slope < -_EPS else -lo
    return RiskReward(
        strategy=strategy,
        action=action,
        option_type=otype,
        legs=legs,
        net_premium=net,
        max_profit=max_profit,
        max_loss=max_loss,
        breakevens=tuple(_breakevens(xs, ys, tail_slope)),
        quantity=quantity,
        multiplier=multiplier,
    )


def risk_reward_for(trade: TradeRequest, multiplier: int = CONTRACT_MULTIPLIER) -> RiskReward:
    return analyze(
        trade.strategy,
        trade.action,
        trade.strikes,
        trade.premium,
        option_type=trade.option_type,
        predicted_price=trade.predicted_price,
        quantity=trade.quantity,
        multiplier=multiplier,
    )


# ---------------------------------------------------------------- expected value
#
# A trade that wins makes on average `win_fraction` of its max profit and, when it loses,
# loses on average `loss_fraction` of its max loss (both 1.0 = the all-or-nothing reading
# of max profit / max loss; training measures them per strategy on its training days and
# writes them to manifest.json under `payoff`). With win probability p:
#     EV = p * win_fraction * max_profit - (1 - p) * loss_fraction * max_loss
# which is zero at
#     p* = loss_fraction * max_loss / (win_fraction * max_profit + loss_fraction * max_loss).
# The served `threshold` is p* + margin, so `win_probability >= threshold` means the trade
# has positive expected value with `margin` to spare.


@dataclass(frozen=True)
class PayoffFractions:
    win_fraction: float = 1.0
    loss_fraction: float = 1.0


def ev_breakeven(
    max_profit: Any, max_loss: Any, fractions: PayoffFractions = PayoffFractions()
) -> Any:
    """The win probability at which the trade's expected value is zero (scalar or array).
    NaN when neither side is positive or either is unbounded."""
    w = np.asarray(max_profit, dtype=np.float64) * fractions.win_fraction
    loss = np.asarray(max_loss, dtype=np.float64) * fractions.loss_fraction
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(w) & np.isfinite(loss) & (w + loss > _EPS) & (w >= 0) & (loss >= 0)
        out = np.where(ok, loss / np.where(ok, w + loss, 1.0), np.nan)
    return out if out.ndim else float(out)


def expected_value(
    p: Any, max_profit: Any, max_loss: Any, fractions: PayoffFractions = PayoffFractions()
) -> Any:
    """Expected profit at win probability p, in the units of max_profit / max_loss."""
    pr = np.asarray(p, dtype=np.float64)
    out = (
        pr * np.asarray(max_profit, dtype=np.float64) * fractions.win_fraction
        - (1.0 - pr) * np.asarray(max_loss, dtype=np.float64) * fractions.loss_fraction
    )
    return out if out.ndim else float(out)


def ev_threshold(
    max_profit: Any,
    max_loss: Any,
    fractions: PayoffFractions = PayoffFractions(),
    margin: float = 0.0,
) -> Any:
    """ev_breakeven + margin, clipped to [0, 1] (NaN stays NaN)."""
    out = np.clip(np.asarray(ev_breakeven(max_profit, max_loss, fractions)) + margin, 0.0, 1.0)
    return out if out.ndim else float(out)


def max_profit_loss(
    strategy: Strategy,
    action: Action,
    strikes: Sequence[float],
    premium: float,
    option_type: str | None = None,
    predicted_price: float | None = None,
) -> tuple[float, float]:
    """(max profit, max loss) per share, the same numbers as analyze() (the legs of
    legs_for, as plain tuples) at a fraction of its cost: the service computes it for
    every prediction."""
    ks = sorted(strikes)
    legs: tuple[tuple[str, float, int], ...]
    if strategy == Strategy.BUTTERFLY:
        kind = "P" if (_normalise_type(option_type) == "put") else "C"
        legs = ((kind, ks[0], 1), (kind, ks[1], -2), (kind, ks[2], 1))
    elif strategy in (Strategy.IRON_CONDOR, Strategy.SONAR):
        legs = (("P", ks[0], -1), ("P", ks[1], 1), ("C", ks[2], 1), ("C", ks[3], -1))
    else:
        otype = _normalise_type(option_type) or infer_vertical_type(action, ks, predicted_price)
        legs = (
            (("C", ks[0], 1), ("C", ks[1], -1))
            if otype == "call"
            else (
                ("P", ks[1], 1),
                ("P", ks[0], -1),
            )
        )
    sign = 1 if action == Action.BUY else -1
    net = -premium if sign == 1 else premium
    lo = hi = 0.0
    first = True
    for x in (0.0, *ks):
        total = net
        for kind, k, q in legs:
            intrinsic = x - k if kind == "C" else k - x
            if intrinsic > 0:
                total += sign * q * intrinsic
        if first:
            lo = hi = total
            first = False
        else:
            lo, hi = min(lo, total), max(hi, total)
    tail_slope = sign * sum(q for kind, _, q in legs if kind == "C")
    return (math.inf if tail_slope > 0 else hi), (math.inf if tail_slope < 0 else -lo)


def trade_extremes(trade: TradeRequest) -> tuple[float, float]:
    """max_profit_loss of the trade as sent (NaN, NaN when its strikes do not describe
    the structure), computed once per validated trade: the impossible-premium check and
    the service's EV threshold both read it."""
    private = trade.__pydantic_private__  # see TradeRequest: the dict, not __getattr__
    memo: tuple[float, float] | None = private["_extremes"]  # type: ignore[index]
    if memo is None:
        try:
            memo = max_profit_loss(
                trade.strategy,
                trade.action,
                trade.strikes,
                trade.premium,
                trade.option_type,
                trade.predicted_price,
            )
        except (ValueError, IndexError):
            memo = (math.nan, math.nan)
        private["_extremes"] = memo  # type: ignore[index]
    return memo
