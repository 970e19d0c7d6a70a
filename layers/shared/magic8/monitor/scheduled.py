"""The scheduled monitoring run (what λ monitor does every 5 minutes): one watchlist sweep,
the live accuracy report over the configured windows, EMF metrics and a log line.

Everything outside comes in through MonitorDeps (ports); functions/monitor/deps.py wires
the real adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from magic8.domain.ports import AlertPublisher
from magic8.monitor.accuracy import ALL, GroupAccuracy, OutcomeStore, accuracy_report
from magic8.monitor.sweep import (
    DriftCheck,
    HeartbeatReader,
    PredictionService,
    SweepConfig,
    SweepResult,
    SweepStateStore,
    UpdatePusher,
    run_sweep,
)
from magic8.monitor.watchlist import WatchlistStore
from magic8.observability import get_logger, get_metrics

SERVICE = "monitor"
MetricsFactory = Callable[[], Any]


@dataclass
class MonitorDeps:
    watchlist: WatchlistStore
    service: PredictionService
    sweep_state: SweepStateStore
    publisher: AlertPublisher
    heartbeat: HeartbeatReader
    outcomes: OutcomeStore | None = None
    pusher: UpdatePusher | None = None
    drift: DriftCheck | None = None


def emit_metrics(
    result: SweepResult, accuracy_groups: Sequence[GroupAccuracy], metrics_factory: MetricsFactory
) -> None:
    metrics = metrics_factory()
    add = metrics.add_metric
    add(name="SweepSize", unit=MetricUnit.Count, value=result.entries)
    add(name="SweepSymbols", unit=MetricUnit.Count, value=len(result.symbols))
    add(name="SweepDuration", unit=MetricUnit.Milliseconds, value=round(result.duration_ms, 2))
    add(name="Crossings", unit=MetricUnit.Count, value=result.crossings)
    add(name="ConfidenceMoves", unit=MetricUnit.Count, value=result.moves)
    add(name="AlertsPublished", unit=MetricUnit.Count, value=len(result.alerts))
    add(name="SweepErrors", unit=MetricUnit.Count, value=len(result.errors))
    if result.drift is not None:
        add(name="DriftMaxPSI", unit=MetricUnit.NoUnit, value=round(result.drift.max_psi, 4))
        add(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drift.drifted))
    if result.market_data_fetches is not None:
        add(name="MarketDataReads", unit=MetricUnit.Count, value=result.market_data_fetches)
    g = result.gateway
    if g is not None:
        stale_now = g.stale and g.market_hours and g.error is None
        add(name="GatewayStale", unit=MetricUnit.Count, value=int(stale_now))
        if g.age_s is not None:
            add(name="GatewayHeartbeatAge", unit=MetricUnit.Seconds, value=round(g.age_s, 1))
    metrics.flush_metrics()
    for grp in accuracy_groups:
        # One EMF document per symbol x strategy x window (its own dimensions).
        m = metrics_factory()
        m.add_dimension(name="symbol", value=grp.symbol)
        m.add_dimension(name="strategy", value=grp.strategy)
        m.add_dimension(name="window", value=f"{grp.window_days}d")
        m.add_metric(name="LiveAccuracy", unit=MetricUnit.Percent, value=grp.accuracy * 100)
        m.add_metric(name="BrierScore", unit=MetricUnit.NoUnit, value=grp.brier)
        m.add_metric(name="CalibrationError", unit=MetricUnit.NoUnit, value=grp.ece)
        m.add_metric(name="Outcomes", unit=MetricUnit.Count, value=grp.n)
        m.flush_metrics()


def accuracy_groups(
    outcomes: OutcomeStore, now: datetime, windows: Sequence[int]
) -> list[GroupAccuracy]:
    """Per window: overall and per symbol x strategy (not per symbol alone: cost)."""
    report = accuracy_report(outcomes.list_since(now - timedelta(days=max(windows))), now, windows)
    return [g for g in report.groups if g.symbol != ALL or g.strategy == ALL]


def scheduled_sweep(
    now: datetime,
    deps: MonitorDeps,
    config: SweepConfig,
    accuracy_windows: Sequence[int],
    metrics_factory: MetricsFactory = lambda: get_metrics(SERVICE),
) -> dict[str, Any]:
    result = run_sweep(
        deps.watchlist,
        deps.service,
        deps.sweep_state,
        deps.publisher,
        deps.heartbeat,
        clock=lambda: now,
        settings=config,
        pusher=deps.pusher,
        drift=deps.drift,
    )
    groups: list[GroupAccuracy] = []
    if deps.outcomes is not None:
        try:
            groups = accuracy_groups(deps.outcomes, now, accuracy_windows)
        except Exception as exc:
            result.errors.append(f"accuracy: {exc}")
    emit_metrics(result, groups, metrics_factory)
    summary = result.summary()
    logged = {k: v for k, v in summary.items() if k != "updates"}  # counts, not 200 rows
    log = get_logger(SERVICE)
    if result.errors:
        log.error("sweep finished with errors", extra={"sweep": logged})
    else:
        log.info("sweep finished", extra={"sweep": logged})
    return summary
