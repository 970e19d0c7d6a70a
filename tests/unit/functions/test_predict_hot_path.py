"""The predict path's per-batch shortcuts answer exactly what the slow path answers:
validated trades reused only for an identical raw trade, errors located in the whole
list, one id stamp per batch, the payoff extremes computed once per trade."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from functions.predict.app import BatchRequest, ValidatedTrades
from magic8.domain import prediction_id
from magic8.domain.plausibility import impossible_reason
from magic8.domain.risk_reward import max_profit_loss, trade_extremes
from tests.factories import BUTTERFLY, IRON_CONDOR, trade, trade_dict


def _batch(*trades: dict[str, Any]) -> BatchRequest:
    return BatchRequest.model_validate({"requests": list(trades)})


def test_an_identical_raw_trade_reuses_the_validated_one() -> None:
    first = _batch(trade_dict(BUTTERFLY), trade_dict(IRON_CONDOR))
    again = _batch(trade_dict(IRON_CONDOR), trade_dict(BUTTERFLY))
    assert again.requests[1] is first.requests[0]
    assert again.requests[0] is first.requests[1]
    other = _batch(trade_dict(BUTTERFLY, premium=24.83))
    assert other.requests[0] is not first.requests[0]
    assert other.requests[0].premium == 24.83


def test_a_bool_never_hits_the_entry_of_its_number() -> None:
    _batch(trade_dict(BUTTERFLY, quantity=1))
    with pytest.raises(ValidationError):
        _batch(trade_dict(BUTTERFLY, quantity=True))
    assert ValidatedTrades.key({"quantity": True}) != ValidatedTrades.key({"quantity": 1})


def test_an_error_among_cached_trades_names_its_index_in_the_whole_list() -> None:
    good = trade_dict(BUTTERFLY)
    _batch(good)  # cached
    bad = trade_dict(IRON_CONDOR, strikes=[5880, 5875])
    with pytest.raises(ValidationError) as info:
        _batch(good, good, bad)
    locs = [e["loc"] for e in info.value.errors()]
    assert all(loc[:2] == ("requests", 2) for loc in locs), locs


def test_an_empty_or_oversized_list_is_still_refused() -> None:
    with pytest.raises(ValidationError):
        _batch()
    with pytest.raises(ValidationError) as info:
        _batch(*[trade_dict(BUTTERFLY)] * 101)
    assert info.value.errors()[0]["type"] == "too_long"


def test_one_stamp_gives_distinct_well_formed_ids() -> None:
    served = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    stamp = prediction_id.Stamp(served, 3)
    ids = [stamp.encode("SPX", "Butterfly", 0.61, 0.5) for _ in range(50)]  # refills
    assert len(set(ids)) == 50
    ref = prediction_id.decode(ids[-1])
    assert ref.served_at == served and ref.strategy == "Butterfly"
    assert abs(ref.win_probability - 0.61) < 1e-9 and abs(ref.threshold - 0.5) < 1e-9
    assert (
        prediction_id.encode("SPX", "Butterfly", 0.61, 0.5, served).split(".")[:6]
        == ids[0].split(".")[:6]
    )


def test_payoff_extremes_are_computed_once_and_match_the_closed_form() -> None:
    t = trade(IRON_CONDOR)
    expected = max_profit_loss(
        t.strategy, t.action, t.strikes, t.premium, t.option_type, t.predicted_price
    )
    assert trade_extremes(t) == expected
    assert t._extremes == expected
    assert impossible_reason(t) is None
    greedy = trade(IRON_CONDOR, premium=7.0)  # a credit above the 5-wide wings
    reason = impossible_reason(greedy)
    assert reason is not None and "never lose" in reason
    dear = trade(BUTTERFLY, premium=80)
    reason = impossible_reason(dear)
    assert reason is not None and "never profit" in reason
