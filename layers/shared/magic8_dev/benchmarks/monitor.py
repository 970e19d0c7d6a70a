"""Benchmark: one monitoring sweep over 200 watched trades (acceptance: <= 1 s of compute).

The issue asks for "50 symbols x 4 strategies". magic8 serves six symbols (SPX, SPY, XSP,
NDX, QQQ, RUT) and 50 made-up tickers are not valid requests, so the sweep covers the
same number of trades, 200, spread over the 6 real symbols x 4 strategies with varied
strikes, premiums, predicted prices and actions. The result reports both numbers.

What runs: magic8.monitor.sweep.run_sweep with the real PredictionService, the real
trained XGBoost hierarchy from models/ and the real feature module; market snapshots
(synthetic 5-minute random-walk bars at realistic levels, labelled as such) come from an
in-memory repository that counts reads, and watchlist / state / alerts / history stay in
memory, so the timing is compute, not I/O. Sweeps measured:

- cold: first sweep of a fresh process (feature contexts built, baseline recorded);
- moved: every later sweep with new snapshots (the market moved: every feature row and
  prediction is recomputed; the realistic 5-minute case) - repeated, median and max;
- unchanged: the market did not move (the service's prediction cache answers).

Unless --quick, the same sweep is also run end to end through functions/monitor/handler.py
on the embedded moto server (DynamoDB watchlist + state + history, SNS), reported as
wall time with I/O (not the compute acceptance).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from magic8.domain.alerts import Alert
from magic8.domain.market import Bar, MarketSnapshot
from magic8.domain.trades import STRIKE_COUNT, Strategy, Symbol
from magic8.monitor.sweep import InMemorySweepStateStore, SweepConfig, run_sweep
from magic8.monitor.watchlist import InMemoryWatchlistStore, WatchlistEntry
from magic8.settings import DEFAULT_MODEL_DIR

N_ENTRIES = 200
BUDGET_S = 1.0
LEVELS = {
    "SPX": (5850.0, 5.0),
    "SPY": (585.0, 1.0),
    "XSP": (585.0, 1.0),
    "NDX": (20500.0, 25.0),
    "QQQ": (500.0, 1.0),
    "RUT": (2350.0, 5.0),
    "VIX": (16.0, 0.1),
}


class CountingMarket:
    """MarketDataRepository in memory that counts reads and symbols per read."""

    def __init__(self, snapshots: dict[str, MarketSnapshot]) -> None:
        self.snapshots = snapshots
        self.reads: list[list[str]] = []

    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        self.reads.append(list(symbols))
        return {s: self.snapshots[s] for s in symbols if s in self.snapshots}

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        self.snapshots[snapshot.symbol] = snapshot


class MemoryHistory:
    def __init__(self) -> None:
        self.points = 0

    def record(self, points: Sequence[Any]) -> int:
        self.points += len(points)
        return len(points)

    def query(self, series: str, start_ms: int, end_ms: int) -> list[Any]:
        return []

    def trends(self, hours: float, now_ms: int, series: Sequence[str] | None = None) -> list[Any]:
        return []


class MemoryPublisher:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> str | None:
        self.alerts.append(alert)
        return str(len(self.alerts))


class FreshHeartbeat:
    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def last_beat(self) -> datetime | None:
        return self.clock() - timedelta(seconds=15)


class SyntheticMarket:
    """5-minute random-walk bars at realistic levels for the 6 symbols + VIX; each
    `step()` closes one more bar (the market moved 5 minutes), like the gateway would."""

    def __init__(self, now: datetime, seed: int = 21, n_bars: int = 80) -> None:
        self.rng = np.random.default_rng(seed)
        self.now = now
        end = int(now.timestamp()) // 300 * 300
        self.bars: dict[str, list[Bar]] = {}
        for sym, (level, _step) in LEVELS.items():
            self.bars[sym] = []
            price = level
            for i in range(n_bars):
                price = self._append(sym, end - (n_bars - i) * 300, price)

    def _append(self, sym: str, ts: int, prev: float) -> float:
        vol = 0.01 if sym == "VIX" else 0.0012
        close = prev * float(np.exp(self.rng.normal(0, vol)))
        hi, lo = max(prev, close) * (1 + vol / 3), min(prev, close) * (1 - vol / 3)
        self.bars[sym].append(Bar(ts=ts, open=prev, high=hi, low=lo, close=close, volume=1e3))
        return close

    def step(self, now: datetime) -> None:
        self.now = now
        for sym, bars in self.bars.items():
            self._append(sym, bars[-1].ts + 300, bars[-1].close)
            del bars[0]

    def snapshots(self) -> dict[str, MarketSnapshot]:
        return {
            sym: MarketSnapshot(
                symbol=sym,
                last=bars[-1].close,
                bars=tuple(bars),
                updated_at=self.now,
                source="replay",
            )
            for sym, bars in self.bars.items()
        }


def entries(now: datetime, n: int = N_ENTRIES, seed: int = 8) -> list[WatchlistEntry]:
    """n trades over the 6 symbols x 4 strategies, strikes/premiums/actions varied."""
    rng = np.random.default_rng(seed)
    combos = [(sym, strat) for sym in Symbol for strat in Strategy]
    out = []
    for i in range(n):
        sym, strat = combos[i % len(combos)]
        level, step = LEVELS[sym.value]
        center = round(level * (1 + rng.normal(0, 0.003)) / step) * step
        width = step * int(rng.integers(2, 12))
        k = STRIKE_COUNT[strat]
        if k == 2:
            strikes = [center, center + width]
        elif k == 3:
            strikes = [center - width, center, center + width]
        else:
            strikes = [center - 2 * width, center - width, center + width, center + 2 * width]
        out.append(
            WatchlistEntry.model_validate(
                {
                    "symbol": sym.value,
                    "strategy": strat.value,
                    "strikes": strikes,
                    "premium": round(float(width * rng.uniform(0.1, 0.6)), 2),
                    "predicted_price": float(center + step * int(rng.integers(-3, 4))),
                    "action": "BUY" if rng.random() < 0.5 else "SELL",
                    "created_at": now,
                    "expiry": now + timedelta(hours=6),
                }
            )
        )
    return out


def _sweep(rig: dict[str, Any]) -> dict[str, Any]:
    rig["service"].caches.market.clear()  # 5 minutes passed: the 20 s market cache expired
    reads_before = len(rig["market"].reads)
    cpu0 = time.process_time()
    res = run_sweep(
        rig["watch"],
        rig["service"],
        rig["state"],
        rig["pub"],
        rig["hb"],
        rig["clock"],
        SweepConfig(),
        drift=rig["drift"],
    )
    cpu = time.process_time() - cpu0
    reads = rig["market"].reads[reads_before:]
    assert not res.errors, res.errors
    rig["last_drift"] = res.drift
    return {
        "wall_ms": round(res.duration_ms, 2),
        "cpu_ms": round(cpu * 1000, 2),
        "entries": res.entries,
        "market_reads": len(reads),
        "symbols_read": sorted({s for r in reads for s in r}),
        "alerts": len(res.alerts),
        "drift_max_psi": None if res.drift is None else round(res.drift.max_psi, 3),
    }


def compute_bench(quick: bool) -> dict[str, Any]:
    from magic8.adapters.xgb_native import load_hierarchy
    from magic8.domain.cache import CacheConfig
    from magic8.domain.service import PredictionService, ServiceConfig

    model = load_hierarchy(DEFAULT_MODEL_DIR)
    # a Tuesday 10:30 US/Eastern, so the market-hours steps (drift, heartbeat) run
    now = datetime(2026, 11, 17, 15, 30, tzinfo=UTC)
    clock_now = [now]
    synthetic = SyntheticMarket(now)
    repo = CountingMarket(synthetic.snapshots())
    history = MemoryHistory()
    service = PredictionService(
        market_repo=repo,
        model=model,
        history_repo=history,
        clock=lambda: clock_now[0],
        config=ServiceConfig(caches=CacheConfig(market_ttl_s=60.0)),
    )
    from functions.monitor.deps import build_drift_check
    from functions.monitor.settings import MonitorSettings

    drift = build_drift_check(service, MonitorSettings())
    watch = InMemoryWatchlistStore(entries(now))
    publisher = MemoryPublisher()
    rig: dict[str, Any] = {
        "watch": watch,
        "service": service,
        "market": repo,
        "state": InMemorySweepStateStore(),
        "pub": publisher,
        "clock": lambda: clock_now[0],
        "drift": drift,
    }
    rig["hb"] = FreshHeartbeat(rig["clock"])
    cold = _sweep(rig)
    moved = []
    for _ in range(3 if quick else 10):
        clock_now[0] += timedelta(minutes=5)
        synthetic.step(clock_now[0])
        for snap in synthetic.snapshots().values():
            repo.put_snapshot(snap)
        moved.append(_sweep(rig))
    unchanged = _sweep(rig)
    last_drift = rig["last_drift"]
    moved_cpu = [m["cpu_ms"] for m in moved]
    moved_wall = [m["wall_ms"] for m in moved]
    worst = max([cold["cpu_ms"], *moved_cpu]) / 1000.0
    worst_wall = max([cold["wall_ms"], *moved_wall]) / 1000.0
    distinct = len({e.symbol for e in watch.list_active(clock_now[0])})
    return {
        "model_version": model.version,
        "entries": cold["entries"],
        "distinct_symbols": distinct,
        "strategies": len(Strategy),
        "note": (
            "200 trades over the 6 real symbols x 4 strategies (the issue's '50 symbols x 4"
            " strategies' = 200 trades; magic8 has 6 valid symbols, 50 invented tickers are"
            " not valid requests). Market bars are synthetic 5-minute random walks, one new"
            " bar per sweep; model, features and service are real; drift check included."
        ),
        "cold": cold,
        "moved_cpu_ms_median": round(statistics.median(moved_cpu), 2),
        "moved_cpu_ms_max": round(max(moved_cpu), 2),
        "moved_wall_ms_median": round(statistics.median(moved_wall), 2),
        "moved_wall_ms_max": round(max(moved_wall), 2),
        "moved_sweeps": len(moved),
        "unchanged": unchanged,
        "market_reads_per_sweep": sorted({m["market_reads"] for m in [cold, *moved]}),
        "symbols_per_read": len(cold["symbols_read"]),
        "one_read_per_symbol": all(m["market_reads"] <= 1 for m in [cold, *moved, unchanged]),
        "history_points_written": history.points,
        "alerts_by_kind": {
            k: sum(1 for a in publisher.alerts if a.kind == k)
            for k in sorted({a.kind for a in publisher.alerts})
        },
        "drift_check": drift is not None,
        "budget_s": BUDGET_S,
        "worst_compute_s": round(worst, 4),
        "worst_wall_s": round(worst_wall, 4),
        "within_budget": max(worst, worst_wall) <= BUDGET_S,
        "drift_top": []
        if last_drift is None
        else [
            {"feature": f.feature, "psi": round(f.psi, 3)}
            for f in sorted(last_drift.features, key=lambda f: -f.psi)[:5]
        ],
    }


def moto_bench() -> dict[str, Any]:
    """The same 200 trades through functions/monitor/handler.py on a moto server."""
    import os

    from functions.monitor.deps import build_deps
    from functions.monitor.handler import sweep
    from functions.monitor.settings import MonitorSettings
    from magic8.adapters.aws import reset_clients
    from magic8.adapters.market_dynamo import DynamoMarketRepository
    from magic8.adapters.watchlist_dynamo import DynamoWatchlistStore
    from magic8.settings import AwsSettings
    from magic8_dev.local.monitor_timer import scheduled_event
    from magic8_dev.local.moto_server import EmbeddedAws
    from magic8_dev.local.provision import provision

    saved = dict(os.environ)
    aws = EmbeddedAws().start()
    try:
        reset_clients()
        res = provision(AwsSettings())
        os.environ.update(res.env())
        settings = MonitorSettings(ws_endpoint="")
        now = datetime.now(UTC).replace(microsecond=0)
        repo = DynamoMarketRepository(settings.market_table)
        for snap in SyntheticMarket(now, seed=3).snapshots().values():
            repo.put_snapshot(snap)
        store = DynamoWatchlistStore(settings.state_table)
        for e in entries(now):
            store.add(e)
        deps = build_deps(settings)
        runs = []
        for i in range(3):
            t0 = time.perf_counter()
            summary = sweep(scheduled_event(now + timedelta(minutes=5 * i)), deps, settings)
            runs.append(
                {
                    "wall_ms": round((time.perf_counter() - t0) * 1000, 1),
                    "entries": summary["entries"],
                    "market_data_fetches": summary["market_data_fetches"],
                    "errors": summary["errors"],
                }
            )
        return {"sweeps": runs}
    finally:
        aws.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()


def run(results_dir: Path, quick: bool = False) -> dict[str, Any]:
    if not (DEFAULT_MODEL_DIR / "manifest.json").exists():
        return {"error": f"no trained model in {DEFAULT_MODEL_DIR} (run `magic8 train`)"}
    out = compute_bench(quick)
    if not quick:
        try:
            out["end_to_end_moto"] = moto_bench()
        except Exception as exc:  # reported, never hidden
            out["end_to_end_moto"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
