"""$connect authorizer: the REST API key, by query parameter or header; nothing else."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from functions.websocket import authorizer
from magic8.observability import CHATTY_LOGGERS, get_logger

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MAGIC8_API_KEY_ID", raising=False)
    monkeypatch.setenv("MAGIC8_API_KEY", "s3cret-key")
    authorizer.reset()
    yield
    authorizer.reset()


def _effect(event: dict) -> str:
    out = authorizer.handler({"methodArn": ARN, **event})
    (stmt,) = out["policyDocument"]["Statement"]
    assert stmt["Resource"] == ARN
    return str(stmt["Effect"])


def test_the_key_allows_the_connection() -> None:
    assert _effect({"queryStringParameters": {"api_key": "s3cret-key"}}) == "Allow"
    assert _effect({"headers": {"X-Api-Key": "s3cret-key"}}) == "Allow"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"queryStringParameters": {"api_key": ""}},
        {"queryStringParameters": {"api_key": "s3cret-kez"}},
        {"queryStringParameters": None, "headers": None},
        {"headers": {"x-api-key": "S3CRET-KEY"}},
    ],
)
def test_anything_else_is_denied(event: dict) -> None:
    assert _effect(event) == "Deny"


def test_no_configured_key_denies_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGIC8_API_KEY", "")
    authorizer.reset()
    assert _effect({"queryStringParameters": {"api_key": ""}}) == "Deny"


def test_third_party_loggers_stay_quiet_at_debug() -> None:
    """botocore logs Authorization headers and databento its auth exchange at DEBUG: with
    our loggers at DEBUG they still print nothing below WARNING."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    try:
        get_logger("test")
        for name in CHATTY_LOGGERS:
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
            assert not logging.getLogger(f"{name}.sub").isEnabledFor(logging.INFO), name
    finally:
        root.setLevel(before)
