"""λ websocket: API Gateway WebSocket API routes $connect, $disconnect, subscribe,
unsubscribe, ping and $default
(magic8.monitor.websocket_routes), with dependencies built on first use."""

from __future__ import annotations

from typing import Any

from functions.websocket.deps import build
from magic8.monitor.websocket_routes import route
from magic8.wiring import Lazy

_deps = Lazy(build)
reset = _deps.reset  # the local runtime starts the function cold; tests


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return route(event, _deps())
