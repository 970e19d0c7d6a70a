"""λ predict: API Gateway (REST, proxy) -> Mangum -> the FastAPI app of functions.predict.app.

Modules are imported at import time (Lambda's init phase, which runs with a full CPU),
but nothing is built then and no environment is read: the first invocation parses
ApiSettings, creates the app (the model loads on the first prediction) and the Powertools
Logger/Metrics, and wraps Mangum in a plain function (Mangum objects have no __name__,
which the Powertools decorators need). Warm invocations reuse all of it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

# numpy, the feature module and the XGBoost library are loaded here, in Lambda's init phase
import magic8.domain.features
import magic8.domain.model  # noqa: F401
from functions.predict.app import BATCH_PATH, create_app, fast_batch_answer
from functions.predict.settings import ApiSettings
from magic8.observability import get_logger, get_metrics

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

_lock = threading.Lock()
_handler: LambdaHandler | None = None


def batch_body(event: dict[str, Any], max_bytes: int) -> bytes | None:
    """The JSON body of an API Gateway REST (v1) event that is POST /predict/batch, exactly
    as Mangum would hand it to the app, or None for anything else (other events, routes,
    methods, content types, base64 bodies, bodies over the limit or not matching their
    Content-Length): those go through Mangum and the app."""
    if event.get("httpMethod") != "POST" or "version" in event or "resource" not in event:
        return None  # Mangum reads a "version" event as HTTP API, "elb" as ALB
    request_context = event.get("requestContext")
    if not isinstance(request_context, dict) or "elb" in request_context:
        return None
    if unquote(event.get("path") or "/") != BATCH_PATH or event.get("isBase64Encoded"):
        return None
    body = event.get("body")
    if not isinstance(body, str):
        return None
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    for k, v in (event.get("multiValueHeaders") or {}).items():  # Mangum's merge
        headers[k.lower()] = ", ".join(v) if isinstance(v, list) else ""
    content_type = headers.get("content-type")
    if not isinstance(content_type, str):
        return None
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    raw = body.encode()
    declared = headers.get("content-length")
    if len(raw) > max_bytes or (declared is not None and declared.strip() != str(len(raw))):
        return None
    return raw


def apigw_json_response(body: bytes) -> dict[str, Any]:
    """A 200 application/json answer in the shape Mangum gives API Gateway (REST)."""
    return {
        "statusCode": 200,
        "headers": {"content-length": str(len(body)), "content-type": "application/json"},
        "multiValueHeaders": {},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def build_handler(
    settings: Any | None = None, service_factory: Any | None = None, fast_path: bool = True
) -> LambdaHandler:
    """The decorated Lambda handler around a fresh app (used by `handler` and by tests and
    benchmarks that inject a service factory). fast_path: a valid POST /predict/batch is
    answered by functions.predict.app.fast_batch_answer (same validation, same service
    call, same bytes) instead of through Mangum/Starlette/FastAPI; everything else, and
    every error, goes through the app."""
    logger = get_logger("predict")
    metrics = get_metrics("predict")
    # /health and rejected requests add no metrics: that is expected, not worth a warning
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    def observe(n: int, batch_metrics: dict[str, Any]) -> None:
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=n)
        metrics.add_metric(
            name="PredictionCacheHits",
            unit=MetricUnit.Count,
            value=batch_metrics["prediction_hits"],
        )
        metrics.add_metric(
            name="FeatureCacheHits", unit=MetricUnit.Count, value=batch_metrics["feature_hits"]
        )
        metrics.add_metric(
            name="MarketDataReads",
            unit=MetricUnit.Count,
            value=batch_metrics["market_data_fetches"],
        )
        metrics.add_metric(
            name="BatchLatency", unit=MetricUnit.Milliseconds, value=batch_metrics["elapsed_ms"]
        )
        if batch_metrics.get("errors"):
            metrics.add_metric(name="DegradedBatches", unit=MetricUnit.Count, value=1)
            logger.warning("degraded batch", extra={"errors": batch_metrics["errors"]})

    settings = settings or ApiSettings()
    app = create_app(settings, service_factory, observer=observe)
    asgi = Mangum(app, lifespan="off")
    max_body = settings.max_body_bytes

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if fast_path:
            body = batch_body(event, max_body)
            if body is not None:
                answer = fast_batch_answer(app, body)
                if answer is not None:
                    return apigw_json_response(answer)
        return asgi(event, context)

    decorated: LambdaHandler = logger.inject_lambda_context(
        metrics.log_metrics(invoke, raise_on_empty_metrics=False)
    )
    return decorated


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (functions.predict.handler.handler)."""
    global _handler
    if _handler is None:
        with _lock:
            if _handler is None:
                _handler = build_handler()
    return _handler(event, context)


def reset() -> None:
    """Forget the built handler (tests that change the environment)."""
    global _handler
    with _lock:
        _handler = None
