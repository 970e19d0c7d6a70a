"""The one observability module: Powertools Logger, Metrics (EMF) and Tracer.

Service names come from POWERTOOLS_SERVICE_NAME (set per function by the CDK app);
the metrics namespace from POWERTOOLS_METRICS_NAMESPACE (default 'magic8').
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE_DEFAULT = "magic8"


def _service(default: str) -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME", default)


# Third-party loggers that print credentials at DEBUG: botocore logs request headers
# (Authorization: the access key id; X-Amz-Security-Token with task-role credentials),
# databento logs its authentication exchange (the key's bucket id is its last characters).
# They stay at WARNING whatever our own level is.
CHATTY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "databento", "databento_dbn")


def quiet_third_party_loggers(level: int = logging.WARNING) -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def get_logger(service: str = "magic8") -> Logger:
    quiet_third_party_loggers()
    return Logger(service=_service(service))


class FunctionMetrics(Metrics):
    """Powertools Metrics with metric, dimension and metadata sets of its own.

    Powertools keeps them in class attributes shared by every Metrics instance of the
    process: harmless in Lambda (one function per process), but the local runtime hosts
    the predict, monitor and ifd handlers in one process, where one function's flush
    emptied another's set between its check and its serialisation (a 502 "Must contain
    at least one metric" under concurrency). Each instance flushes only what it added."""

    def __init__(self, **kwargs: object) -> None:
        self._metrics: dict[str, object] = {}
        self._dimensions: dict[str, str] = {}
        self._metadata: dict[str, object] = {}
        self._default_dimensions: dict[str, object] = {}
        super().__init__(**kwargs)  # type: ignore[arg-type]


def get_metrics(service: str = "magic8") -> Metrics:
    return FunctionMetrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE_DEFAULT),
        service=_service(service),
    )


def get_tracer(service: str = "magic8") -> Tracer:
    # Tracing is disabled outside Lambda unless POWERTOOLS_TRACE_DISABLED=false.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    return Tracer(service=_service(service))
