"""KinesisFlowProducer against the moto server: splitting, partial-failure retries, order."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from magic8.adapters.aws import client
from magic8.adapters.kinesis_flow import KinesisFlowProducer
from magic8.domain.flow import PressureWindow
from magic8.settings import AwsSettings
from magic8_dev.local.provision import LocalResources
from tests.factories import numbered_window

pytestmark = pytest.mark.xdist_group("kinesis_producer")
T0 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)


def window(iid: int, k: int) -> PressureWindow:
    return numbered_window(iid, k, T0, strike=20000.0)


class Recording:
    """The real moto client, recording calls; fails chosen entries on their first attempt."""

    def __init__(self, real: Any, fail: set[tuple[str, str]] | None = None) -> None:
        self.real = real
        self.fail = fail or set()
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        ids = [(r["PartitionKey"], json.loads(r["Data"])["window_start"]) for r in Records]
        failing = [i in self.fail for i in ids]
        for i, f in zip(ids, failing, strict=True):
            if f:
                self.fail.discard(i)  # fails once
        ok = [r for r, f in zip(Records, failing, strict=True) if not f]
        real = self.real.put_records(StreamName=StreamName, Records=ok)["Records"] if ok else []
        it = iter(real)
        out = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
            if f
            else next(it)
            for f in failing
        ]
        return {"FailedRecordCount": sum(failing), "Records": out}


def read_stream(stream: str) -> list[dict[str, Any]]:
    k = client("kinesis")
    shards = k.list_shards(StreamName=stream)["Shards"]
    out: list[dict[str, Any]] = []
    for shard in shards:
        it = k.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = k.get_records(ShardIterator=it, Limit=10_000)
            out.extend(page["Records"])
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return out


def test_more_than_500_records_are_split(aws_resources: LocalResources) -> None:
    stream = AwsSettings().flow_stream
    rec = Recording(client("kinesis"))
    producer = KinesisFlowProducer(stream, client=rec)
    windows = [window(iid, 0) for iid in range(1200)]
    assert producer.send(windows) == 1200
    assert [len(c) for c in rec.calls] == [500, 500, 200]
    got = read_stream(stream)
    assert len(got) == 1200
    assert {r["PartitionKey"] for r in got} == {str(i) for i in range(1200)}
    assert producer.stats["sent"] == 1200 and producer.pending == 0


def test_partial_failures_retry_only_failed_and_keep_order(aws_resources: LocalResources) -> None:
    stream = AwsSettings().flow_stream
    windows = [window(iid, k) for k in range(6) for iid in range(40)]
    rng = random.Random(7)
    fail = {
        (w.partition_key(), w.window_start.isoformat().replace("+00:00", "Z"))
        for w in rng.sample(windows, 30)
    }
    rec = Recording(client("kinesis"), fail=set(fail))
    sleeps: list[float] = []
    producer = KinesisFlowProducer(stream, client=rec, sleep=sleeps.append, rng=random.Random(1))
    assert producer.send(windows) == len(windows)
    # each call carries one record per key, so a failure can never be overtaken
    for call in rec.calls:
        keys = [r["PartitionKey"] for r in call]
        assert len(keys) == len(set(keys))
    # retried entries are exactly the failed ones: everything sent once, failed ones twice
    sent = [
        (r["PartitionKey"], json.loads(r["Data"])["window_start"]) for c in rec.calls for r in c
    ]
    assert len(sent) == len(windows) + len(fail)
    assert producer.stats["failed"] == len(fail) == producer.stats["retried"]
    assert sleeps and all(s >= 0 for s in sleeps)
    got = read_stream(stream)
    assert len(got) == len(windows)  # nothing lost, nothing duplicated
    by_key: dict[str, list[str]] = {}
    for r in got:
        by_key.setdefault(r["PartitionKey"], []).append(json.loads(r["Data"])["window_start"])
    for starts in by_key.values():
        assert starts == sorted(starts) and len(starts) == 6


def test_never_drops_when_the_stream_keeps_failing(aws_resources: LocalResources) -> None:
    class Down:
        def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
            return {"Records": [{"ErrorCode": "InternalFailure"} for _ in Records]}

    producer = KinesisFlowProducer("x", client=Down(), max_attempts=3, sleep=lambda _s: None)
    assert producer.send([window(1, 0), window(1, 1), window(2, 0)]) == 0
    assert producer.pending == 3
    # the stream recovers: the pending records go out, in order
    stream = AwsSettings().flow_stream
    producer.stream_name = stream
    producer._client = client("kinesis")
    producer.flush()
    assert producer.pending == 0
    got = read_stream(stream)
    assert [(r["PartitionKey"], json.loads(r["Data"])["window_start"][11:16]) for r in got] == [
        ("1", "13:30"),
        ("2", "13:30"),
        ("1", "13:35"),
    ]
