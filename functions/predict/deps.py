"""Composition root of λ predict: settings -> the FastAPI app on the real adapters, behind
Mangum, with the Powertools logger and metrics around it."""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

from functions.predict.app import ServiceFactory, create_app
from functions.predict.settings import ApiSettings
from magic8.after_response import AfterResponse, PostResponseGc, for_environment
from magic8.domain.warming import is_warm_event
from magic8.observability import get_logger, get_metrics

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@functools.lru_cache(maxsize=256)
def _json_string(text: str) -> str:
    """A dimension value as a JSON string (few distinct values: symbols, strategies)."""
    return json.dumps(text)


# batch_metrics key -> (metric name, unit)
BATCH_METRICS: dict[str, tuple[str, MetricUnit]] = {
    "prediction_hits": ("PredictionCacheHits", MetricUnit.Count),
    "feature_hits": ("FeatureCacheHits", MetricUnit.Count),
    "market_data_fetches": ("MarketDataReads", MetricUnit.Count),
    "elapsed_ms": ("BatchLatency", MetricUnit.Milliseconds),
}


def build_handler(
    settings: ApiSettings | None = None,
    service_factory: ServiceFactory | None = None,
    eager: bool = False,
    after_response: AfterResponse | None = None,
) -> LambdaHandler:
    """The decorated Lambda handler around a fresh app (service_factory: tests and
    benchmarks inject one; default the real adapters). eager: build the service now
    (model, repositories, boto3 clients) instead of on the first prediction: Lambda's
    init phase runs at full CPU and is not on a client's request. after_response: where
    the history hand-over runs once the answer is out (default magic8.after_response.
    for_environment(): the internal extension in Lambda, registered here at init); the
    handler carries it as `handler.after_response` for a host that sends responses
    itself (the local API front)."""
    settings = settings or ApiSettings()
    logger = get_logger("predict")
    metrics = get_metrics("predict")
    # /health and rejected requests add no metrics: that is expected, not worth a warning
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    def observe(n: int, batch_metrics: dict[str, Any]) -> None:
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=n)
        for key, (name, unit) in BATCH_METRICS.items():
            metrics.add_metric(name=name, unit=unit, value=batch_metrics[key])
        if batch_metrics.get("errors"):
            metrics.add_metric(name="DegradedBatches", unit=MetricUnit.Count, value=1)
            logger.warning("degraded batch", extra={"errors": batch_metrics["errors"]})

    namespace = metrics.namespace

    def observe_predictions(counts: dict[tuple[str, str], int]) -> None:
        """One EMF document per symbol x strategy answered: PredictionsByTrade with
        dimensions service, symbol and strategy (per-trade-type dashboards and alarms).
        Written by hand in one print: Powertools' single_metric builds a Metrics object
        per document (~0.07 ms each, 1.5 ms for a batch over 24 series); the shared head
        is encoded once per request and each line filled in from it."""
        if not counts:
            return
        head = json.dumps(
            {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [["service", "symbol", "strategy"]],
                        "Metrics": [{"Name": "PredictionsByTrade", "Unit": "Count"}],
                    }
                ],
            },
            separators=(",", ":"),
        )
        quoted = _json_string
        lines = [
            f'{{"_aws":{head},"service":"predict","symbol":{quoted(symbol)},'
            f'"strategy":{quoted(strategy)},"PredictionsByTrade":{int(n)}}}'
            for (symbol, strategy), n in counts.items()
        ]
        print("\n".join(lines), flush=True)

    app = create_app(settings, service_factory, observer=observe)
    if eager:
        try:
            app.state.service.get()
        except Exception as exc:  # the holder remembers why; /health/detailed reports it
            logger.warning("service not built at init", extra={"error": repr(exc)})
    app.state.prediction_observer = observe_predictions
    after = after_response if after_response is not None else for_environment()
    app.state.after_response = after
    post_gc = PostResponseGc()
    app.state.post_response_gc = post_gc
    asgi = Mangum(app, lifespan="off")

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # a plain function: Mangum objects have no __name__, which the decorators need
        try:
            if is_warm_event(event):  # the 5-minute warm schedule (EventBridge), not HTTP
                result = app.state.service.warm()
                metrics.add_metric(
                    name="CacheWarmTrades", unit=MetricUnit.Count, value=result["trades"]
                )
                return result
            return asgi(event, context)
        finally:
            if after.mode != "inline":  # off the client's path only (see PostResponseGc)
                after.defer(post_gc)
            after.invocation_done()

    decorated: LambdaHandler = logger.inject_lambda_context(
        metrics.log_metrics(invoke, raise_on_empty_metrics=False)
    )
    decorated.after_response = after  # type: ignore[attr-defined]
    return decorated
