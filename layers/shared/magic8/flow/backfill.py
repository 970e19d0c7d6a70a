"""Gap → historical backfill within a daily cost budget.

A gap (the live client's reconnect callback `(gap_start, gap_end)`, or a sequence jump) is
filled from a historical source: `databento.Historical` in production, a DBN file in tests
and replay. Before fetching, the cost is estimated and charged against the day's budget in
the state table (pk "budget#databento", sk "YYYY-MM-DD", atomic conditional add); a gap
that would exceed the budget is skipped and reported, never fetched. The records come back
as MBO arrays; the session merges them with `dedupe=True` so nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger("magic8.backfill")

BUDGET_PK = "budget#databento"
NS = 1_000_000_000


class HistoricalSource(Protocol):
    def estimate_cost(self, start_ns: int, end_ns: int) -> float:
        """USD for MBO records in [start_ns, end_ns]."""
        ...

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[np.ndarray]:
        """MBO record arrays with ts_event in [start_ns, end_ns]."""
        ...


class BudgetLedger(Protocol):
    def try_spend(self, day: str, amount: float, limit: float) -> bool:
        """Atomically add `amount` to the day's spend if it stays within `limit`."""
        ...

    def used(self, day: str) -> float: ...


class InMemoryBudgetLedger:
    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_spend(self, day: str, amount: float, limit: float) -> bool:
        with self._lock:
            cur = self._spent.get(day, 0.0)
            if cur + amount > limit + 1e-12:
                return False
            self._spent[day] = cur + amount
            return True

    def used(self, day: str) -> float:
        return self._spent.get(day, 0.0)


class DatabentoHistoricalSource:
    """databento.Historical: cost from metadata.get_cost, records from timeseries.get_range."""

    def __init__(
        self,
        client: Any,
        dataset: str = "GLBX.MDP3",
        symbols: Sequence[str] = ("NQ.OPT",),
        stype_in: str = "parent",
        chunk_records: int = 1 << 16,
    ) -> None:
        self.client = client
        self.dataset = dataset
        self.symbols = list(symbols)
        self.stype_in = stype_in
        self.chunk_records = chunk_records

    def _range(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        """The MBO query for [start_ns, end_ns] (Databento's end is exclusive)."""
        return {
            "dataset": self.dataset,
            "start": start_ns,
            "end": end_ns + 1,
            "symbols": self.symbols,
            "schema": "mbo",
            "stype_in": self.stype_in,
        }

    def estimate_cost(self, start_ns: int, end_ns: int) -> float:
        return float(self.client.metadata.get_cost(**self._range(start_ns, end_ns)))

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[np.ndarray]:
        store = self.client.timeseries.get_range(**self._range(start_ns, end_ns))
        yield from store.to_ndarray(count=self.chunk_records)


class DbnFileHistoricalSource:
    """DBN files standing in for the historical API (tests, replay demos)."""

    def __init__(self, paths: Sequence[str | Path], usd_per_million_records: float = 1.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.usd_per_million_records = usd_per_million_records
        self._arrays: list[np.ndarray] | None = None

    def _load(self) -> list[np.ndarray]:
        if self._arrays is None:
            import databento as db

            out = []
            for p in self.paths:
                store = db.DBNStore.from_file(p)
                if str(store.schema) == "mbo":
                    out.append(store.to_ndarray())
            self._arrays = out
        return self._arrays

    def _select(self, start_ns: int, end_ns: int) -> Iterator[np.ndarray]:
        for a in self._load():
            ts = a["ts_event"]
            sel = a[(ts >= np.uint64(start_ns)) & (ts <= np.uint64(end_ns))]
            if len(sel):
                yield sel

    def estimate_cost(self, start_ns: int, end_ns: int) -> float:
        n = sum(len(a) for a in self._select(start_ns, end_ns))
        return n / 1e6 * self.usd_per_million_records

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[np.ndarray]:
        yield from self._select(start_ns, end_ns)


@dataclass
class BackfillResult:
    start_ns: int
    end_ns: int
    status: Literal["done", "skipped_budget", "failed", "empty"]
    cost_usd: float = 0.0
    records: int = 0
    error: str = ""
    arrays: list[np.ndarray] = field(default_factory=list, repr=False)


def _utc_day(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).date().isoformat()


class Backfiller:
    def __init__(
        self,
        source: HistoricalSource,
        ledger: BudgetLedger | None = None,
        daily_budget_usd: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.ledger: BudgetLedger = ledger or InMemoryBudgetLedger()
        self.daily_budget_usd = daily_budget_usd
        self.clock = clock
        self.history: list[BackfillResult] = []

    def budget_used(self) -> float:
        try:
            return float(self.ledger.used(_utc_day(self.clock)))
        except Exception:  # the heartbeat must not fail on a state-table hiccup
            return float("nan")

    def backfill(self, start_ns: int, end_ns: int) -> BackfillResult:
        """Fetch [start_ns, end_ns] if the day's budget allows; never raises."""
        try:
            cost = float(self.source.estimate_cost(start_ns, end_ns))
            day = _utc_day(self.clock)
            if not self.ledger.try_spend(day, cost, self.daily_budget_usd):
                log.warning(
                    "backfill skipped: gap %s..%s costs $%.4f, over the $%.2f daily budget",
                    start_ns,
                    end_ns,
                    cost,
                    self.daily_budget_usd,
                )
                result = BackfillResult(start_ns, end_ns, "skipped_budget", cost_usd=cost)
            else:
                arrays = list(self.source.fetch(start_ns, end_ns))
                n = sum(len(a) for a in arrays)
                result = BackfillResult(
                    start_ns, end_ns, "done" if n else "empty", cost, n, arrays=arrays
                )
        except Exception as exc:
            log.exception("backfill failed for gap %s..%s", start_ns, end_ns)
            result = BackfillResult(start_ns, end_ns, "failed", error=str(exc))
        self.history.append(BackfillResult(**{**result.__dict__, "arrays": []}))
        del self.history[:-100]
        return result
