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


@lru_cache(maxsize=32)
def client(service: str, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client; endpoint_url None lets boto3 honour AWS_ENDPOINT_URL."""
    kwargs: dict[str, Any] = {"config": RETRY_CONFIG}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]


@lru_cache(maxsize=32)
def resource(service: str, region: str | None = None, endpoint_url: str | None = None) -> Any:
    kwargs: dict[str, Any] = {"config": RETRY_CONFIG}
    if region:
        kwargs["region_name"] = region
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.resource(service, **kwargs)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints)."""
    client.cache_clear()
    resource.cache_clear()
