"""The bot's request shape: aliases, standard strikes and actions, what is assumed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from magic8.domain import prediction_id, trade_shape
from magic8.domain.risk_reward import risk_reward_for
from magic8.domain.trades import STRIKE_COUNT, Strategy, Symbol, TradeRequest

BOT = {"symbol": "SPX", "premium": 1.0, "predicted_price": 5855}


@pytest.mark.parametrize(
    ("raw", "strategy", "option_type", "action"),
    [
        ("IronCondor", "Iron Condor", None, "SELL"),
        ("iron_condor", "Iron Condor", None, "SELL"),
        (" IRON-CONDOR ", "Iron Condor", None, "SELL"),
        ("Vertical Spread", "Vertical", None, "SELL"),
        ("Put Spread", "Vertical", "put", "SELL"),
        ("Call Spread", "Vertical", "call", "SELL"),
        ("Debit Spread", "Vertical", None, "BUY"),
        ("butterfly", "Butterfly", None, "BUY"),
        ("Fly", "Butterfly", None, "BUY"),
        ("SONAR", "Sonar", None, "SELL"),
    ],
)
def test_trade_type_aliases(raw: str, strategy: str, option_type: str | None, action: str) -> None:
    t = TradeRequest.model_validate({**BOT, "strategy": raw})
    assert t.strategy == Strategy(strategy)
    assert t.option_type == option_type
    assert t.action.value == action
    assert len(t.strikes) == STRIKE_COUNT[t.strategy]


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [
        ("SPXW", "SPX"),
        ("$SPX", "SPX"),
        ("^spx", "SPX"),
        ("spx", "SPX"),
        (" SPX Index", "SPX"),
        ("NDXP", "NDX"),
        ("$RUT", "RUT"),
        ("RUTW", "RUT"),
        ("xsp", "XSP"),
    ],
)
def test_symbol_aliases(raw: str, symbol: str) -> None:
    t = TradeRequest.model_validate({**BOT, "strategy": "Butterfly", "symbol": raw})
    assert t.symbol == Symbol(symbol)


def test_unknown_names_are_still_rejected() -> None:
    for bad in (
        {"strategy": "Straddle"},
        {"strategy": "Butterfly", "symbol": "AAPL"},
        {"strategy": "Butterfly", "action": "HOLD"},
    ):
        with pytest.raises(ValidationError):
            TradeRequest.model_validate({**BOT, **bad})


def test_assumed_names_what_was_filled_in() -> None:
    missing = TradeRequest.model_validate({**BOT, "strategy": "Butterfly"})
    assert missing.assumed == ("strikes", "action")
    nulls = TradeRequest.model_validate(
        {**BOT, "strategy": "Butterfly", "strikes": None, "action": None}
    )
    assert nulls.assumed == ("strikes", "action")
    assert nulls.strikes == missing.strikes == [5805.0, 5855.0, 5905.0]
    sent = TradeRequest.model_validate(
        {**BOT, "strategy": "Butterfly", "strikes": [5800, 5850, 5900], "action": "long"}
    )
    assert sent.assumed == () and sent.action.value == "BUY"
    only_action = TradeRequest.model_validate(
        {**BOT, "strategy": "Iron Condor", "strikes": [5830, 5835, 5875, 5880]}
    )
    assert only_action.assumed == ("action",) and only_action.action.value == "SELL"
    with pytest.raises(ValidationError):  # an empty list is not "missing"
        TradeRequest.model_validate({**BOT, "strategy": "Butterfly", "strikes": []})


@pytest.mark.parametrize("symbol", [s.value for s in Symbol])
@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
@pytest.mark.parametrize("option_type", [None, "call", "put"])
def test_standard_strikes_fit_the_strategy_and_win_at_the_predicted_price(
    symbol: str, strategy: str, option_type: str | None
) -> None:
    price = {"SPX": 5855, "XSP": 585.5, "SPY": 585, "NDX": 21000, "QQQ": 512, "RUT": 2300}[symbol]
    body = {"symbol": symbol, "strategy": strategy, "predicted_price": price, "premium": 0.01}
    if option_type:
        body["option_type"] = option_type
    t = TradeRequest.model_validate(body)
    ks = sorted(t.strikes)
    assert len(set(ks)) == STRIKE_COUNT[t.strategy]
    # the trade's best outcome is at (or around) the predicted price: max profit > 0 there
    rr = risk_reward_for(t)
    assert rr.max_profit > 0
    if t.strategy in (Strategy.BUTTERFLY,):
        assert ks[1] == pytest.approx(price, abs=trade_shape.SYMBOL_SCALES[symbol].grid / 2 + 1e-9)
    assert all(k % trade_shape.SYMBOL_SCALES[symbol].grid == 0 for k in ks)


def test_spy_is_a_tenth_of_spx() -> None:
    spx = trade_shape.standard_strikes("Butterfly", "SPX", 5855)
    spy = trade_shape.standard_strikes("Butterfly", "SPY", 585.5)
    assert spx[0] / 10 == pytest.approx(spy[0], abs=1.0)
    assert spy[2] - spy[0] == pytest.approx((spx[2] - spx[0]) / 10)


def test_prediction_id_round_trip_and_rejections() -> None:
    at = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    pid = prediction_id.encode("SPX", "Iron Condor", 0.665432, 0.6, at)
    ref = prediction_id.decode(pid)
    assert (ref.symbol, ref.strategy) == ("SPX", "Iron Condor")
    assert ref.win_probability == pytest.approx(0.665432, abs=1e-9)
    assert ref.threshold == pytest.approx(0.6, abs=1e-9)
    assert ref.served_at == at
    assert len(pid) <= 64
    assert pid != prediction_id.encode("SPX", "Iron Condor", 0.665432, 0.6, at)
    for bad in (
        "",
        "x",
        pid.replace("SPX", "AAPL"),
        pid.replace(".IC.", ".XX."),
        "m8p1.SPX.IC.2000000.1.a.b",
        "m8p1.SPX.IC.a.1.a.b",
    ):
        with pytest.raises(prediction_id.PredictionIdError):
            prediction_id.decode(bad)
