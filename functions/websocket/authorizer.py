"""λ websocket authorizer: $connect needs the same API key as the REST API.

Browsers cannot set headers on a WebSocket, so the key comes as the ``api_key`` query
parameter (or an ``x-api-key`` header from other clients). The expected value is the REST
API's key: MAGIC8_API_KEY_ID (read once with apigateway:GetApiKey, includeValue) or
MAGIC8_API_KEY (local). A missing or wrong key is denied; the key is never logged.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from magic8.wiring import Lazy


def _expected_key() -> str:
    key_id = os.environ.get("MAGIC8_API_KEY_ID", "")
    if key_id:
        from magic8.adapters.aws import client

        value = client("apigateway", fast=True).get_api_key(apiKey=key_id, includeValue=True)
        return str(value.get("value", ""))
    return os.environ.get("MAGIC8_API_KEY", "")


_key = Lazy(_expected_key)
reset = _key.reset


def presented_key(event: dict[str, Any]) -> str:
    query = event.get("queryStringParameters") or {}
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    return str(query.get("api_key") or headers.get("x-api-key") or "")


def policy(effect: str, resource: str) -> dict[str, Any]:
    return {
        "principalId": "magic8-client",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    expected = _key()
    given = presented_key(event)
    ok = bool(expected) and bool(given) and hmac.compare_digest(given, expected)
    return policy("Allow" if ok else "Deny", str(event.get("methodArn", "*")))
