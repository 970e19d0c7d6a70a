"""λ monitor: EventBridge rate(5 minutes) -> one watchlist sweep -> SNS alerts, EMF metrics.

Thin: parse the scheduled event (its `time` is the sweep's clock), call
magic8.monitor.sweep.run_sweep with the real adapters, emit metrics, return a summary.
Dependencies are built on the first invocation and reused while the container is warm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from functions.monitor.settings import MonitorSettings, get_settings
from magic8.monitor.accuracy import ALL, OutcomeStore, accuracy_report
from magic8.monitor.drift import DriftMonitor, parse_manifest, service_feature_rows
from magic8.monitor.sweep import (
    DriftCheck,
    HeartbeatReader,
    PredictionService,
    SweepResult,
    SweepStateStore,
    UpdatePusher,
    run_sweep,
)
from magic8.monitor.watchlist import WatchlistStore
from magic8.observability import get_logger, get_metrics

SERVICE = "monitor"


@dataclass
class MonitorDeps:
    watchlist: WatchlistStore
    service: PredictionService
    sweep_state: SweepStateStore
    publisher: Any  # magic8.domain.ports.AlertPublisher
    heartbeat: HeartbeatReader
    outcomes: OutcomeStore | None = None
    pusher: UpdatePusher | None = None
    drift: DriftCheck | None = None


def build_drift_check(service: Any, settings: MonitorSettings) -> DriftCheck | None:
    """PSI vs the training manifest's per-feature bins (None if the model has none)."""
    model = getattr(service, "model", None)
    reference = parse_manifest(getattr(model, "manifest", None) or {})
    if not reference:
        return None
    monitor = DriftMonitor(
        reference,
        model_version=str(getattr(model, "version", "")),
        threshold=settings.monitor_drift_psi_threshold,
        min_samples=settings.monitor_drift_min_samples,
        window_days=settings.monitor_drift_window_days,
        min_days=settings.monitor_drift_min_days,
    )
    return DriftCheck(monitor, service_feature_rows(service))


def build_prediction_service(settings: MonitorSettings) -> PredictionService:
    """The same domain service the API uses, wired to the same tables."""
    from magic8.domain.service import build_default_service

    service: PredictionService = build_default_service(settings)
    return service


def build_deps(settings: MonitorSettings, service: PredictionService | None = None) -> MonitorDeps:
    """The real adapters (state table, SNS, WebSocket Management API) and service."""
    from magic8.adapters.connections_dynamo import DynamoConnectionStore
    from magic8.adapters.dynamo_state import DynamoKeyValueState
    from magic8.adapters.outcomes_dynamo import DynamoOutcomeStore
    from magic8.adapters.sns_publisher import SnsAlertPublisher
    from magic8.adapters.watchlist_dynamo import DynamoSweepStateStore, DynamoWatchlistStore
    from magic8.adapters.websocket_push import ApiGatewayPoster
    from magic8.monitor.gateway_health import StateHeartbeatReader
    from magic8.monitor.push import SubscriptionPush

    table = settings.state_table
    pusher = None
    if settings.ws_endpoint:
        pusher = SubscriptionPush(
            DynamoConnectionStore(table), ApiGatewayPoster(settings.ws_endpoint, settings.region)
        )
    service = service or build_prediction_service(settings)
    return MonitorDeps(
        watchlist=DynamoWatchlistStore(table),
        service=service,
        sweep_state=DynamoSweepStateStore(table),
        publisher=SnsAlertPublisher(settings.alerts_topic_arn),
        heartbeat=StateHeartbeatReader(DynamoKeyValueState(table)),
        outcomes=DynamoOutcomeStore(table),
        pusher=pusher,
        drift=build_drift_check(service, settings),
    )


@lru_cache(maxsize=1)
def _deps() -> MonitorDeps:
    return build_deps(get_settings())


@lru_cache(maxsize=1)
def _logger() -> Any:
    return get_logger(SERVICE)


def event_time(event: dict[str, Any] | None) -> datetime:
    """The scheduled event's `time` (when the rule fired); now if absent or unreadable."""
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def emit_metrics(
    result: SweepResult, accuracy_groups: list[Any], metrics_factory: Callable[[], Any]
) -> None:
    metrics = metrics_factory()
    metrics.add_metric(name="SweepSize", unit=MetricUnit.Count, value=result.entries)
    metrics.add_metric(name="SweepSymbols", unit=MetricUnit.Count, value=len(result.symbols))
    metrics.add_metric(
        name="SweepDuration", unit=MetricUnit.Milliseconds, value=round(result.duration_ms, 2)
    )
    metrics.add_metric(name="Crossings", unit=MetricUnit.Count, value=result.crossings)
    metrics.add_metric(name="ConfidenceMoves", unit=MetricUnit.Count, value=result.moves)
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=len(result.alerts))
    metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=len(result.errors))
    if result.drift is not None:
        metrics.add_metric(
            name="DriftMaxPSI", unit=MetricUnit.NoUnit, value=round(result.drift.max_psi, 4)
        )
        metrics.add_metric(
            name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.drift.drifted)
        )
    if result.market_data_fetches is not None:
        metrics.add_metric(
            name="MarketDataReads", unit=MetricUnit.Count, value=result.market_data_fetches
        )
    g = result.gateway
    if g is not None:
        stale_now = g.stale and g.market_hours and g.error is None
        metrics.add_metric(name="GatewayStale", unit=MetricUnit.Count, value=int(stale_now))
        if g.age_s is not None:
            metrics.add_metric(
                name="GatewayHeartbeatAge", unit=MetricUnit.Seconds, value=round(g.age_s, 1)
            )
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


def sweep(event: dict[str, Any], deps: MonitorDeps, settings: MonitorSettings) -> dict[str, Any]:
    now = event_time(event)
    result = run_sweep(
        deps.watchlist,
        deps.service,
        deps.sweep_state,
        deps.publisher,
        deps.heartbeat,
        clock=lambda: now,
        settings=settings.sweep_config(),
        pusher=deps.pusher,
        drift=deps.drift,
    )
    groups: list[Any] = []
    if deps.outcomes is not None:
        windows = settings.monitor_accuracy_windows
        try:
            outcomes = deps.outcomes.list_since(now - timedelta(days=max(windows)))
            report = accuracy_report(outcomes, now, windows)
            groups = [g for g in report.groups if g.symbol != ALL or g.strategy == ALL]
        except Exception as exc:
            result.errors.append(f"accuracy: {exc}")
    emit_metrics(result, groups, lambda: get_metrics(SERVICE))
    summary = result.summary()
    logged = {k: v for k, v in summary.items() if k != "updates"}  # counts, not 200 rows
    log = _logger()
    if result.errors:
        log.error("sweep finished with errors", extra={"sweep": logged})
    else:
        log.info("sweep finished", extra={"sweep": logged})
    return summary


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return sweep(event, _deps(), get_settings())
