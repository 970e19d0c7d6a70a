"""Composition root of λ websocket: connections in the state table (capped), replies through
the Management API (MAGIC8_WS_ENDPOINT, else derived from the event's domain and stage)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from magic8.adapters.connections_dynamo import DynamoConnectionStore
from magic8.adapters.websocket_push import ApiGatewayPoster, management_url
from magic8.monitor.push import ConnectionPoster
from magic8.monitor.websocket_routes import DEFAULT_MAX_CONNECTIONS, WebSocketDeps
from magic8.settings import AwsSettings


class WebSocketSettings(AwsSettings):
    """Env MAGIC8_WS_ENDPOINT: the Management API endpoint (else derived from the event);
    MAGIC8_WS_MAX_CONNECTIONS: $connect refuses connections beyond this many (0: no cap)."""

    ws_endpoint: str = ""
    ws_max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, ge=0)


def build() -> WebSocketDeps:
    settings = WebSocketSettings()
    fixed = (
        ApiGatewayPoster(settings.ws_endpoint, settings.region) if settings.ws_endpoint else None
    )

    def poster_for(ctx: dict[str, Any]) -> ConnectionPoster | None:
        if fixed is not None:
            return fixed
        domain, stage = ctx.get("domainName"), ctx.get("stage")
        if not domain or not stage:
            return None
        return ApiGatewayPoster(management_url(domain, stage))

    return WebSocketDeps(
        DynamoConnectionStore(settings.state_table),
        poster_for,
        max_connections=settings.ws_max_connections,
    )
