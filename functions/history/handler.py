"""λ history: SQS `history` messages (one per answered batch) -> the confidence history,
one item per trade identity. A message failing to parse or write is reported alone in
batchItemFailures (redelivered, then dead-lettered); writes are idempotent."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.history.deps import build
from magic8.adapters.history_queue import decode
from magic8.observability import get_logger, get_metrics
from magic8.wiring import Lazy

logger = get_logger("history")
metrics = get_metrics("history")

_repo = Lazy(build)
reset = _repo.reset  # tests; the local event source

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _record(record: SQSRecord) -> int:
    points = decode(record.body)
    written = _repo().write(points)
    metrics.add_metric(name="HistoryPointsWritten", unit=MetricUnit.Count, value=written)
    return written


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=_record, processor=processor, context=context
        )
    )
