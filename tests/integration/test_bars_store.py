"""NQ 5-minute bars on moto: the DynamoDB adapter, and the sample replay writing them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from magic8.adapters.aws import resource
from magic8.adapters.bars_dynamo import DynamoBarStore, epoch_ms
from magic8.domain.bars import Bar
from magic8.settings import AwsSettings
from magic8_dev.local.gateway_component import SAMPLE_SESSION
from magic8_dev.local.provision import LocalResources
from tests.integration.test_gateway_component import replayed_sample_day

pytestmark = pytest.mark.xdist_group("kinesis_producer")

T0 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)


def bar(i: int, close: float = 20_000.0, complete: bool = True) -> Bar:
    return Bar(
        start=T0 + timedelta(minutes=5 * i),
        open=close - 1.25,
        high=close + 2.5,
        low=close - 3.75,
        close=close,
        volume=100 + i,
        complete=complete,
    )


def test_upsert_query_latest_and_ttl(aws_resources: LocalResources) -> None:
    store = DynamoBarStore(AwsSettings().bars_table)
    assert store.latest("NQ") is None
    store.put([bar(0, complete=False)])
    store.put([bar(0, 20_001.5), *(bar(i, 20_000 + i) for i in range(1, 40))])  # batch
    got = store.query("NQ", T0, T0 + timedelta(hours=1), limit=100)
    assert [b.start for b in got] == [T0 + timedelta(minutes=5 * i) for i in range(12)]
    assert got[0] == bar(0, 20_001.5)  # the upsert replaced the partial bar
    assert store.query("NQ", T0, T0 + timedelta(hours=4), limit=5) == got[:5]
    assert store.query("ES", T0, T0 + timedelta(hours=4), limit=5) == []
    latest = store.latest("NQ")
    assert latest is not None and latest.start == T0 + timedelta(minutes=5 * 39)
    table = resource("dynamodb").Table(AwsSettings().bars_table)
    item = table.get_item(Key={"symbol": "NQ", "ts": epoch_ms(T0)})["Item"]
    assert 29 * 86400 < int(item["expires_at"]) - time.time() <= 30 * 86400
    # moto keeps expired items: reads skip them, as DynamoDB would after its TTL sweep
    table.update_item(
        Key={"symbol": "NQ", "ts": epoch_ms(latest.start)},
        UpdateExpression="SET expires_at = :t",
        ExpressionAttributeValues={":t": int(time.time()) - 1},
    )
    assert store.latest("NQ") == bar(38, 20_038)


def test_sample_replay_writes_shifted_bars_on_the_options_clock(
    aws_resources: LocalResources, moto_server, tmp_path: Path
) -> None:
    comp = replayed_sample_day(aws_resources, moto_server, tmp_path)
    assert comp.session is not None
    health = comp.session.health()
    assert health["futures"]["records"] == 390 and health["futures"]["errors"] == 0
    assert "NQ bars" in comp.status()
    assert comp.producer is not None
    shift = comp.producer.shift
    # the live shift: whole days plus a multiple of 5 minutes (bars keep their 5-minute grid)
    assert shift.days > 0 and shift % timedelta(minutes=5) == timedelta(0)
    open_utc = datetime(2025, 9, 16, 13, 30, tzinfo=UTC) + shift
    bars = DynamoBarStore(AwsSettings().bars_table).query(
        "NQ", open_utc - timedelta(hours=1), open_utc + timedelta(hours=8), limit=500
    )
    assert len(bars) == 78  # 6.5 hours of 5-minute bars
    assert bars[0].start == open_utc and all(b.complete for b in bars)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    # the episodes' price moves are in the bars: LONG episodes end higher than they began
    truth = json.loads((SAMPLE_SESSION / "truth.json").read_text())
    for e in (e for e in truth["episodes"] if e["day"] == "2025-09-16"):
        start = datetime.fromisoformat(e["start"]) + shift
        end = datetime.fromisoformat(e["end"]) + shift
        during = [b for b in bars if start <= b.start < end]
        move = during[-1].close - during[0].open
        assert (move > 0) == (e["direction"] == "LONG"), (e, move)
    beat = comp.heartbeat()
    assert beat.spend["streaming_budget_usd"] == 25.0 and beat.spend["streaming_usd"] > 0
