"""Composition root of λ ifd: DynamoDB state/signal stores, the SNS publisher behind a rate
limiter, the alert made idempotent on the window identity (Powertools Idempotency on the
idempotency table), and the WebSocket push of stored signals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from functions.ifd.settings import IfdSettings
from magic8.adapters.aws import client
from magic8.adapters.dynamo_state import (
    DynamoAlertRateLimiter,
    DynamoBaselineStore,
    DynamoKeyValueState,
    DynamoWindowStore,
)
from magic8.adapters.signals_dynamo import DynamoSignalStore
from magic8.adapters.sns_publisher import SnsAlertPublisher
from magic8.adapters.websocket_push import build_subscription_push
from magic8.ifd.batch import FlowBatchDeps
from magic8.ifd.detector import IfdDetector
from magic8.ifd.signals import AlertDispatcher
from magic8.ifd.values import DispatchResult, Signal
from magic8.monitor.push import ifd_signal_message


@dataclass
class IfdRuntime:
    deps: FlowBatchDeps
    idempotency: IdempotencyConfig


def build(metrics: Any, logger: Any) -> IfdRuntime:
    settings = IfdSettings()
    config = settings.detector_config()
    dispatcher = AlertDispatcher(
        SnsAlertPublisher(settings.alerts_topic_arn),
        DynamoAlertRateLimiter(settings.state_table),
        config.policy,
    )
    idempotency = IdempotencyConfig(
        event_key_jmespath="window_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.ifd_idempotency_ttl_s,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=client("dynamodb")
    )

    @idempotent_function(
        data_keyword_argument="signal", config=idempotency, persistence_store=persistence
    )
    def publish_once(signal: Signal) -> dict[str, Any]:
        result = dispatcher.dispatch(signal)
        name = "AlertsRateLimited" if result.status == "rate_limited" else "AlertsSent"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return {"status": result.status, "message_id": result.message_id}

    def dispatch(signal: Signal) -> DispatchResult:
        out = publish_once(signal=signal)
        return DispatchResult(out["status"], out.get("message_id"))

    state = DynamoKeyValueState(settings.state_table)
    signals = DynamoSignalStore(settings.signals_table, ttl_days=settings.ifd_signal_ttl_days)

    def new_detector() -> IfdDetector:
        return IfdDetector(
            baselines=DynamoBaselineStore(state),
            windows=DynamoWindowStore(state),
            signals=signals,
            dispatch=dispatch,
            config=config,
        )

    def push(stored: list[Signal]) -> int:
        """Best effort: a push that fails never fails the records (stored and alerted)."""
        if not settings.ws_endpoint:
            return 0
        try:
            pusher = build_subscription_push(
                settings.state_table, settings.ws_endpoint, settings.region
            )
            pusher.push([ifd_signal_message(s.model_dump(mode="json")) for s in stored])
        except Exception as exc:
            logger.warning("ifd websocket push failed", extra={"error": type(exc).__name__})
            return 0
        return len(stored)

    return IfdRuntime(FlowBatchDeps(new_detector, push, metrics, logger), idempotency)
