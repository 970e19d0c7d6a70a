"""The day's Databento spend in one cost ledger: live streaming and gap backfill.

- Streaming: estimated from the records received (count per record type x its DBN size)
  and a configurable price per GB (`usd_per_gb`; set it from your Databento plan). The
  estimate is charged to the state table's ledger (sk "stream#YYYY-MM-DD") every
  `persist_every_s`, so a restarted gateway continues the day's total.
- Backfill: the Backfiller charges each gap before fetching it (sk "YYYY-MM-DD"), refusing
  what would exceed its budget.

Budgets are per UTC day. At the streaming budget the gateway says so (log, /health,
metrics -> alarm) and stops the optional part first: no more backfill that day;
`SpendBudget(stop_streaming=True)` also stops the stream until the next UTC day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from magic8.flow.backfill import BudgetLedger, InMemoryBudgetLedger

log = logging.getLogger("magic8.databento.spend")

STREAM_PREFIX = "stream#"
GB = 1_000_000_000
# DBN record sizes (bytes) by databento record type; anything else counts as 64 bytes
RECORD_BYTES: Mapping[str, int] = {
    "MBOMsg": 56,
    "InstrumentDefMsg": 520,
    "SymbolMappingMsg": 176,
    "SystemMsg": 320,
    "ErrorMsg": 320,
    "OHLCVMsg": 56,
    "TradeMsg": 48,
}
DEFAULT_RECORD_BYTES = 64
NO_LIMIT = 1e9  # streamed data is already received: its charge is never refused


def stream_bytes(counts: Mapping[str, int]) -> int:
    return sum(n * RECORD_BYTES.get(name, DEFAULT_RECORD_BYTES) for name, n in counts.items())


@dataclass(frozen=True)
class SpendBudget:
    """Daily Databento budgets (USD) and the price the streaming estimate uses."""

    streaming_usd: float = 25.0
    backfill_usd: float = 20.0
    usd_per_gb: float = 5.0
    # at the streaming budget: stop the live stream too (else only say so and alert)
    stop_streaming: bool = False
    persist_every_s: float = 60.0


class SpendTracker:
    def __init__(
        self,
        ledger: BudgetLedger | None = None,
        budget: SpendBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger: BudgetLedger = ledger or InMemoryBudgetLedger()
        self.budget = budget or SpendBudget()
        self.clock = clock
        self._lock = threading.Lock()
        self._day = ""
        self._day_base_usd = 0.0  # the ledger's total for the day when this process began it
        self._bytes_at_day_start = 0
        self._charged_usd = 0.0  # this process's streaming charge for the day so far
        self._last_bytes = 0
        self._last_persist = 0.0
        self._announced: set[str] = set()
        self.persist_errors = 0
        self._backfill_cache: tuple[str, float, float] | None = None

    def day(self) -> str:
        return self.clock().astimezone(UTC).date().isoformat()

    # -- streaming ---------------------------------------------------------------------

    def observe(self, counts: Mapping[str, int], force: bool = False) -> None:
        """Cumulative records received by type; charges the new bytes (owner: pump thread)."""
        total = stream_bytes(counts)
        day = self.day()
        with self._lock:
            if day != self._day:  # a new UTC day: start from the ledger's total
                self._persist_locked(force=True)
                self._day = day
                self._bytes_at_day_start = self._last_bytes
                self._charged_usd = 0.0
                self._announced.clear()
                try:
                    self._day_base_usd = float(self.ledger.used(STREAM_PREFIX + day))
                except Exception as exc:
                    self.persist_errors += 1
                    log.warning("spend: could not read the day's streaming total: %s", exc)
                    self._day_base_usd = 0.0
            self._last_bytes = total
            persisted = self._persist_locked(force=force)
        if persisted:
            self._announce()

    def _unpersisted_usd(self) -> float:
        day_bytes = max(0, self._last_bytes - self._bytes_at_day_start)
        return day_bytes / GB * self.budget.usd_per_gb - self._charged_usd

    def _persist_locked(self, force: bool) -> bool:
        """Charge the unpersisted delta now and then; True when it was time to."""
        if not self._day:
            return False
        now = time.monotonic()
        if not force and now - self._last_persist < self.budget.persist_every_s:
            return False
        amount = self._unpersisted_usd()
        self._last_persist = now
        if amount <= 0:
            return True
        try:
            self.ledger.try_spend(STREAM_PREFIX + self._day, round(amount, 6), NO_LIMIT)
        except Exception as exc:  # the next persist retries the same delta
            self.persist_errors += 1
            log.warning("spend: streaming charge not recorded yet: %s", exc)
            return True
        self._charged_usd += round(amount, 6)
        return True

    def streaming_usd(self) -> float:
        with self._lock:
            return self._day_base_usd + self._charged_usd + max(0.0, self._unpersisted_usd())

    # -- backfill ----------------------------------------------------------------------

    def backfill_usd(self) -> float:
        """The day's backfill charge (read from the ledger at most every 10 s)."""
        now = time.monotonic()
        day = self.day()
        cached = self._backfill_cache
        if cached is not None and cached[0] == day and now - cached[1] < 10.0:
            return cached[2]
        try:
            used = float(self.ledger.used(day))
        except Exception:
            return cached[2] if cached is not None and cached[0] == day else float("nan")
        self._backfill_cache = (day, now, used)
        return used

    # -- budgets -----------------------------------------------------------------------

    @property
    def streaming_over_budget(self) -> bool:
        return self.streaming_usd() >= self.budget.streaming_usd

    def backfill_allowed(self) -> bool:
        """Backfill is the optional part: none once the streaming budget is reached."""
        return not self.streaming_over_budget

    def streaming_allowed(self) -> bool:
        return not (self.budget.stop_streaming and self.streaming_over_budget)

    def _announce(self) -> None:
        for kind, over in (
            ("streaming", self.streaming_over_budget),
            ("backfill", self.backfill_usd() >= self.budget.backfill_usd),
        ):
            if over and kind not in self._announced:
                self._announced.add(kind)
                log.error(
                    "databento %s budget reached for %s: $%.2f of $%.2f%s",
                    kind,
                    self.day(),
                    self.streaming_usd() if kind == "streaming" else self.backfill_usd(),
                    self.budget.streaming_usd if kind == "streaming" else self.budget.backfill_usd,
                    "; backfill stopped for the day"
                    + ("; streaming stopped" if self.budget.stop_streaming else "")
                    if kind == "streaming"
                    else "; further gaps are skipped",
                )

    def facts(self) -> dict[str, Any]:
        streaming, backfill = self.streaming_usd(), self.backfill_usd()
        backfill = backfill if backfill == backfill else 0.0
        return {
            "day": self.day(),
            "streaming_usd": round(streaming, 4),
            "streaming_budget_usd": self.budget.streaming_usd,
            "backfill_usd": round(backfill, 4),
            "backfill_budget_usd": self.budget.backfill_usd,
            "total_usd": round(streaming + backfill, 4),
            "usd_per_gb": self.budget.usd_per_gb,
            "streaming_over_budget": streaming >= self.budget.streaming_usd,
            "backfill_over_budget": backfill >= self.budget.backfill_usd,
            "backfill_stopped": streaming >= self.budget.streaming_usd,
            "streaming_stopped": not self.streaming_allowed(),
        }
