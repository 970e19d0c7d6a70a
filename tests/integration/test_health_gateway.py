"""/health/detailed reports the gateway heartbeat; the local replay writes one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.predict.deps import build_handler
from magic8.adapters.aws import resource
from magic8.domain.heartbeat import GatewayHeartbeat
from magic8_dev.local.api_front import LambdaContext, apigw_event
from magic8_dev.local.gateway_component import GatewayReplayComponent
from magic8_dev.local.provision import LocalResources


def _detailed() -> dict[str, Any]:
    handler = build_handler()
    resp = handler(apigw_event("GET", "/health/detailed", None, {}), LambdaContext())
    assert resp["statusCode"] == 200
    return dict(json.loads(resp["body"]))


def _put(beat: GatewayHeartbeat, res: LocalResources) -> None:
    resource("dynamodb").Table(res.settings.state_table).put_item(Item=beat.to_item())


def test_fresh_heartbeat_is_reported(aws_resources: LocalResources) -> None:
    now = datetime.now(UTC)
    _put(
        GatewayHeartbeat(
            updated_at=now,
            last_mbo_at=now,
            ib_state="connected",
            databento_state="streaming",
            spend={"day": "2026-12-03", "streaming_usd": 1.5, "streaming_budget_usd": 25.0},
            healthy=True,
        ),
        aws_resources,
    )
    out = _detailed()
    assert out["gateway"]["available"] is True
    # the spend ledger rides on the heartbeat to the dashboard's spend panel
    assert out["gateway"]["spend"] == {
        "day": "2026-12-03",
        "streaming_usd": 1.5,
        "streaming_budget_usd": 25,
    }
    assert out["gateway"]["ib_state"] == "connected"
    assert out["gateway"]["age_s"] < 60
    # the feed's exchange is CME Globex: its session now is part of the gateway's health
    assert out["gateway"]["session"]["exchange"] == "CME Globex"
    assert out["gateway"]["session"]["session"] in {"regular", "early_close", "closed"}
    assert not any(p.startswith("gateway") for p in out["problems"])


def test_stale_or_missing_heartbeat_is_a_problem(aws_resources: LocalResources) -> None:
    assert _detailed()["gateway"] == {"available": False, "reachable": True}
    old = datetime.now(UTC) - timedelta(minutes=10)
    _put(GatewayHeartbeat(updated_at=old, healthy=True), aws_resources)
    out = _detailed()
    assert out["status"] == "degraded"
    assert any(p.startswith("gateway: stale") for p in out["problems"])


class _ReplayingSession:
    def __init__(self) -> None:
        self.records = 0

    def health(self) -> dict[str, Any]:
        return {
            "state": "replaying",
            "mode": "replay",
            "records_seen": self.records,
            "healthy": True,
        }


def test_local_replay_heartbeat_tracks_delivered_records(aws_resources: LocalResources) -> None:
    component = GatewayReplayComponent()
    component.session = _ReplayingSession()
    first = component.heartbeat()
    assert first.last_mbo_at is None and first.ib_state == "disabled"
    component.session.records = 500
    second = component.heartbeat()
    assert second.last_mbo_at is not None and second.healthy
    component._write_heartbeat(final=True)
    item = (
        resource("dynamodb")
        .Table(aws_resources.settings.state_table)
        .get_item(Key={"pk": "heartbeat", "sk": "gateway"})["Item"]
    )
    assert GatewayHeartbeat.from_item(item).final is True
