"""Expected-value thresholds: the breakeven arithmetic, the fast max profit / max loss
against analyze(), and what the service answers with."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from magic8.domain.risk_reward import (
    PayoffFractions,
    analyze,
    ev_breakeven,
    ev_threshold,
    expected_value,
    max_profit_loss,
)
from magic8.domain.trades import Action, Strategy
from tests.unit.domain.test_service import BUTTERFLY, CONDOR, FakeModel, make, t


def test_breakeven_is_where_expected_value_is_zero() -> None:
    assert ev_breakeven(3.0, 1.0) == pytest.approx(0.25)
    assert expected_value(0.25, 3.0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert expected_value(0.30, 3.0, 1.0) > 0 > expected_value(0.20, 3.0, 1.0)
    frac = PayoffFractions(win_fraction=0.5, loss_fraction=0.8)
    p = ev_breakeven(3.0, 1.0, frac)
    assert p == pytest.approx(0.8 / (1.5 + 0.8))
    assert expected_value(p, 3.0, 1.0, frac) == pytest.approx(0.0, abs=1e-12)
    assert ev_threshold(3.0, 1.0, margin=0.05) == pytest.approx(0.30)
    assert ev_threshold(1.0, 99.0, margin=0.05) == 1.0  # clipped
    out = ev_breakeven(np.array([1.0, 2.0, 0.0]), np.array([1.0, math.inf, 0.0]))
    assert out[0] == pytest.approx(0.5) and np.isnan(out[1]) and np.isnan(out[2])


def _random_trades(n: int, seed: int = 4) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        strat = rng.choice(list(Strategy))
        k = {Strategy.BUTTERFLY: 3, Strategy.VERTICAL: 2}.get(strat, 4)
        strikes = sorted(rng.choice(np.arange(5700, 6000, 5), size=k, replace=False).tolist())
        out.append(
            {
                "strategy": strat,
                "action": rng.choice(list(Action)),
                "strikes": [float(x) for x in strikes],
                "premium": float(rng.uniform(0.05, 40.0)),
                "option_type": rng.choice([None, "call", "put", "C", "P"]),
                "predicted_price": float(rng.uniform(5650, 6050)),
            }
        )
    return out


def test_fast_max_profit_loss_equals_analyze() -> None:
    for tr in _random_trades(400):
        rr = analyze(**tr)
        w, loss = max_profit_loss(**tr)
        assert w == pytest.approx(rr.max_profit, abs=1e-9)
        assert loss == pytest.approx(rr.max_loss, abs=1e-9)


class PayoffModel(FakeModel):
    payoff = {"Iron Condor": {"win_fraction": 0.9, "loss_fraction": 0.5}}


@pytest.mark.parametrize("margin", [0.0, 0.03])
def test_service_threshold_is_the_trades_ev_breakeven_plus_margin(margin: float) -> None:
    svc, *_ = make(model=PayoffModel(), ev_margin=margin)
    reqs = [t(), t(CONDOR), t(CONDOR, quantity=3)]
    preds, _ = svc.predict_batch(reqs)
    fly, condor, condor3 = preds
    # butterfly 5805/5855/5905 BUY at 24.82: max profit 25.18, max loss 24.82, fractions 1
    assert fly.threshold == pytest.approx(24.82 / 50.0 + margin, abs=1e-6)
    # condor SELL 0.65 on 5-wide wings: max profit 0.65, max loss 4.35; fractions 0.9 / 0.5
    gain, lose = 0.65 * 0.9, 4.35 * 0.5
    assert condor.threshold == pytest.approx(lose / (gain + lose) + margin, abs=1e-6)
    for p, (g, lo, q) in (
        (fly, (25.18, 24.82, 1)),
        (condor, (gain, lose, 1)),
        (condor3, (gain, lose, 3)),
    ):
        ev = (p.win_probability * g - (1 - p.win_probability) * lo) * 100 * q
        assert p.expected_value == pytest.approx(ev, abs=0.01)
        assert p.prediction == ("WIN" if p.win_probability >= p.threshold else "LOSS")
        if margin == 0.0:  # threshold = breakeven: WIN exactly when EV >= 0
            assert (p.prediction == "WIN") == (p.expected_value >= -0.005)
    assert condor3.expected_value == pytest.approx(3 * condor.expected_value, abs=0.02)
    assert condor3.threshold == condor.threshold


def test_repeat_from_cache_answers_the_same_threshold_and_ev() -> None:
    svc, *_ = make()
    first, _ = svc.predict_batch([t(BUTTERFLY), t(CONDOR)])
    again, metrics = svc.predict_batch([t(BUTTERFLY), t(CONDOR)])
    assert metrics["prediction_hits"] == 2
    assert [(p.threshold, p.expected_value) for p in again] == [
        (p.threshold, p.expected_value) for p in first
    ]
