"""Small TTL caches with hit/miss counters, and the keys of the prediction service's three.

A cache entry lives `ttl_s` seconds on an injectable monotonic clock. The keys hold
everything a value depends on:

- market data:  the symbol                                     (300 s by default)
- features:     TradeRequest.cache_key() + the identity of the market snapshots used
                (symbol, updated_at, for the symbol and for VIX; a row's time features
                come from the trade's timestamp or the snapshot's time) + the bucketed
                serve time when there is no snapshot at all             (60 s)
- predictions:  the feature key + the model version               (300 s)

so two trades that differ in any field (premium, strikes, predicted price, action,
strategy, ...) never share a feature row or an answer, and a new market snapshot or a
new model never serves an old answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Generic, TypeVar

import numpy as np

from magic8.domain.market import MarketSnapshot
from magic8.domain.trades import TradeRequest

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MonotonicClock = Callable[[], float]


@dataclass(frozen=True)
class CacheConfig:
    market_ttl_s: float = 300.0
    features_ttl_s: float = 60.0
    predictions_ttl_s: float = 300.0
    # how long a symbol with no snapshot is remembered as missing (keeps a dead table
    # from being read on every request, without hiding new data for long)
    missing_market_ttl_s: float = 15.0
    max_entries: int = 50_000


class TTLCache(Generic[K, V]):
    """A dict with per-entry expiry and hit/miss counters. Not a general LRU: when full,
    expired entries go first, then the oldest inserted.

    Why not cachetools: its TTLCache has one TTL per cache (the market cache remembers a
    missing snapshot for 15 s and a present one for 300 s), TLRUCache does per-entry TTLs
    but neither counts hits or stores None distinctly, and both are ~6x slower on the hot
    path: 100 gets 0.47 ms (TTLCache) / 0.69 ms (TLRUCache) vs 0.08 ms here, measured on
    this project's dev machine; a cached batch of 100 does three lookups per trade within
    a 5 ms budget."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 50_000,
        clock: MonotonicClock = time.monotonic,
        name: str = "",
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be >= 0")
        self.ttl_s = float(ttl_s)
        self.max_entries = max(1, int(max_entries))
        self.clock = clock
        self.name = name
        self.hits = 0
        self.misses = 0
        self._data: dict[K, tuple[float, V]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        entry = self._data.get(key)  # type: ignore[call-overload,arg-type]
        return entry is not None and entry[0] > self.clock()

    def get(self, key: K) -> V | None:
        """The live value or None; counts a hit or a miss."""
        entry = self._data.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self.hits += 1
                return entry[1]
            del self._data[key]
        self.misses += 1
        return None

    def entry(self, key: K) -> tuple[float, V] | None:
        """The live entry (expires_at, value) as stored, or None; counts a hit or a miss.
        No allocation: the service reads a cached answer's age from it (an entry put with
        the cache's ttl_s was stored at expires_at - ttl_s)."""
        entry = self._data.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self.hits += 1
                return entry
            del self._data[key]
        self.misses += 1
        return None

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """(found, value) for caches that store None as a value; counts a hit or a miss."""
        entry = self._data.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self.hits += 1
                return True, entry[1]
            del self._data[key]
        self.misses += 1
        return False, None

    def put(self, key: K, value: V, ttl_s: float | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return
        data = self._data
        if key in data:
            del data[key]  # re-insert at the end: insertion order = age order
        elif len(data) >= self.max_entries:
            self._make_room()
        data[key] = (self.clock() + ttl, value)

    def _make_room(self) -> None:
        """Called when full: drop every expired entry, then the oldest until a tenth of
        the room is free. The sweep is O(entries); freeing a tenth makes it one sweep per
        max_entries/10 puts (freeing one slot made a full cache of new trades pay it on
        every put: 1 ms per trade at 4,096 entries, measured)."""
        now = self.clock()
        data = self._data
        for k in [k for k, (exp, _) in data.items() if exp <= now]:
            del data[k]
        keep = self.max_entries - max(1, self.max_entries // 10)
        if len(data) > keep:
            for k in list(islice(data, len(data) - keep)):
                del data[k]

    def clear(self) -> None:
        self._data.clear()

    def reset_counters(self) -> None:
        self.hits = 0
        self.misses = 0

    def stats(self) -> dict[str, float | int | str]:
        total = self.hits + self.misses
        return {
            "name": self.name,
            "ttl_s": self.ttl_s,
            "size": len(self._data),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / total, 4) if total else 0.0,
        }


# --- keys -------------------------------------------------------------------------------

SnapshotIdentity = tuple[str, str | None]


def snapshot_identity(symbol: str, snapshot: MarketSnapshot | None) -> SnapshotIdentity:
    """(symbol, updated_at) of the snapshot a feature row was built from; None = no data."""
    if snapshot is None:
        return (symbol, None)
    return (snapshot.symbol, snapshot.updated_at.isoformat())


class CacheKey:
    """An immutable key whose hash is computed once (keys are nested tuples of ~20 values;
    a batch looks each one up several times)."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple[object, ...]) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CacheKey) and self._hash == other._hash and self.parts == other.parts
        )

    def __repr__(self) -> str:
        return f"CacheKey({self.parts!r})"


FeatureKey = CacheKey
PredictionKey = CacheKey


def feature_key(
    trade: TradeRequest,
    market: SnapshotIdentity,
    vix: SnapshotIdentity,
    feature_time: datetime | str | None,
) -> FeatureKey:
    """Everything a feature row depends on. feature_time: the (bucketed) serve time when
    it feeds the temporal features (no timestamp on the trade and no market snapshot);
    None when the trade's timestamp or the snapshot's time (in `market`) does."""
    if trade.timestamp is not None or feature_time is None:
        ftime: str | None = None
    elif isinstance(feature_time, str):
        ftime = feature_time
    else:
        ftime = feature_time.isoformat()
    return CacheKey((trade.cache_key(), market, vix, ftime))


def prediction_key(fkey: FeatureKey, model_version: str) -> PredictionKey:
    return CacheKey((*fkey.parts, model_version))


def trade_keys(
    trade: TradeRequest,
    market: SnapshotIdentity,
    vix: SnapshotIdentity,
    feature_time: str | None,
    model_version: str,
) -> tuple[FeatureKey, PredictionKey]:
    """feature_key and prediction_key of the trade, remembered on the (validated, reused)
    trade for the market state they were built for: a batch sent again while the
    snapshots are unchanged looks its answers up without rebuilding and rehashing keys."""
    private = trade.__pydantic_private__  # the dict: see TradeRequest
    state = (market, vix, feature_time, model_version)
    memo = private["_keys"]  # type: ignore[index]
    if memo is not None and memo[0] == state:
        return memo[1], memo[2]
    fkey = feature_key(trade, market, vix, feature_time)
    pkey = prediction_key(fkey, model_version)
    private["_keys"] = (state, fkey, pkey)  # type: ignore[index]
    return fkey, pkey


class PredictionCaches:
    """The service's three caches, built from one config and one clock."""

    def __init__(
        self, config: CacheConfig | None = None, clock: MonotonicClock = time.monotonic
    ) -> None:
        self.config = config or CacheConfig()
        c = self.config
        self.market: TTLCache[str, MarketSnapshot | None] = TTLCache(
            c.market_ttl_s, c.max_entries, clock, "market"
        )
        self.features: TTLCache[FeatureKey, np.ndarray] = TTLCache(
            c.features_ttl_s, c.max_entries, clock, "features"
        )
        self.predictions: TTLCache[PredictionKey, object] = TTLCache(
            c.predictions_ttl_s, c.max_entries, clock, "predictions"
        )

    def clear(self) -> None:
        for cache in (self.market, self.features, self.predictions):
            cache.clear()

    def stats(self) -> dict[str, dict[str, float | int | str]]:
        return {c.name: c.stats() for c in (self.market, self.features, self.predictions)}
