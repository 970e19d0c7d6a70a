"""The market bias an option trade implies (the chart's marker direction)."""

from __future__ import annotations

import pytest

from magic8.domain.bias import direction_bias, flow_bias, signal_bias


@pytest.mark.parametrize(
    ("option_type", "aggressor", "bias"),
    [
        ("C", "BUY", "bullish"),  # call buying
        ("P", "SELL", "bullish"),  # put selling
        ("P", "BUY", "bearish"),  # put buying
        ("C", "SELL", "bearish"),  # call selling
        ("call", "b", "bullish"),  # CME MBO side B = buyer lifted the ask
        ("PUT", "A", "bullish"),  # side A = seller hit the bid
        ("C", "N", "neutral"),  # unknown aggressor
        ("X", "BUY", "neutral"),
    ],
)
def test_flow_bias(option_type: str, aggressor: str, bias: str) -> None:
    assert flow_bias(option_type, aggressor) == bias


@pytest.mark.parametrize(
    ("direction", "bias"),
    [("LONG", "bullish"), ("short", "bearish"), ("NEUTRAL", "neutral"), (None, "neutral")],
)
def test_direction_bias(direction: str | None, bias: str) -> None:
    assert direction_bias(direction) == bias


def test_signal_bias_prefers_the_direction_and_agrees_with_the_generator_truth() -> None:
    from magic8_dev.flow.generator import DIRECTION

    for (cp, aggressor), direction in DIRECTION.items():
        assert signal_bias(cp, direction) == flow_bias(cp, aggressor)
    assert signal_bias("P", None, aggressor="BUY") == "bearish"
    assert signal_bias("P", "LONG", aggressor="BUY") == "bullish"  # the detector's word wins
