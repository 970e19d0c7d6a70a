"""Cache warming: predict ahead what clients will ask for, so their answers are cached.

Two sources of trades:

- a configured list (settings: MAGIC8_WARM_TRADES, trades in the /predict body shape,
  and MAGIC8_WARM_SYMBOLS, symbols whose market snapshot is read ahead);
- the most requested trades: the service counts requests per trade identity (the trade's
  cache key: every field an answer depends on) in a bounded in-memory table
  (`RequestCounter`), and a warm-up re-predicts the top N.

A warm-up is one predict_batch call (one market read for every symbol, one feature build,
one model call) that is not itself counted as requests; the answers land in the prediction
cache keyed by the current market snapshot, so a client asking for the same trade while
that snapshot is current gets a cache hit (its answer decays with its age: see
magic8.domain.decay).

Where it runs (functions/predict): at the service's build (Lambda's init phase) and on
the predict function's 5-minute warm event (EventBridge, the monitor's cadence; the
caches live in the predict function's memory, so the warm-up must run there, not in the
monitor's process). Pure domain code: it knows the service by a small protocol.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from magic8.domain.trades import TradeRequest

DEFAULT_TRACKED = 1024
DEFAULT_TOP_N = 20
# the event the predict function's warm schedule sends (infra/constructs/prediction_api.py)
WARM_EVENT: dict[str, str] = {"magic8": "warm-cache"}


def is_warm_event(event: object) -> bool:
    return isinstance(event, dict) and event.get("magic8") == WARM_EVENT["magic8"]


class RequestCounter:
    """Requests per trade identity, bounded: when `max_entries` identities are tracked
    and a new one arrives, only the most requested half is kept (amortised O(1) per
    request; a one-off never pushes out a regular)."""

    __slots__ = ("_counts", "max_entries")

    def __init__(self, max_entries: int = DEFAULT_TRACKED) -> None:
        self.max_entries = max(2, int(max_entries))
        # identity -> [count, the trade as last requested]
        self._counts: dict[Hashable, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def count(self, key: Hashable, trade: TradeRequest) -> None:
        entry = self._counts.get(key)
        if entry is not None:
            entry[0] += 1
            return
        if len(self._counts) >= self.max_entries:
            self._prune()
        self._counts[key] = [1, trade]

    def _prune(self) -> None:
        keep = sorted(self._counts.items(), key=lambda kv: kv[1][0], reverse=True)
        self._counts = dict(keep[: self.max_entries // 2])

    def top(self, n: int) -> list[tuple[TradeRequest, int]]:
        """The n most requested trades with their counts, most requested first (ties: the
        one tracked first)."""
        if n <= 0:
            return []
        ranked = sorted(self._counts.values(), key=lambda e: e[0], reverse=True)
        return [(e[1], e[0]) for e in ranked[:n]]


class WarmableService(Protocol):
    """What warming needs of magic8.domain.service.PredictionService."""

    requests: RequestCounter | None

    def predict_batch(
        self,
        requests: Sequence[TradeRequest],
        share_market_data: bool = True,
        count_requests: bool = True,
    ) -> tuple[list[Any], dict[str, Any]]: ...

    def prefetch_market(self, symbols: Sequence[str]) -> int: ...


@dataclass
class WarmResult:
    trades: int = 0  # trades predicted (configured + most requested, de-duplicated)
    configured: int = 0
    most_requested: int = 0
    already_cached: int = 0  # of `trades`, answers that were cached already
    symbols: int = 0  # market snapshots read ahead (configured + the trades' symbols)
    elapsed_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_ms": round(self.elapsed_ms, 3)}


class CacheWarmer:
    def __init__(
        self,
        service: WarmableService,
        trades: Sequence[TradeRequest] = (),
        symbols: Sequence[str] = (),
        top_n: int = DEFAULT_TOP_N,
        max_batch: int = 100,
    ) -> None:
        self.service = service
        self.trades = list(trades)
        self.symbols = list(symbols)
        self.top_n = top_n
        self.max_batch = max_batch
        self.last: WarmResult | None = None
        self.runs = 0

    def targets(self) -> tuple[list[TradeRequest], int, int]:
        """(trades to predict, how many configured, how many most requested): the
        configured ones first, then the most requested not already among them, at most
        max_batch in all (one predict_batch)."""
        seen: set[Hashable] = set()
        out: list[TradeRequest] = []
        for trade in self.trades:
            key = trade.cache_key()
            if key not in seen and len(out) < self.max_batch:
                seen.add(key)
                out.append(trade)
        configured = len(out)
        counter = getattr(self.service, "requests", None)
        for trade, _n in counter.top(self.top_n) if counter is not None else []:
            key = trade.cache_key()
            if key not in seen and len(out) < self.max_batch:
                seen.add(key)
                out.append(trade)
        return out, configured, len(out) - configured

    def warm(self) -> WarmResult:
        """One warm-up; never raises (a failed warm-up is reported, not fatal)."""
        started = time.perf_counter()
        result = WarmResult()
        try:
            trades, result.configured, result.most_requested = self.targets()
            # one market read for the configured symbols and the trades' symbols
            symbols = list(dict.fromkeys([*self.symbols, *(t.symbol.value for t in trades)]))
            if symbols:
                result.symbols = self.service.prefetch_market(symbols)
            if trades:
                _, metrics = self.service.predict_batch(trades, True, count_requests=False)
                result.trades = len(trades)
                result.already_cached = int(metrics.get("prediction_hits", 0))
                result.errors.extend(metrics.get("errors", []))
        except Exception as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
        result.elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.last = result
        self.runs += 1
        return result

    def status(self) -> dict[str, Any]:
        counter = getattr(self.service, "requests", None)
        return {
            "configured_trades": len(self.trades),
            "configured_symbols": list(self.symbols),
            "top_n": self.top_n,
            "tracked_trades": len(counter) if counter is not None else 0,
            "runs": self.runs,
            "last": self.last.to_dict() if self.last else None,
        }
