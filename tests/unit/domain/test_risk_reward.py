"""Risk/reward against hand-computed payoffs at expiry.

The expected figures come from payoff functions written out by hand here (independent of
magic8.domain.risk_reward's legs), evaluated on a fine price grid that includes the strikes:
max profit = grid max, max loss = -grid min, breakevens = the grid's zero crossings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magic8.domain.risk_reward import analyze, infer_vertical_type, risk_reward_for
from magic8.domain.trades import Action, Strategy, TradeRequest
from tests.factories import trade


def c(s: np.ndarray, k: float) -> np.ndarray:
    return np.maximum(s - k, 0.0)


def p(s: np.ndarray, k: float) -> np.ndarray:
    return np.maximum(k - s, 0.0)


def hand_payoff(
    strategy: Strategy, action: Action, strikes: list[float], premium: float, otype: str | None
) -> Callable[[np.ndarray], np.ndarray]:
    k = sorted(strikes)
    sign = 1.0 if action == Action.BUY else -1.0
    if strategy == Strategy.BUTTERFLY:
        f = p if otype == "put" else c

        def long_fly(s: np.ndarray) -> np.ndarray:
            return f(s, k[0]) - 2 * f(s, k[1]) + f(s, k[2])

        structure = long_fly
    elif strategy in (Strategy.IRON_CONDOR, Strategy.SONAR):

        def short_condor(s: np.ndarray) -> np.ndarray:
            return -(p(s, k[1]) - p(s, k[0])) - (c(s, k[2]) - c(s, k[3]))

        def structure(s: np.ndarray) -> np.ndarray:
            return -short_condor(s)  # BUY orientation = reverse iron condor

    elif otype == "call":

        def structure(s: np.ndarray) -> np.ndarray:
            return c(s, k[0]) - c(s, k[1])

    else:

        def structure(s: np.ndarray) -> np.ndarray:
            return p(s, k[1]) - p(s, k[0])

    def pay(s: np.ndarray) -> np.ndarray:
        # BUY pays the premium, SELL receives it
        return sign * structure(s) - sign * premium

    return pay


def grid_figures(
    pay: Callable[[np.ndarray], np.ndarray], strikes: list[float]
) -> tuple[float, float, list[float]]:
    hi = max(strikes) * 2 + 10
    grid = np.unique(np.concatenate([np.linspace(0.0, hi, 200_001), np.asarray(strikes)]))
    y = pay(grid)
    y[np.abs(y) < 1e-9] = 0.0
    roots: list[float] = []
    # strict sign changes between neighbouring grid points
    for i in np.nonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0)[0]:
        roots.append(float(grid[i] - y[i] * (grid[i + 1] - grid[i]) / (y[i + 1] - y[i])))
    # points where the payoff touches zero, or where a stretch at zero begins or ends
    zero = np.nonzero(y == 0.0)[0]
    for i in zero:
        if grid[i] <= 0 or i + 1 >= len(y):
            continue
        if y[i - 1] != 0.0 or y[i + 1] != 0.0:
            roots.append(float(grid[i]))
    roots.sort()
    return float(y.max()), float(-y.min()), roots


def check(
    strategy: Strategy, action: Action, strikes: list[float], premium: float, otype: str | None
) -> None:
    rr = analyze(strategy, action, strikes, premium, option_type=otype)
    used_type = rr.option_type
    pay = hand_payoff(strategy, action, strikes, premium, used_type)
    gmax, gloss, groots = grid_figures(pay, strikes)
    assert rr.max_profit == pytest.approx(gmax, abs=1e-6)
    assert rr.max_loss == pytest.approx(gloss, abs=1e-6)
    assert len(rr.breakevens) == len(groots), (rr.breakevens, groots)
    for got, want in zip(rr.breakevens, groots, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
        assert abs(float(pay(np.asarray([got]))[0])) < 1e-6  # a breakeven pays zero


# --- the DiscordTrading examples, worked by hand ---------------------------------


def test_long_butterfly_example_by_hand() -> None:
    # BUY 5805/5855/5905 for 24.82: wings 50 wide
    rr = analyze(Strategy.BUTTERFLY, Action.BUY, [5905, 5855, 5805], 24.82)
    assert rr.max_profit == pytest.approx(50 - 24.82)
    assert rr.max_loss == pytest.approx(24.82)
    assert rr.breakevens == pytest.approx((5805 + 24.82, 5905 - 24.82))
    d = rr.to_dict()
    assert d["max_profit"] == pytest.approx(2518.0)
    assert d["max_loss"] == pytest.approx(2482.0)
    assert d["premium_type"] == "debit"


def test_short_iron_condor_example_by_hand() -> None:
    # SELL 5830/5835/5875/5880 for 0.65 credit: 5-wide wings
    rr = analyze(Strategy.IRON_CONDOR, Action.SELL, [5880, 5875, 5835, 5830], 0.65)
    assert rr.max_profit == pytest.approx(0.65)
    assert rr.max_loss == pytest.approx(5 - 0.65)
    assert rr.breakevens == pytest.approx((5835 - 0.65, 5875 + 0.65))
    assert rr.to_dict()["premium_type"] == "credit"
    assert rr.reward_to_risk == pytest.approx(0.65 / 4.35)


def test_sonar_is_iron_condor_shaped() -> None:
    a = analyze(Strategy.SONAR, Action.SELL, [5800, 5810, 5900, 5910], 2.0)
    b = analyze(Strategy.IRON_CONDOR, Action.SELL, [5800, 5810, 5900, 5910], 2.0)
    assert (a.max_profit, a.max_loss, a.breakevens) == (b.max_profit, b.max_loss, b.breakevens)


@pytest.mark.parametrize(
    ("action", "otype", "profit", "loss", "be"),
    [
        (Action.BUY, "call", 10 - 3, 3, 5800 + 3),  # bull call debit
        (Action.BUY, "put", 10 - 3, 3, 5810 - 3),  # bear put debit
        (Action.SELL, "call", 3, 10 - 3, 5800 + 3),  # bear call credit
        (Action.SELL, "put", 3, 10 - 3, 5810 - 3),  # bull put credit
    ],
)
def test_verticals_by_hand(
    action: Action, otype: str, profit: float, loss: float, be: float
) -> None:
    rr = analyze(Strategy.VERTICAL, action, [5810, 5800], 3.0, option_type=otype)
    assert rr.option_type == otype
    assert rr.max_profit == pytest.approx(profit)
    assert rr.max_loss == pytest.approx(loss)
    assert rr.breakevens == pytest.approx((be,))


def test_vertical_type_inferred_from_the_view() -> None:
    # predicted above the strikes: bullish -> BUY call debit / SELL put credit
    assert infer_vertical_type(Action.BUY, [5800, 5810], 5850) == "call"
    assert infer_vertical_type(Action.SELL, [5800, 5810], 5850) == "put"
    # predicted below: bearish -> BUY put debit / SELL call credit
    assert infer_vertical_type(Action.BUY, [5800, 5810], 5750) == "put"
    assert infer_vertical_type(Action.SELL, [5800, 5810], 5750) == "call"
    t = TradeRequest.model_validate(
        {
            "strategy": "Vertical",
            "symbol": "SPX",
            "premium": 1.2,
            "predicted_price": 5850,
            "strikes": [5810, 5800],
            "action": "SELL",
        }
    )
    rr = risk_reward_for(t)
    assert rr.option_type == "put"
    assert rr.max_profit == pytest.approx(1.2)  # price above both puts: keep the credit


def test_strike_order_does_not_matter() -> None:
    strikes = [5905.0, 5855.0, 5805.0]
    ref = analyze(Strategy.BUTTERFLY, Action.BUY, strikes, 10.0)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(strikes)
        rr = analyze(Strategy.BUTTERFLY, Action.BUY, strikes, 10.0)
        assert (rr.max_profit, rr.max_loss, rr.breakevens) == (
            ref.max_profit,
            ref.max_loss,
            ref.breakevens,
        )


def test_quantity_scales_dollars_not_points() -> None:
    t = trade(quantity=3)
    d = risk_reward_for(t).to_dict()
    assert d["max_loss_points"] == pytest.approx(24.82)
    assert d["max_loss"] == pytest.approx(24.82 * 100 * 3)


def test_premium_above_width_means_no_profit_and_no_breakeven() -> None:
    rr = analyze(Strategy.BUTTERFLY, Action.BUY, [100, 110, 120], 12.0)
    assert rr.max_profit == pytest.approx(-2.0)
    assert rr.breakevens == ()


def test_bad_strikes_are_rejected() -> None:
    with pytest.raises(ValueError, match="strikes"):
        analyze(Strategy.IRON_CONDOR, Action.SELL, [1, 2, 3], 1.0)
    with pytest.raises(ValueError, match="strikes"):
        analyze(Strategy.VERTICAL, Action.SELL, [5, 5], 1.0)
    with pytest.raises(ValueError, match="premium"):
        analyze(Strategy.VERTICAL, Action.SELL, [5, 6], -1.0)


# --- every strategy, action and strike order against the grid ----------------------------

_strategy_cases = st.sampled_from(
    [
        (Strategy.BUTTERFLY, None),
        (Strategy.BUTTERFLY, "put"),
        (Strategy.IRON_CONDOR, None),
        (Strategy.SONAR, None),
        (Strategy.VERTICAL, "call"),
        (Strategy.VERTICAL, "put"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    case=_strategy_cases,
    action=st.sampled_from([Action.BUY, Action.SELL]),
    base=st.integers(50, 6000),
    gaps=st.lists(st.integers(1, 60), min_size=3, max_size=3),
    premium_cents=st.integers(0, 6000),
    seed=st.integers(0, 1000),
)
def test_matches_grid_payoff(
    case: tuple[Strategy, str | None],
    action: Action,
    base: int,
    gaps: list[int],
    premium_cents: int,
    seed: int,
) -> None:
    strategy, otype = case
    n = {Strategy.BUTTERFLY: 3, Strategy.VERTICAL: 2}.get(strategy, 4)
    strikes = [float(base)]
    for g in gaps[: n - 1]:
        strikes.append(strikes[-1] + g)
    random.Random(seed).shuffle(strikes)  # any strike order
    premium = premium_cents / 100.0
    check(strategy, action, strikes, premium, otype)
    rr = analyze(strategy, action, strikes, premium, option_type=otype)
    assert math.isfinite(rr.max_profit) and math.isfinite(rr.max_loss)


def test_zero_premium_breakevens_are_where_the_payoff_leaves_zero() -> None:
    rr = analyze(Strategy.BUTTERFLY, Action.BUY, [50, 51, 52], 0.0)
    assert rr.breakevens == (50.0, 52.0)
    assert rr.max_loss == pytest.approx(0.0)
