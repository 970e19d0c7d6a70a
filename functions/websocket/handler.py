"""λ websocket: API Gateway WebSocket API routes $connect, $disconnect and subscribe.

Connections live in the state table (magic8.adapters.connections_dynamo). A client sends
{"action": "subscribe", "symbols": ["SPX", "NDX"]}; the subscription replaces the
previous one and is acknowledged by posting {"type": "subscribed", ...} back to the
connection (API Gateway ignores a Lambda proxy body without a route response).
Bad input gets a 400 naming the field, and an {"type": "error"} message on the socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from magic8.adapters.websocket_push import management_url
from magic8.monitor.push import Connection, ConnectionPoster, ConnectionStore, normalise_symbols
from magic8.observability import get_logger
from magic8.settings import AwsSettings


class WebSocketSettings(AwsSettings):
    """Env MAGIC8_WS_ENDPOINT: the Management API endpoint (else derived from the event)."""

    ws_endpoint: str = ""


@dataclass
class WebSocketDeps:
    connections: ConnectionStore
    poster: ConnectionPoster | None  # None: build from the event's domain and stage


@lru_cache(maxsize=1)
def get_settings() -> WebSocketSettings:
    return WebSocketSettings()


@lru_cache(maxsize=1)
def _deps() -> WebSocketDeps:
    from magic8.adapters.connections_dynamo import DynamoConnectionStore
    from magic8.adapters.websocket_push import ApiGatewayPoster

    s = get_settings()
    poster = ApiGatewayPoster(s.ws_endpoint, s.region) if s.ws_endpoint else None
    return WebSocketDeps(DynamoConnectionStore(s.state_table), poster)


@lru_cache(maxsize=1)
def _logger() -> Any:
    return get_logger("websocket")


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body)}


def _poster(deps: WebSocketDeps, ctx: dict[str, Any]) -> ConnectionPoster | None:
    if deps.poster is not None:
        return deps.poster
    domain, stage = ctx.get("domainName"), ctx.get("stage")
    if not domain or not stage:
        return None
    from magic8.adapters.websocket_push import ApiGatewayPoster

    return ApiGatewayPoster(management_url(domain, stage))


def _reply(deps: WebSocketDeps, ctx: dict[str, Any], conn_id: str, body: dict[str, Any]) -> None:
    poster = _poster(deps, ctx)
    if poster is None:
        return
    try:
        poster.post(conn_id, json.dumps(body).encode())
    except Exception as exc:  # the reply is a courtesy; the subscription is stored
        _logger().warning("reply to %s failed: %s", conn_id, exc)


def subscribe(
    body_text: str | None, conn_id: str, ctx: dict[str, Any], deps: WebSocketDeps
) -> dict[str, Any]:
    try:
        body = json.loads(body_text or "{}")
    except json.JSONDecodeError:
        error = {"type": "error", "field": "body", "message": "body: not valid JSON"}
        _reply(deps, ctx, conn_id, error)
        return _response(400, error)
    raw = body.get("symbols") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw:
        error = {"type": "error", "field": "symbols", "message": "symbols: a non-empty list"}
        _reply(deps, ctx, conn_id, error)
        return _response(400, error)
    try:
        symbols = normalise_symbols(raw)
    except ValueError as exc:
        error = {"type": "error", "field": "symbols", "message": str(exc)}
        _reply(deps, ctx, conn_id, error)
        return _response(400, error)
    deps.connections.set_symbols(conn_id, symbols)
    ack = {"type": "subscribed", "symbols": symbols}
    _reply(deps, ctx, conn_id, ack)
    return _response(200, ack)


def route(event: dict[str, Any], deps: WebSocketDeps) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    route_key = ctx.get("routeKey", "")
    conn_id = ctx.get("connectionId")
    if not conn_id:
        return _response(400, {"type": "error", "message": "requestContext.connectionId missing"})
    if route_key == "$connect":
        deps.connections.add(Connection(connection_id=conn_id))
        return _response(200, {"type": "connected"})
    if route_key == "$disconnect":
        deps.connections.remove(conn_id)
        return _response(200, {"type": "disconnected"})
    if route_key == "subscribe" or (route_key == "$default" and _action(event) == "subscribe"):
        return subscribe(event.get("body"), conn_id, ctx, deps)
    error = {"type": "error", "field": "action", "message": "action: expected 'subscribe'"}
    _reply(deps, ctx, conn_id, error)
    return _response(400, error)


def _action(event: dict[str, Any]) -> str | None:
    try:
        body = json.loads(event.get("body") or "{}")
    except json.JSONDecodeError:
        return None
    return body.get("action") if isinstance(body, dict) else None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return route(event, _deps())
