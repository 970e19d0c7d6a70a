"""Local market seeder: real bars as snapshots, so the API has data from the first request.

On start it writes one snapshot per symbol + VIX (magic8_dev.ml.seed, data_source "seed",
latest bar ending now). While running it refreshes every `refresh_s` seconds the symbols
whose stored snapshot is missing, expired or itself a seed, so seeded data keeps looking
live but never overwrites what the gateway (or its replay) wrote.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from magic8.domain.market import MarketSnapshot
from magic8_dev.local.context import LocalContext

REFRESH_S = 300.0
DEMO_REFRESH_S = 60.0


class SeedMarketComponent:
    name = "market"

    def __init__(self, refresh_s: float | None = None) -> None:
        self._refresh_s = refresh_s
        self._seeded: dict[str, datetime] = {}
        self._skipped: list[str] = []
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._table = ""

    def start(self, ctx: LocalContext) -> None:
        from magic8.adapters.market_dynamo import DynamoMarketRepository

        self._table = ctx.resources.settings.market_table
        self._repo = DynamoMarketRepository(self._table)
        self._refresh()
        interval = self._refresh_s or (DEMO_REFRESH_S if ctx.demo else REFRESH_S)
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="seed-market", daemon=True
        )
        self._thread.start()

    def _refresh(self) -> None:
        from magic8_dev.ml.seed import (
            SEED_SYMBOLS,
            SEED_TTL_SECONDS,
            VIX_SYMBOL,
            build_seed_snapshots,
        )

        symbols = [*SEED_SYMBOLS, VIX_SYMBOL]
        current = self._repo.get_snapshots(symbols)
        writable = {s for s in symbols if s not in current or current[s].source == "seed"}
        self._skipped = sorted(set(symbols) - writable)
        if not writable:
            return
        snaps: list[MarketSnapshot] = build_seed_snapshots()
        for snap in snaps:
            if snap.symbol in writable:
                self._repo.put_snapshot(snap, ttl_seconds=SEED_TTL_SECONDS)
                self._seeded[snap.symbol] = snap.updated_at

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._refresh()
                self._error = None
            except Exception as exc:  # keep the local stack up; report in status()
                self._error = f"{type(exc).__name__}: {exc}"

    def status(self) -> str:
        if not self._seeded:
            return "no snapshots seeded yet" + (f" ({self._error})" if self._error else "")
        now = datetime.now(UTC)
        ages = {s: (now - t).total_seconds() for s, t in self._seeded.items()}
        line = (
            f"{len(ages)} snapshots seeded into {self._table} ({' '.join(sorted(ages))}),"
            f" ages {min(ages.values()):.0f}-{max(ages.values()):.0f} s, source=seed; RUT not"
            " seeded (no source)"
        )
        if self._skipped:
            line += f"; left to gateway: {' '.join(self._skipped)}"
        if self._error:
            line += f"; last refresh failed: {self._error}"
        return line

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
