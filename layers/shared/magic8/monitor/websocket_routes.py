"""The WebSocket API's routes as a use case: $connect, $disconnect, subscribe, unsubscribe,
ping and $default.

Messages (route selection expression $request.body.action):

- {"action": "subscribe", "symbols": ["SPX", "NQ"], "strategies": ["Butterfly"]}
  adds the symbols (to every strategy, or only to the strategies named) to the
  connection's subscription; acknowledged with {"type": "subscribed", "symbols": [...],
  "strategies": {symbol: [...]}} (the whole subscription; a symbol absent from
  "strategies" gets every strategy).
- {"action": "unsubscribe", "symbols": [...], "strategies": [...]} removes them (both
  optional: no symbols = every subscribed symbol, no strategies = every strategy; an
  empty body unsubscribes from everything); acknowledged with {"type": "unsubscribed", ...}.
- {"action": "ping", "id": <anything>} is answered {"type": "pong", "id": ..., "at": ...,
  "idle_timeout_s": 600}: the heartbeat. API Gateway closes a connection after 10 minutes
  without a message from the client (and after 2 hours in any case), so a client pings at
  least every few minutes (the dashboard's period: PING_EVERY_S).
- anything else ($default) gets {"type": "error", "field": "action", ...} naming the actions.

$connect refuses a connection beyond the cap (WebSocketDeps.max_connections, env
MAGIC8_WS_MAX_CONNECTIONS) with 429 and {"type": "error", "code": "connection_limit"}:
the upgrade fails with that status (browsers only see the close).

Replies are posted back to the connection (API Gateway ignores a Lambda proxy body without
a route response). Bad input gets a 400 naming the field, and an {"type": "error"} message
on the socket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from magic8.monitor.push import (
    Connection,
    ConnectionPoster,
    ConnectionStore,
    normalise_strategies,
    normalise_symbols,
    subscribe_to,
    unsubscribe_from,
)

log = logging.getLogger(__name__)

# The custom routes deployed beside $connect/$disconnect/$default (infra/constructs/push.py
# and the local WebSocket API use this list).
ROUTE_KEYS: tuple[str, ...] = ("subscribe", "unsubscribe", "ping")
IDLE_TIMEOUT_S = 600  # API Gateway WebSocket idle connection timeout
MAX_CONNECTION_S = 7200  # API Gateway WebSocket maximum connection duration
PING_EVERY_S = 300  # what clients are asked to do (twice per idle timeout)
DEFAULT_MAX_CONNECTIONS = 100


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebSocketDeps:
    connections: ConnectionStore
    # the Management API poster for an event's requestContext (None: cannot reply)
    poster_for: Callable[[dict[str, Any]], ConnectionPoster | None]
    # $connect refuses connections beyond this many open ones (0: no cap)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    clock: Callable[[], datetime] = field(default=_utc_now)


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


def _error(
    deps: WebSocketDeps, ctx: dict[str, Any], conn_id: str, fld: str, message: str
) -> dict[str, Any]:
    error = {"type": "error", "field": fld, "message": message}
    _reply(deps, ctx, conn_id, error)
    return _response(400, error)


class _BadInput(ValueError):
    def __init__(self, fld: str, message: str) -> None:
        super().__init__(message)
        self.field = fld


def _body(body_text: str | None) -> dict[str, Any]:
    try:
        body = json.loads(body_text or "{}")
    except json.JSONDecodeError as exc:
        raise _BadInput("body", "body: not valid JSON") from exc
    if not isinstance(body, dict):
        raise _BadInput("body", "body: a JSON object")
    return body


def _list(body: dict[str, Any], name: str, required: bool) -> list[Any] | None:
    raw = body.get(name)
    if raw is None and not required:
        return None
    if not isinstance(raw, list) or not raw:
        need = "a non-empty list" if required else "a non-empty list (or omitted)"
        raise _BadInput(name, f"{name}: {need}")
    return raw


def _symbols(body: dict[str, Any], required: bool) -> list[str] | None:
    raw = _list(body, "symbols", required)
    try:
        return None if raw is None else normalise_symbols(raw)
    except ValueError as exc:
        raise _BadInput("symbols", str(exc)) from exc


def _strategies(body: dict[str, Any]) -> list[str] | None:
    raw = _list(body, "strategies", False)
    try:
        return None if raw is None else normalise_strategies(raw)
    except ValueError as exc:
        raise _BadInput("strategies", str(exc)) from exc


def _current(deps: WebSocketDeps, conn_id: str) -> Connection:
    return deps.connections.get(conn_id) or Connection(connection_id=conn_id)


def subscribe(
    body_text: str | None, conn_id: str, ctx: dict[str, Any], deps: WebSocketDeps
) -> dict[str, Any]:
    try:
        body = _body(body_text)
        symbols = _symbols(body, required=True) or []
        strategies = _strategies(body)
        updated = subscribe_to(_current(deps, conn_id), symbols, strategies)
    except _BadInput as exc:
        return _error(deps, ctx, conn_id, exc.field, str(exc))
    except ValueError as exc:  # too many symbols in all
        return _error(deps, ctx, conn_id, "symbols", str(exc))
    return _stored(deps, ctx, updated, "subscribed")


def _stored(
    deps: WebSocketDeps, ctx: dict[str, Any], updated: Connection, kind: str
) -> dict[str, Any]:
    """Store the changed subscription and acknowledge it with what it now is."""
    deps.connections.put(updated)
    ack = {"type": kind, **updated.subscription()}
    _reply(deps, ctx, updated.connection_id, ack)
    return _response(200, ack)


def unsubscribe(
    body_text: str | None, conn_id: str, ctx: dict[str, Any], deps: WebSocketDeps
) -> dict[str, Any]:
    try:
        body = _body(body_text)
        symbols = _symbols(body, required=False)
        strategies = _strategies(body)
    except _BadInput as exc:
        return _error(deps, ctx, conn_id, exc.field, str(exc))
    updated = unsubscribe_from(_current(deps, conn_id), symbols, strategies)
    return _stored(deps, ctx, updated, "unsubscribed")


def ping(
    body_text: str | None, conn_id: str, ctx: dict[str, Any], deps: WebSocketDeps
) -> dict[str, Any]:
    """The heartbeat: answered at once, nothing stored (a message from the client is what
    keeps API Gateway's idle timer from closing the connection)."""
    try:
        body = _body(body_text)
    except _BadInput:
        body = {}
    pong: dict[str, Any] = {
        "type": "pong",
        "at": deps.clock().isoformat(),
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "ping_every_s": PING_EVERY_S,
    }
    if "id" in body:
        pong["id"] = body["id"]
    _reply(deps, ctx, conn_id, pong)
    return _response(200, pong)


def connect(conn_id: str, deps: WebSocketDeps) -> dict[str, Any]:
    """$connect: stored, unless the cap is reached (429: API Gateway fails the upgrade)."""
    cap = deps.max_connections
    if cap > 0:
        try:
            open_now = deps.connections.count()
        except Exception as exc:  # cannot count: let the client in rather than lock all out
            log.warning("connection count failed: %s", exc)
            open_now = 0
        if open_now >= cap:
            return _response(
                429,
                {
                    "type": "error",
                    "code": "connection_limit",
                    "message": f"Too many connections: at most {cap} open at once; retry later",
                    "max_connections": cap,
                },
            )
    deps.connections.add(Connection(connection_id=conn_id))
    return _response(200, {"type": "connected"})


HANDLERS = {"subscribe": subscribe, "unsubscribe": unsubscribe, "ping": ping}


def route(event: dict[str, Any], deps: WebSocketDeps) -> dict[str, Any]:
    ctx = event.get("requestContext") or {}
    route_key = ctx.get("routeKey", "")
    conn_id = ctx.get("connectionId")
    if not conn_id:
        return _response(400, {"type": "error", "message": "requestContext.connectionId missing"})
    if route_key == "$connect":
        return connect(conn_id, deps)
    if route_key == "$disconnect":
        deps.connections.remove(conn_id)
        return _response(200, {"type": "disconnected"})
    action = route_key if route_key in HANDLERS else _action(event)
    handler = HANDLERS.get(action or "")
    if handler is not None:
        return handler(event.get("body"), conn_id, ctx, deps)
    return _error(deps, ctx, conn_id, "action", f"action: expected one of {', '.join(ROUTE_KEYS)}")


def _action(event: dict[str, Any]) -> str | None:
    try:
        body = json.loads(event.get("body") or "{}")
    except json.JSONDecodeError:
        return None
    action = body.get("action") if isinstance(body, dict) else None
    return action if isinstance(action, str) else None
