"""Cache warming (magic8.domain.warming): the bounded request counter, the warm-up's
targets, and that a warmed trade is then a cache hit."""

from __future__ import annotations

from typing import Any

import pytest

from magic8.domain.trades import TradeRequest
from magic8.domain.warming import (
    WARM_EVENT,
    CacheWarmer,
    RequestCounter,
    is_warm_event,
)
from tests.factories import BUTTERFLY, SONAR_NDX
from tests.factories import IRON_CONDOR as CONDOR
from tests.unit.domain.test_service import make, t


def fly(premium: float) -> TradeRequest:
    return t(premium=premium)


def test_counter_ranks_by_requests_and_stays_bounded() -> None:
    c = RequestCounter(max_entries=8)
    regular = fly(20.0)
    for _ in range(50):
        c.count(regular.cache_key(), regular)
    second = fly(21.0)
    for _ in range(10):
        c.count(second.cache_key(), second)
    # a flood of one-off trades never exceeds the bound nor pushes out the regulars
    for i in range(1000):
        one_off = fly(30.0 + i / 100)
        c.count(one_off.cache_key(), one_off)
        assert len(c) <= 8
    top = c.top(2)
    assert [(tr.premium, n) for tr, n in top] == [(20.0, 50), (21.0, 10)]
    assert c.top(0) == []


def test_a_warmed_trade_is_a_cache_hit_for_the_next_request() -> None:
    svc, market, _, _, _, model = make(track_requests=64)
    warmer = CacheWarmer(svc, trades=[t(), t(CONDOR)], symbols=["NDX"])
    result = warmer.warm()
    assert result.trades == 2 and result.configured == 2 and result.most_requested == 0
    assert result.symbols == 2 and result.errors == [] and result.already_cached == 0
    assert model.rows_seen == [2]
    assert len(svc.requests or []) == 0  # a warm-up is not counted as requests
    preds, metrics = svc.predict_batch([t(), t(CONDOR)])
    assert metrics["prediction_hits"] == 2 and metrics["market_data_fetches"] == 0
    assert model.rows_seen == [2]  # nothing predicted again
    assert all(p.cache_age_s == 0.0 for p in preds)  # same clock instant: no age yet
    # NDX's snapshot was read ahead: a NDX trade needs no market read
    ndx = t(SONAR_NDX)
    _, m2 = svc.predict_batch([ndx])
    assert m2["market_data_fetches"] == 0 and len(market.reads) == 1


def test_most_requested_are_warmed_after_the_configured_without_repeats() -> None:
    svc, _, _, _, clocks, _ = make(track_requests=64)
    popular = [fly(20.0 + i) for i in range(5)]
    for n, trade in enumerate(popular):
        for _ in range(n + 1):
            svc.predict_batch([trade])
    warmer = CacheWarmer(svc, trades=[popular[4], t(CONDOR)], top_n=3)
    targets, configured, top = warmer.targets()
    # configured first; then the top 3 (24, 23, 22) minus the configured 24
    assert configured == 2 and top == 2
    assert [tr.premium for tr in targets] == [24.0, CONDOR["premium"], 23.0, 22.0]
    clocks.advance(400)  # every cache entry expired
    result = warmer.warm()
    assert result.trades == 4 and result.already_cached == 0
    _, metrics = svc.predict_batch([popular[3], popular[2]])
    assert metrics["prediction_hits"] == 2


def test_max_batch_and_counting_off() -> None:
    svc, _, _, _, _, _ = make()  # track_requests 0: nothing counted
    svc.predict_batch([fly(20.0)])
    assert svc.requests is None
    warmer = CacheWarmer(svc, trades=[fly(20.0 + i) for i in range(10)], max_batch=4)
    targets, configured, top = warmer.targets()
    assert len(targets) == 4 and configured == 4 and top == 0
    assert warmer.status()["tracked_trades"] == 0


def test_a_failing_warm_up_is_reported_not_raised() -> None:
    class Broken:
        requests = None

        def prefetch_market(self, symbols: Any) -> int:
            raise ConnectionError("dynamodb down")

        def predict_batch(self, *a: Any, **k: Any) -> Any:  # pragma: no cover
            raise AssertionError

    warmer = CacheWarmer(Broken(), symbols=["SPX"])  # type: ignore[arg-type]
    result = warmer.warm()
    assert result.errors == ["ConnectionError: dynamodb down"]
    assert warmer.status()["last"]["errors"] == result.errors and warmer.runs == 1


@pytest.mark.parametrize(
    ("event", "warm"),
    [(WARM_EVENT, True), ({"magic8": "other"}, False), ({"httpMethod": "GET"}, False), ([], False)],
)
def test_warm_event(event: Any, warm: bool) -> None:
    assert is_warm_event(event) is warm


def test_bot_trades_without_strikes_count_as_their_assumed_trade() -> None:
    svc, _, _, _, _, _ = make(track_requests=8)
    bot = {"symbol": "SPXW", "strategy": "Butterfly", "premium": 24.82, "predicted_price": 5855}
    for _ in range(3):
        svc.predict_batch([TradeRequest.model_validate(bot)])
    ((trade, n),) = svc.requests.top(1)  # type: ignore[union-attr]
    assert n == 3 and trade.symbol.value == "SPX" and len(trade.strikes) == 3
    assert BUTTERFLY["strategy"] == trade.strategy.value
