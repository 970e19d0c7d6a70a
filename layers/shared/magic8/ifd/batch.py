"""One Kinesis batch of the `flow` stream through the IFD detector (λ ifd's use case).

Powertools BatchProcessor over a typed record model (the Kinesis record whose data is a
PressureWindow): a record that fails to parse or to process is reported alone in
batchItemFailures (the event source bisects and, after its retries, sends it to the
on-failure queue). Alerts go out through `deps.dispatch`, which the composition root
makes idempotent on the window identity, so redelivery never sends a second message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.functions import base64_decode
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.parser.models import (
    KinesisDataStreamRecord,
    KinesisDataStreamRecordPayload,
)
from pydantic import Json, field_validator

from magic8.domain.flow import PressureWindow
from magic8.ifd.detector import IfdDetector, Outcome
from magic8.ifd.values import Signal

SignalPush = Callable[[list[Signal]], int]


class FlowRecordPayload(KinesisDataStreamRecordPayload):
    data: Json[PressureWindow]  # type: ignore[assignment]

    @field_validator("data", mode="before")
    @classmethod
    def data_base64_decode(cls, value: Any) -> Any:  # replaces the parent's validator
        return base64_decode(value)


class FlowKinesisRecord(KinesisDataStreamRecord):
    """A Kinesis record of the `flow` stream: data is a versioned PressureWindow."""

    kinesis: FlowRecordPayload


# A batch whose every record fails is reported like any other (all in batchItemFailures),
# never raised: the event source retries/bisects the same way, and no record can make the
# invocation itself fail.
processor = BatchProcessor(
    event_type=EventType.KinesisDataStreams,
    model=FlowKinesisRecord,
    raise_on_entire_batch_failure=False,
)


@dataclass
class FlowBatchDeps:
    new_detector: Callable[[], IfdDetector]  # one per batch: its peer cache lives as long
    push: SignalPush | None  # stored signals to WebSocket subscribers (best effort)
    metrics: Any  # Powertools Metrics
    logger: Any  # Powertools Logger


def parse_window(record: dict[str, Any]) -> PressureWindow | None:
    """The window of a raw event record, or None when it is malformed (it fails later)."""
    try:
        return FlowKinesisRecord.model_validate(record).kinesis.data
    except Exception:
        return None


class UnobservedWindow(Exception):
    """The window could not be made visible to its peers (its record fails alone)."""


def process_window(
    detector: IfdDetector,
    record: FlowKinesisRecord,
    deps: FlowBatchDeps,
    stored: list[Signal],
    unobserved: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    if record.kinesis.data.window_key in unobserved:
        raise UnobservedWindow(record.kinesis.data.window_key)
    outcome: Outcome = detector.handle(record.kinesis.data)
    if outcome.skipped:
        deps.metrics.add_metric(name="WindowsSkipped", unit=MetricUnit.Count, value=1)
    signal = outcome.signal
    if signal is not None:
        stored.append(signal)
        deps.metrics.add_metric(name="SignalsStored", unit=MetricUnit.Count, value=1)
        deps.logger.info(
            "ifd signal",
            extra={
                "signal_id": signal.signal_id,
                "underlying": signal.underlying,
                "direction": signal.direction,
                "confidence": signal.confidence,
                "alert_status": signal.alert_status,
            },
        )
    return {
        "window_key": outcome.window_key,
        "skipped": outcome.skipped,
        "confidence": outcome.assessment.confidence if outcome.assessment else None,
        "alert_status": outcome.alert_status,
    }


def observe_each(
    detector: IfdDetector, windows: list[PressureWindow], deps: FlowBatchDeps
) -> frozenset[str]:
    """detector.observe for the whole batch; if that raises, window by window, so one
    window the store refuses fails its own record, not the batch. Returns the keys of the
    windows that could not be observed."""
    try:
        detector.observe(windows)
        return frozenset()
    except Exception as exc:
        deps.logger.warning("batch observe failed", extra={"error": type(exc).__name__})
    bad: set[str] = set()
    for w in windows:
        try:
            detector.observe([w])
        except Exception:
            bad.add(w.window_key)
    return frozenset(bad)


def process_flow_batch(event: dict[str, Any], context: Any, deps: FlowBatchDeps) -> dict[str, Any]:
    """batchItemFailures for the records that failed; everything else is processed."""
    detector = deps.new_detector()
    records = event.get("Records", [])
    windows = [w for w in (parse_window(r) for r in records) if w is not None]
    unobserved = observe_each(detector, windows, deps)
    deps.metrics.add_metric(name="WindowsReceived", unit=MetricUnit.Count, value=len(records))
    deps.metrics.add_metric(
        name="WindowsMalformed", unit=MetricUnit.Count, value=len(records) - len(windows)
    )
    stored: list[Signal] = []
    try:
        response: dict[str, Any] = dict(
            process_partial_response(
                event=event,
                record_handler=lambda record: process_window(
                    detector, record, deps, stored, unobserved
                ),
                processor=processor,
                context=context,
            )
        )
    finally:
        detector.flush()  # write-behind state of the records that were processed
    if stored and deps.push is not None:
        pushed = deps.push(stored)
        deps.metrics.add_metric(name="SignalsPushed", unit=MetricUnit.Count, value=pushed)
    failures = response.get("batchItemFailures", [])
    if failures:
        deps.logger.warning("batch item failures", extra={"failed": len(failures)})
    return response
