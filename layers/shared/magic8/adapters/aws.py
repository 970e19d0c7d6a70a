"""boto3 client construction with retries configured once.

Clients are created on first use by whoever needs them (never at import time). Standard
retry mode gives exponential backoff with jitter for throttling and 5xx.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

RETRY_CONFIG = Config(
    retries={"max_attempts": 8, "mode": "standard"},
    connect_timeout=2,
    read_timeout=5,
)

# For reads on a request's critical path (market data for a prediction): fail fast and let
# the circuit breaker / stale fallback answer, rather than hold the caller for ~2 minutes of
# backoff.
FAST_RETRY_CONFIG = Config(
    retries={"total_max_attempts": 3, "mode": "standard"},
    connect_timeout=1,
    read_timeout=2,
)

# For health probes (/health/detailed): one attempt, answer inside a second and a half, so
# "unreachable" is reported well within the 2 s the endpoint promises.
PROBE_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=0.5,
    read_timeout=1.0,
)


@lru_cache(maxsize=32)
def client(
    service: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    fast: bool = False,
    probe: bool = False,
) -> Any:
    """A cached boto3 client; endpoint_url None lets boto3 honour AWS_ENDPOINT_URL.
    fast=True: few retries and short timeouts (every call on an API request's path: at
    most ~7 s per call even when AWS is black-holed); probe=True: one short attempt."""
    config = PROBE_CONFIG if probe else FAST_RETRY_CONFIG if fast else RETRY_CONFIG
    kwargs: dict[str, Any] = {"config": config}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]


@lru_cache(maxsize=32)
def resource(
    service: str, region: str | None = None, endpoint_url: str | None = None, fast: bool = False
) -> Any:
    kwargs: dict[str, Any] = {"config": FAST_RETRY_CONFIG if fast else RETRY_CONFIG}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.resource(service, **kwargs)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints)."""
    client.cache_clear()
    resource.cache_clear()


class LazyClient:
    """A boto3 client attribute: the client the constructor stored in ``_<name>``, else the
    shared cached client of ``service`` on first use (never at import or construction)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = getattr(obj, self.slot, None)
        if value is None:
            value = client(self.service)
            setattr(obj, self.slot, value)
        return value


class LazyDynamoClient:
    """Mixin for adapters holding `_ddb`: the DynamoDB client passed in, or the shared
    cached one on first use (never at import or construction time)."""

    ddb = LazyClient("dynamodb")

    def __init__(self, table_name: str, ddb: Any | None = None) -> None:
        self.table = table_name
        self._ddb = ddb


class LazyDynamoTable:
    """Mixin for adapters over one boto3 Table resource: the table passed in, or the
    table of the shared cached resource on first use (never at import or construction)."""

    def __init__(self, table_name: str, table: Any = None) -> None:
        self.table_name = table_name
        self._table = table

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = resource("dynamodb").Table(self.table_name)
        return self._table
