"""Rows of the resilience table: one per scenario, written as JSON lines by the tests."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

ROWS_ENV = "MAGIC8_RESILIENCE_ROWS"
BUDGET_ENV = "MAGIC8_RESILIENCE_BUDGET"  # "quick" (default, CI) or "full"

COLUMNS = (
    "scenario",
    "injected",
    "survived",
    "records_in",
    "records_out",
    "alerts_expected",
    "alerts_sent",
    "nothing_lost",
)

_lock = threading.Lock()


@dataclass(frozen=True)
class ResilienceRow:
    scenario: str
    injected: int  # faults injected (errors, disconnects, poison records, fuzz cases)
    survived: bool  # the component kept serving / recovered every time
    records_in: int
    records_out: int
    alerts_expected: int | None = None
    alerts_sent: int | None = None
    note: str = ""

    @property
    def nothing_lost(self) -> bool:
        alerts_ok = self.alerts_expected is None or self.alerts_expected == self.alerts_sent
        return self.survived and self.records_in == self.records_out and alerts_ok


def budget() -> str:
    return os.environ.get(BUDGET_ENV, "quick")


def record(row: ResilienceRow) -> ResilienceRow:
    """Append the row to $MAGIC8_RESILIENCE_ROWS when set (the `magic8 resilience` run)."""
    path = os.environ.get(ROWS_ENV)
    if path:
        data = asdict(row) | {"nothing_lost": row.nothing_lost}
        with _lock, open(path, "a") as f:
            f.write(json.dumps(data) + "\n")
    return row


def read_rows(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_table(rows: list[dict[str, object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "NO"
        return str(v)

    body = [[cell(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(COLUMNS)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep]
    out += ["  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(out)
