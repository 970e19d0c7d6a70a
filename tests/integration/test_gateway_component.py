"""GatewayReplayComponent: the sample session replayed through DatabentoSession into Kinesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from magic8.adapters.aws import client
from magic8.domain.flow import PressureWindow
from magic8.settings import AwsSettings
from magic8_dev.local.context import LocalContext
from magic8_dev.local.gateway_component import SAMPLE_SESSION, GatewayReplayComponent
from magic8_dev.local.provision import LocalResources

pytestmark = pytest.mark.xdist_group("kinesis_producer")


def replayed_sample_day(
    aws_resources: LocalResources, moto_server: Any, tmp_path: Path
) -> GatewayReplayComponent:
    """The gateway component after replaying the sample's 2025-09-16 as fast as it can."""
    day = SAMPLE_SESSION / "day-2025-09-16"
    comp = GatewayReplayComponent(paths=(str(day),), speed=0.0, loop=False)
    ctx = LocalContext(aws=moto_server, resources=aws_resources, repo_root=tmp_path)
    comp.start(ctx)
    assert comp.session is not None and comp.session.wait_replay(60)
    comp.stop()
    return comp


def test_replays_sample_day_into_the_flow_stream(
    aws_resources: LocalResources, moto_server, tmp_path: Path
) -> None:
    comp = replayed_sample_day(aws_resources, moto_server, tmp_path)
    assert comp.session is not None
    health = comp.session.health()
    assert health["state"] == "done" and health["windows_sent"] == health["windows_emitted"] > 0
    assert "windows sent" in comp.status()

    k = client("kinesis")
    stream = AwsSettings().flow_stream
    shard = k.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = k.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    got: list[PressureWindow] = []
    while it:
        page = k.get_records(ShardIterator=it, Limit=10_000)
        got.extend(PressureWindow.model_validate_json(r["Data"]) for r in page["Records"])
        if not page["Records"]:
            break
        it = page["NextShardIterator"]
    assert len(got) == health["windows_emitted"]
    truth = json.loads((SAMPLE_SESSION / "truth.json").read_text())
    episodes = [e for e in truth["episodes"] if e["day"] == "2025-09-16"]
    assert episodes
    strikes = {s for e in episodes for s in e["strikes"]}
    assert strikes & {w.strike for w in got}
    assert {w.source for w in got} == {"replay"}
