"""Gateway metrics as CloudWatch embedded metric format (EMF) lines on stdout.

The ECS awslogs driver ships stdout to CloudWatch Logs, which extracts the metrics
(namespace `magic8`, dimension service=gateway). One line every `interval_s`:

  RecordsPerSecond, MboRecordsPerSecond   feed throughput since the last line
  MboAgeSeconds                           age of the last MBO record (only while the
                                          streaming window is open: no data -> alarm)
  MboAgeSeconds_<product>                 the same per product (NQ, Q1A, ...)
  WindowsEmitted, WindowsSent             pressure windows since the last line
  ProducerBacklog, ProducerOldestAgeSeconds  Kinesis records pending, age of the oldest
  Reconnects, Gaps, BackfilledRecords     since the last line
  StreamingSpendUsd, BackfillSpendUsd, StreamingBudgetUsd, BackfillBudgetUsd,
  BudgetExceeded (0/1), InStreamingWindow (0/1), IbConnected (0/1)

The alarms (infra/constructs/observability.py) use the names in METRIC_NAMES.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("magic8.gateway.metrics")

NAMESPACE = "magic8"
DIMENSIONS = {"service": "gateway"}
UNITS = {
    "RecordsPerSecond": "Count/Second",
    "MboRecordsPerSecond": "Count/Second",
    "MboAgeSeconds": "Seconds",
    "WindowsEmitted": "Count",
    "WindowsSent": "Count",
    "ProducerBacklog": "Count",
    "ProducerOldestAgeSeconds": "Seconds",
    "Reconnects": "Count",
    "Gaps": "Count",
    "BackfilledRecords": "Count",
    "StreamingSpendUsd": "None",
    "BackfillSpendUsd": "None",
    "StreamingBudgetUsd": "None",
    "BackfillBudgetUsd": "None",
    "BudgetExceeded": "Count",
    "InStreamingWindow": "Count",
    "IbConnected": "Count",
}
METRIC_NAMES = frozenset(UNITS)
# counters reported as the change since the previous line
_DELTAS = {
    "WindowsEmitted": "windows_emitted",
    "WindowsSent": "windows_sent",
    "Reconnects": "reconnects",
    "Gaps": "gaps",
    "BackfilledRecords": "backfilled_records",
}

Facts = Callable[[], dict[str, Any]]  # the gateway's status facts: {"ib": ..., "databento": ...}


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) and v == v:
        return float(v)
    return None


class GatewayMetrics:
    def __init__(
        self,
        facts: Facts,
        interval_s: float = 60.0,
        out: TextIO | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.facts, self.interval_s, self.out = facts, interval_s, out
        self._monotonic, self._wall = monotonic, wall  # injectable clocks (tests)
        self._prev: dict[str, float] = {}
        self._prev_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.lines = 0

    def values(self) -> dict[str, float]:
        """The metric values for one line (updates the delta baselines)."""
        facts = self.facts()
        ib, db = facts.get("ib") or {}, facts.get("databento") or {}
        now = self._monotonic()
        elapsed = None if self._prev_at is None else max(now - self._prev_at, 1e-9)
        self._prev_at = now
        out: dict[str, float] = {}

        seen = (db.get("records") or {}).get("seen") or {}
        total = float(sum(v for v in seen.values() if isinstance(v, int | float)))
        mbo = float(seen.get("MBOMsg", 0) or 0)
        for name, cur in (("RecordsPerSecond", total), ("MboRecordsPerSecond", mbo)):
            prev = self._prev.get(name)
            if elapsed is not None and prev is not None:
                out[name] = max(0.0, cur - prev) / elapsed
            self._prev[name] = cur
        for name, key in _DELTAS.items():
            cur_v = _num(db.get(key))
            if cur_v is None:
                continue
            prev = self._prev.get(name)
            out[name] = max(0.0, cur_v - prev) if prev is not None else 0.0
            self._prev[name] = cur_v

        window = db.get("window") or {}
        in_window = bool(window.get("open")) and db.get("state") not in (None, "disabled")
        out["InStreamingWindow"] = 1.0 if in_window else 0.0
        if in_window and db.get("mode", "live") == "live":
            age = _num(db.get("mbo_age_s"))
            # never an MBO record yet in the window: as old as the window is
            out["MboAgeSeconds"] = age if age is not None else float(self.interval_s)
            for product, p_age in (db.get("mbo_age_by_product") or {}).items():
                v = _num(p_age)
                if v is not None:
                    out[f"MboAgeSeconds_{product}"] = v
        for name, key in (
            ("ProducerBacklog", "producer_backlog"),
            ("ProducerOldestAgeSeconds", "producer_oldest_age_s"),
        ):
            v = _num(db.get(key))
            if v is not None:
                out[name] = v
        spend = db.get("spend") or {}
        if spend:
            for name, key in (
                ("StreamingSpendUsd", "streaming_usd"),
                ("BackfillSpendUsd", "backfill_usd"),
                ("StreamingBudgetUsd", "streaming_budget_usd"),
                ("BackfillBudgetUsd", "backfill_budget_usd"),
            ):
                v = _num(spend.get(key))
                if v is not None:
                    out[name] = v
            over = spend.get("streaming_over_budget") or spend.get("backfill_over_budget")
            out["BudgetExceeded"] = 1.0 if over else 0.0
        if ib.get("state") not in (None, "disabled"):
            out["IbConnected"] = 1.0 if ib.get("state") == "connected" else 0.0
        return out

    def line(self) -> str:
        values = self.values()
        metrics = [
            {"Name": name, "Unit": UNITS.get(name.split("_", 1)[0], "Seconds")}
            for name in sorted(values)
        ]
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._wall() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [sorted(DIMENSIONS)],
                        "Metrics": metrics,
                    }
                ],
            },
            **DIMENSIONS,
            **{k: round(v, 4) for k, v in values.items()},
        }
        return json.dumps(doc, separators=(",", ":"))

    def emit(self) -> None:
        try:
            text = self.line()
        except Exception as exc:  # metrics must never take the gateway down
            log.warning("metrics: %s", exc)
            return
        out = self.out or sys.stdout
        out.write(text + "\n")
        out.flush()
        self.lines += 1

    async def start(self) -> None:
        self.values()  # the baselines: the first line has rates
        self._task = asyncio.create_task(self._loop(), name="metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.emit()  # the last interval

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.emit()
