"""The WebSocket API's routes ($connect, $disconnect, subscribe) as a use case.

A client sends {"action": "subscribe", "symbols": ["SPX", "NDX"]}; the subscription
replaces the previous one and is acknowledged by posting {"type": "subscribed", ...} back to
the connection (API Gateway ignores a Lambda proxy body without a route response).
Bad input gets a 400 naming the field, and an {"type": "error"} message on the socket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from magic8.monitor.push import Connection, ConnectionPoster, ConnectionStore, normalise_symbols

log = logging.getLogger(__name__)


@dataclass
class WebSocketDeps:
    connections: ConnectionStore
    # the Management API poster for an event's requestContext (None: cannot reply)
    poster_for: Callable[[dict[str, Any]], ConnectionPoster | None]


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body)}


def _reply(deps: WebSocketDeps, ctx: dict[str, Any], conn_id: str, body: dict[str, Any]) -> None:
    poster = deps.poster_for(ctx)
    if poster is None:
        return
    try:
        poster.post(conn_id, json.dumps(body).encode())
    except Exception as exc:  # the reply is a courtesy; the subscription is stored
        log.warning("reply to %s failed: %s", conn_id, exc)


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
