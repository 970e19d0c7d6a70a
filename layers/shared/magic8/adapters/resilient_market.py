"""Market-data reads behind a circuit breaker, with the last good snapshot as fallback.

When DynamoDB throttles or fails, a prediction should still answer: the wrapper returns
the last snapshot it read successfully for each symbol, re-labelled data_source "stale"
(its updated_at is kept, so data_age_s tells how old it is). While the circuit is open
the store is not called at all, which spares a struggling table and keeps latency flat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from magic8.adapters.circuit import CircuitBreaker, CircuitOpenError
from magic8.domain.market import MarketSnapshot
from magic8.domain.ports import MarketDataRepository

log = logging.getLogger(__name__)


class ResilientMarketRepository:
    """Implements MarketDataRepository around another one."""

    def __init__(self, inner: MarketDataRepository, breaker: CircuitBreaker | None = None) -> None:
        self.inner = inner
        self.breaker = breaker or CircuitBreaker("market-data", failure_threshold=3)
        self._last_good: dict[str, MarketSnapshot] = {}
        self._lock = threading.Lock()
        self.fallbacks = 0

    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        try:
            fresh = self.breaker.call(lambda: self.inner.get_snapshots(symbols))
        except Exception as exc:
            with self._lock:
                stale = {
                    s: self._last_good[s].model_copy(update={"source": "stale"})
                    for s in symbols
                    if s in self._last_good
                }
                self.fallbacks += 1
            if not stale:
                raise
            reason = "circuit open" if isinstance(exc, CircuitOpenError) else type(exc).__name__
            log.warning("market data read failed (%s); serving %d stale", reason, len(stale))
            return stale
        with self._lock:
            self._last_good.update(fresh)
        return fresh

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        self.inner.put_snapshot(snapshot, ttl_seconds)
