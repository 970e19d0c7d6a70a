"""λ ifd: Kinesis `flow` records -> IFD detector -> signals table -> SNS alerts.

The use case is magic8.ifd.batch.process_flow_batch (Powertools BatchProcessor, partial
batch failures); its dependencies are built on the first invocation (functions.ifd.deps).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ifd.deps import build
from magic8.ifd.batch import process_flow_batch
from magic8.observability import get_logger, get_metrics, get_tracer
from magic8.wiring import Lazy

logger = get_logger("ifd")
metrics = get_metrics("ifd")
tracer = get_tracer("ifd")

_runtime = Lazy(lambda: build(metrics, logger))
reset = _runtime.reset  # the local event source starts the function cold; tests


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = _runtime()
    runtime.idempotency.register_lambda_context(context)
    return process_flow_batch(event, context, runtime.deps)
