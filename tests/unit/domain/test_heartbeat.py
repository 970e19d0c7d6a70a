"""GatewayHeartbeat: the state-table item the gateway writes and the monitor reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from magic8.domain.heartbeat import HEARTBEAT_PK, HEARTBEAT_SK, GatewayHeartbeat

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def beat() -> GatewayHeartbeat:
    return GatewayHeartbeat(
        updated_at=NOW,
        last_quote_at=NOW - timedelta(seconds=2),
        last_mbo_at=None,
        ib_state="connected",
        databento_state="streaming",
        connections={"ib": "connected", "databento": "streaming"},
        pacing={"requests_in_window": 7, "limit": 60, "blocked_for_s": 0.5},
        backfill_budget_used=1.25,
        healthy=True,
    )


def test_item_shape_and_ttl() -> None:
    item = beat().to_item(ttl_seconds=600)
    assert item["pk"] == HEARTBEAT_PK and item["sk"] == HEARTBEAT_SK
    assert item["expires_at"] == int(NOW.timestamp()) + 600
    assert item["updated_ts"] == int(NOW.timestamp())
    assert "last_mbo_at" not in item  # no None values in a DynamoDB item
    assert item["pacing"]["blocked_for_s"] == Decimal("0.5")
    assert item["backfill_budget_used"] == Decimal("1.25")


def test_round_trip_from_decimal_and_plain_numbers() -> None:
    item = beat().to_item()
    assert GatewayHeartbeat.from_item(item) == beat()
    plain = {
        k: (float(v) if isinstance(v, Decimal) else v) for k, v in item.items()
    }  # what DynamoKeyValueState.get returns after from_dynamo
    plain["pacing"] = {"requests_in_window": 7, "limit": 60, "blocked_for_s": 0.5}
    assert GatewayHeartbeat.from_item(plain) == beat()


def test_ages() -> None:
    b = beat()
    assert b.age_seconds(NOW + timedelta(seconds=30)) == 30
    assert b.quote_age_seconds(NOW) == 2
    assert b.mbo_age_seconds(NOW) is None


def test_spend_round_trips_with_flags_strings_and_numbers() -> None:
    spend = {
        "day": "2026-11-20",
        "streaming_usd": 3.25,
        "streaming_budget_usd": 25.0,
        "backfill_usd": 0.0,
        "streaming_over_budget": False,
        "backfill_stopped": True,
    }
    b = beat().model_copy(update={"spend": spend})
    item = b.to_item()
    assert item["spend"]["streaming_usd"] == Decimal("3.25")
    assert item["spend"]["backfill_stopped"] is True
    back = GatewayHeartbeat.from_item(item)
    assert back.spend == spend
    assert back.spend["streaming_over_budget"] is False  # a flag stays a flag, not 0
    assert GatewayHeartbeat.from_item(beat().to_item()).spend == {}
