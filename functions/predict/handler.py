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

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

# numpy, the feature module and xgboost are imported here, during Lambda's init phase
import magic8.domain.features
import magic8.domain.model  # noqa: F401
from functions.predict.app import create_app
from functions.predict.settings import ApiSettings
from magic8.observability import get_logger, get_metrics

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

_lock = threading.Lock()
_handler: LambdaHandler | None = None


def build_handler(settings: Any | None = None, service_factory: Any | None = None) -> LambdaHandler:
    """The decorated Lambda handler around a fresh app (used by `handler` and by tests and
    benchmarks that inject a service factory)."""
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

    app = create_app(settings or ApiSettings(), service_factory, observer=observe)
    asgi = Mangum(app, lifespan="off")

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
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
