from __future__ import annotations

from datetime import UTC, datetime

from magic8.domain.cache import (
    CacheConfig,
    PredictionCaches,
    TTLCache,
    feature_key,
    prediction_key,
    snapshot_identity,
)
from magic8.domain.market import MarketSnapshot
from magic8.domain.trades import TradeRequest
from tests.factories import trade
from tests.fakes.clock import ManualClock


def test_entries_expire_after_ttl_on_the_injected_clock() -> None:
    clock = ManualClock(1000.0)
    cache: TTLCache[str, int] = TTLCache(60, clock=clock)
    cache.put("a", 1)
    assert cache.get("a") == 1
    clock.now += 59.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is None
    assert (cache.hits, cache.misses) == (2, 1)
    assert len(cache) == 0  # the expired entry was dropped on read


def test_lookup_distinguishes_a_cached_none() -> None:
    cache: TTLCache[str, int | None] = TTLCache(10, clock=ManualClock(1000.0))
    assert cache.lookup("x") == (False, None)
    cache.put("x", None)
    assert cache.lookup("x") == (True, None)
    assert (cache.hits, cache.misses) == (1, 1)


def test_per_entry_ttl_and_zero_ttl_not_stored() -> None:
    clock = ManualClock(1000.0)
    cache: TTLCache[str, int] = TTLCache(300, clock=clock)
    cache.put("short", 1, ttl_s=5)
    cache.put("never", 2, ttl_s=0)
    clock.now += 6
    assert cache.get("short") is None
    assert cache.get("never") is None


def test_full_cache_drops_expired_then_oldest() -> None:
    clock = ManualClock(1000.0)
    cache: TTLCache[int, int] = TTLCache(10, max_entries=3, clock=clock)
    cache.put(1, 1, ttl_s=1)
    cache.put(2, 2)
    cache.put(3, 3)
    clock.now += 2  # 1 has expired
    cache.put(4, 4)
    assert 1 not in cache and 2 in cache and 4 in cache
    cache.put(5, 5)  # full of live entries: the oldest (2) goes
    assert 2 not in cache and 3 in cache and 5 in cache
    assert len(cache) == 3


def test_a_full_cache_frees_a_tenth_at_once_so_its_sweep_is_rare() -> None:
    clock = ManualClock(1000.0)
    cache: TTLCache[int, int] = TTLCache(10, max_entries=1000, clock=clock)
    for k in range(1000):
        cache.put(k, k)
    cache.put(1000, 1000)  # full of live entries: the oldest hundred go in one sweep
    assert len(cache) == 901 and 99 not in cache and 100 in cache and 1000 in cache
    for k in range(1001, 1100):  # the next 99 new keys fit without another sweep
        cache.put(k, k)
    assert len(cache) == 1000 and 100 in cache


def test_default_ttls_and_configurable() -> None:
    caches = PredictionCaches()
    assert (caches.market.ttl_s, caches.features.ttl_s, caches.predictions.ttl_s) == (300, 60, 300)
    custom = PredictionCaches(CacheConfig(market_ttl_s=5, features_ttl_s=6, predictions_ttl_s=7))
    assert (custom.market.ttl_s, custom.features.ttl_s, custom.predictions.ttl_s) == (5, 6, 7)
    assert set(custom.stats()) == {"market", "features", "predictions"}


def _keys(t: TradeRequest, updated: datetime, version: str = "v1") -> tuple[object, object]:
    snap = MarketSnapshot(symbol="SPX", last=5850, updated_at=updated)
    fk = feature_key(
        t,
        snapshot_identity("SPX", snap),
        snapshot_identity("VIX", None),
        datetime(2026, 1, 5, 15, 0, tzinfo=UTC),
    )
    return fk, prediction_key(fk, version)


def test_every_trade_field_is_in_the_key() -> None:
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    base_f, base_p = _keys(trade(), at)
    variants = [
        trade(premium=24.83),
        trade(predicted_price=5856),
        trade(strikes=[5900, 5855, 5805]),
        trade(action="SELL"),
        trade(strategy="Vertical", strikes=[5855, 5805]),
        trade(symbol="XSP"),
        trade(quantity=2),
        trade(short_term=5860),
        trade(long_term=5870),
        trade(option_type="put"),
        trade(risk=10),
        trade(reward=5),
    ]
    for v in variants:
        f, p = _keys(v, at)
        assert f != base_f and p != base_p, v


def test_snapshot_identity_and_model_version_are_in_the_key() -> None:
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    f1, p1 = _keys(trade(), at)
    f2, p2 = _keys(trade(), datetime(2026, 1, 5, 15, 5, tzinfo=UTC))
    assert f1 != f2 and p1 != p2
    _, p3 = _keys(trade(), at, version="v2")
    assert p3 != p1
    # the same trade and market state: the same keys
    assert _keys(trade(), at) == (f1, p1)


def test_strike_order_is_part_of_the_key_as_sent() -> None:
    # strikes are kept as sent; a reordered trade is a different request (never a wrong hit)
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    assert _keys(trade(), at)[0] != _keys(trade(strikes=[5805, 5855, 5905]), at)[0]
