"""Reading the gateway's heartbeat (magic8.domain.heartbeat) for the sweep's stale check."""

from __future__ import annotations

from datetime import datetime

from magic8.domain.heartbeat import HEARTBEAT_PK, HEARTBEAT_SK, GatewayHeartbeat
from magic8.domain.ports import KeyValueState


class StateHeartbeatReader:
    """HeartbeatReader over KeyValueState: the heartbeat item's `updated_at`."""

    def __init__(self, state: KeyValueState) -> None:
        self.state = state
        self.last: GatewayHeartbeat | None = None

    def read(self) -> GatewayHeartbeat | None:
        item = self.state.get(HEARTBEAT_PK, HEARTBEAT_SK)
        self.last = GatewayHeartbeat.from_item(item) if item else None
        return self.last

    def last_beat(self) -> datetime | None:
        beat = self.read()
        return beat.updated_at if beat else None
