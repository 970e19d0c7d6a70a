"""Composition root of λ monitor: the real adapters (state table, SNS, WebSocket
Management API) and the same prediction service the API uses, on the same tables."""

from __future__ import annotations

from typing import Any

from functions.monitor.settings import MonitorSettings
from magic8.adapters.connections_dynamo import DynamoConnectionStore
from magic8.adapters.dynamo_state import DynamoKeyValueState
from magic8.adapters.outcomes_dynamo import DynamoOutcomeStore
from magic8.adapters.prediction_service import build_prediction_service
from magic8.adapters.sns_publisher import SnsAlertPublisher
from magic8.adapters.watchlist_dynamo import DynamoSweepStateStore, DynamoWatchlistStore
from magic8.adapters.websocket_push import ApiGatewayPoster
from magic8.monitor.drift import DriftMonitor, parse_manifest, service_feature_rows
from magic8.monitor.gateway_health import StateHeartbeatReader
from magic8.monitor.push import SubscriptionPush
from magic8.monitor.scheduled import MonitorDeps
from magic8.monitor.sweep import DriftCheck, PredictionService


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


def build_deps(settings: MonitorSettings, service: PredictionService | None = None) -> MonitorDeps:
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


def build() -> tuple[MonitorSettings, MonitorDeps]:
    settings = MonitorSettings()
    return settings, build_deps(settings)
