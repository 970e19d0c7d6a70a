"""Trades a premium makes impossible: no price at expiry pays a profit (a debit of the
width or more: max profit <= 0), or no price loses (a credit above the width: max loss < 0).

Closed form over the strikes (the payoff of these defined-risk structures is piecewise
linear with flat tails, so its extremes are at the strikes), a few microseconds per trade
where the full risk/reward analysis takes ~0.4 ms, so a batch of 100 is checked in well
under a millisecond.
"""

from __future__ import annotations

import math

from magic8.domain.risk_reward import trade_extremes
from magic8.domain.trades import Action, TradeRequest


def impossible_reason(trade: TradeRequest) -> str | None:
    """Why the trade cannot exist at this premium ("premium: ..."), or None if it can."""
    max_profit, max_loss = trade_extremes(trade)  # memoised on the trade
    if not (math.isfinite(max_profit) and math.isfinite(max_loss)):
        return None  # unbounded or not a structure: the strikes validators say why
    if max_profit > 1e-9 and max_loss >= -1e-9:
        return None
    ks = sorted(trade.strikes)
    shape = f"{trade.action.value} {trade.strategy.value} {'/'.join(f'{k:g}' for k in ks)}"
    if max_profit <= 1e-9:
        return (
            f"premium: a {shape} for a debit of {trade.premium:g} can never profit "
            f"(max profit {max_profit:.2f} points at expiry); the debit must be below "
            f"{trade.premium + max_profit:.2f}"
        )
    if max_loss < -1e-9:
        kind = "credit" if trade.action == Action.SELL else "debit"
        return (
            f"premium: a {shape} for a {kind} of {trade.premium:g} can never lose "
            f"(it would gain at least {-max_loss:.2f} points at any price): the credit is "
            f"above the width of {trade.premium + max_loss:.2f}"
        )
    return None
