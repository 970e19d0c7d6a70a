"""The market bias an option trade implies: defined once, used by the API and the chart.

An aggressor BUYING calls or SELLING puts is bullish on the underlying; buying puts or
selling calls is bearish. The IFD detector's signal direction already follows this rule
(LONG = bullish, SHORT = bearish: magic8.ifd.analysis' directional net volume is
calls ask - bid, puts bid - ask); `signal_bias` reads a stored signal either way.
"""

from __future__ import annotations

from typing import Literal

Bias = Literal["bullish", "bearish", "neutral"]

_FLOW: dict[tuple[str, str], Bias] = {
    ("C", "BUY"): "bullish",
    ("C", "SELL"): "bearish",
    ("P", "BUY"): "bearish",
    ("P", "SELL"): "bullish",
}


def flow_bias(option_type: str, aggressor: str) -> Bias:
    """Bias of one-sided option flow: option_type C|P (or CALL|PUT), aggressor BUY|SELL."""
    cp = str(option_type).strip().upper()[:1]
    side = str(aggressor).strip().upper()
    side = {"B": "BUY", "A": "SELL"}.get(side, side)  # CME MBO aggressor sides
    return _FLOW.get((cp, side), "neutral")


def direction_bias(direction: str | None) -> Bias:
    """Bias of an IFD direction: LONG -> bullish, SHORT -> bearish, anything else neutral."""
    d = str(direction or "").strip().upper()
    if d in ("LONG", "BULLISH"):
        return "bullish"
    if d in ("SHORT", "BEARISH"):
        return "bearish"
    return "neutral"


def signal_bias(option_type: str, direction: str | None, aggressor: str | None = None) -> Bias:
    """A signal's bias: its direction when it has one, else what its option flow implies."""
    bias = direction_bias(direction)
    if bias == "neutral" and aggressor:
        return flow_bias(option_type, aggressor)
    return bias
