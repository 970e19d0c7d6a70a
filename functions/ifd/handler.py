"""λ ifd: Kinesis `flow` records -> IFD detector -> signals table -> SNS alerts.

Powertools BatchProcessor over a typed record model (the Kinesis record whose data is a
PressureWindow); a record that fails to parse or to process is reported alone in
batchItemFailures (the event source bisects and, after its retries, sends it to the
on-failure queue). The alert for a window is published inside a Powertools idempotent
function keyed on the window identity, so redelivery never sends a second message.
Nothing touches the environment or boto3 until the first invocation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.functions import base64_decode
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import (
    KinesisDataStreamRecord,
    KinesisDataStreamRecordPayload,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json, field_validator

from functions.ifd.settings import IfdSettings, get_settings
from magic8.adapters.aws import client
from magic8.adapters.dynamo_state import (
    DynamoAlertRateLimiter,
    DynamoBaselineStore,
    DynamoKeyValueState,
    DynamoWindowStore,
)
from magic8.adapters.signals_dynamo import DynamoSignalStore
from magic8.adapters.sns_publisher import SnsAlertPublisher
from magic8.domain.flow import PressureWindow
from magic8.ifd.detector import IfdDetector, Outcome
from magic8.ifd.signals import AlertDispatcher, DispatchResult, Signal
from magic8.observability import get_logger, get_metrics, get_tracer

logger = get_logger("ifd")
metrics = get_metrics("ifd")
tracer = get_tracer("ifd")

# Process-local counters (the local poller shows them in its status line).
STATS: Counter[str] = Counter()


class FlowRecordPayload(KinesisDataStreamRecordPayload):
    data: Json[PressureWindow]  # type: ignore[assignment]

    @field_validator("data", mode="before")
    @classmethod
    def data_base64_decode(cls, value: Any) -> Any:  # replaces the parent's validator
        return base64_decode(value)


class FlowKinesisRecord(KinesisDataStreamRecord):
    """A Kinesis record of the `flow` stream: data is a versioned PressureWindow."""

    kinesis: FlowRecordPayload


processor = BatchProcessor(event_type=EventType.KinesisDataStreams, model=FlowKinesisRecord)


@dataclass
class Runtime:
    settings: IfdSettings
    state: DynamoKeyValueState
    signals: DynamoSignalStore
    idempotency: IdempotencyConfig
    dispatch_once: Callable[..., dict[str, Any]]

    def detector(self) -> IfdDetector:
        """A detector for one invocation (its peer cache lives as long as the batch)."""

        def dispatch(signal: Signal) -> DispatchResult:
            out = self.dispatch_once(signal=signal)
            return DispatchResult(out["status"], out.get("message_id"))

        return IfdDetector(
            baselines=DynamoBaselineStore(self.state),
            windows=DynamoWindowStore(self.state),
            signals=self.signals,
            dispatch=dispatch,
            config=self.settings.detector_config(),
        )


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    """Settings, clients and the idempotent publisher, built once on first use."""
    settings = get_settings()
    dispatcher = AlertDispatcher(
        SnsAlertPublisher(settings.alerts_topic_arn),
        DynamoAlertRateLimiter(settings.state_table),
        settings.detector_config().policy,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=client("dynamodb")
    )
    config = IdempotencyConfig(
        event_key_jmespath="window_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.ifd_idempotency_ttl_s,
    )

    @idempotent_function(
        data_keyword_argument="signal", config=config, persistence_store=persistence
    )
    def publish_signal_alert(signal: Signal) -> dict[str, Any]:
        result = dispatcher.dispatch(signal)
        if result.status == "rate_limited":
            metrics.add_metric(name="AlertsRateLimited", unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=1)
        return {"status": result.status, "message_id": result.message_id}

    return Runtime(
        settings=settings,
        state=DynamoKeyValueState(settings.state_table),
        signals=DynamoSignalStore(settings.signals_table, ttl_days=settings.ifd_signal_ttl_days),
        idempotency=config,
        dispatch_once=publish_signal_alert,
    )


def cold_start() -> None:
    """Forget settings, clients and the idempotent publisher, as a new container would
    (the local event source calls it when it starts)."""
    get_settings.cache_clear()
    runtime.cache_clear()


def parse_window(record: dict[str, Any]) -> PressureWindow | None:
    """The window of a raw event record, or None when it is malformed (it fails later)."""
    try:
        return FlowKinesisRecord.model_validate(record).kinesis.data
    except Exception:
        return None


def push_signals(settings: IfdSettings, signals: list[Signal]) -> int:
    """Push the batch's stored signals to WebSocket subscribers (best effort: a push that
    fails never fails the records; the signals are stored and alerted already)."""
    if not signals or not settings.ws_endpoint:
        return 0
    from magic8.adapters.websocket_push import build_subscription_push
    from magic8.monitor.push import ifd_signal_message

    try:
        pusher = build_subscription_push(
            settings.state_table, settings.ws_endpoint, settings.region
        )
        pusher.push([ifd_signal_message(s.model_dump(mode="json")) for s in signals])
    except Exception as exc:
        logger.warning("ifd websocket push failed", extra={"error": type(exc).__name__})
        return 0
    metrics.add_metric(name="SignalsPushed", unit=MetricUnit.Count, value=len(signals))
    return len(signals)


def process_window(
    detector: IfdDetector, record: FlowKinesisRecord, stored: list[Signal] | None = None
) -> dict[str, Any]:
    outcome: Outcome = detector.handle(record.kinesis.data)
    STATS["windows"] += 1
    if outcome.skipped:
        STATS[outcome.skipped] += 1
        metrics.add_metric(name="WindowsSkipped", unit=MetricUnit.Count, value=1)
    if outcome.signal is not None:
        STATS["signals"] += 1
        if stored is not None:
            stored.append(outcome.signal)
        if outcome.signal.alerted:
            STATS["alerts"] += 1
        elif outcome.signal.alert_status != "none":
            STATS[outcome.signal.alert_status] += 1
        metrics.add_metric(name="SignalsStored", unit=MetricUnit.Count, value=1)
        log = logger.info if outcome.signal.alert_status != "none" else logger.debug
        log(
            "ifd signal",
            extra={
                "signal_id": outcome.signal.signal_id,
                "underlying": outcome.signal.underlying,
                "direction": outcome.signal.direction,
                "confidence": outcome.signal.confidence,
                "alert_status": outcome.signal.alert_status,
            },
        )
    return {
        "window_key": outcome.window_key,
        "skipped": outcome.skipped,
        "confidence": outcome.assessment.confidence if outcome.assessment else None,
        "alert_status": outcome.alert_status,
    }


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    rt.idempotency.register_lambda_context(context)
    detector = rt.detector()
    records = event.get("Records", [])
    windows = [w for w in (parse_window(r) for r in records) if w is not None]
    detector.observe(windows)
    metrics.add_metric(name="WindowsReceived", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(
        name="WindowsMalformed", unit=MetricUnit.Count, value=len(records) - len(windows)
    )
    stored: list[Signal] = []
    try:
        response: dict[str, Any] = dict(
            process_partial_response(
                event=event,
                record_handler=lambda record: process_window(detector, record, stored),
                processor=processor,
                context=context,
            )
        )
    finally:
        detector.flush()  # write-behind state of the records that were processed
    push_signals(rt.settings, stored)
    failures = response.get("batchItemFailures", [])
    if failures:
        logger.warning("batch item failures", extra={"failed": len(failures)})
    return response
