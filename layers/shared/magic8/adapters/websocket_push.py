"""Deliver WebSocket messages through API Gateway's Management API (post_to_connection).

In AWS the endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage}; on the
embedded default the local WebSocket server (magic8_dev.local.monitor_timer) serves the same
API (POST /@connections/{id}), so this one adapter is used in both places.
GoneException (410) means the client left: post() returns False and the caller deletes it.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from magic8.adapters.aws import client
from magic8.monitor.push import SubscriptionPush


class ApiGatewayPoster:
    """ConnectionPoster over apigatewaymanagementapi."""

    def __init__(
        self, endpoint_url: str, region: str | None = None, api: Any | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._api = api

    @property
    def api(self) -> Any:
        if self._api is None:
            # a push is best effort: fail fast rather than hold the sweep or the ifd batch
            self._api = client("apigatewaymanagementapi", self.region, self.endpoint_url, fast=True)
        return self._api

    def post(self, connection_id: str, data: bytes) -> bool:
        try:
            self.api.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                return False
            raise
        return True


def build_subscription_push(
    state_table: str, endpoint_url: str, region: str | None = None
) -> SubscriptionPush:
    """Push to subscribed WebSocket clients (connections in the state table).

    For producers: the monitor pushes each sweep's ConfidenceUpdates; the ifd function can
    push signals with `build_subscription_push(...).push([ifd_signal_message(s), ...])`.
    """
    from magic8.adapters.connections_dynamo import DynamoConnectionStore

    return SubscriptionPush(
        DynamoConnectionStore(state_table), ApiGatewayPoster(endpoint_url, region)
    )


def management_url(domain_name: str, stage: str) -> str:
    """The Management API endpoint for a WebSocket API request context."""
    return f"https://{domain_name}/{stage}"
