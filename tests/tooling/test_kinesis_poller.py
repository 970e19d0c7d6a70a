"""The Kinesis event-source emulator's Lambda semantics, with in-process fakes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from magic8_dev.local.kinesis_poller import EventSourceConfig, KinesisEventSourceEmulator


class FakeKinesis:
    def __init__(self, payloads: list[bytes], page: int) -> None:
        self.records = [
            {
                "Data": p,
                "SequenceNumber": f"{1000 + i:056d}",
                "PartitionKey": str(i % 7),
                "ApproximateArrivalTimestamp": datetime(2025, 9, 15, tzinfo=UTC),
            }
            for i, p in enumerate(payloads)
        ]
        self.page = page

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {"StreamDescriptionSummary": {"StreamARN": f"arn:aws:kinesis:::stream/{StreamName}"}}

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "shardId-000000000000"}]}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator)
        end = start + min(Limit, self.page)
        return {
            "Records": self.records[start:end],
            "NextShardIterator": str(min(end, len(self.records))),
        }


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent.append(json.loads(MessageBody))


class Handler:
    """Fails records whose data is b'bad' (partial response) or raises on b'boom'."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.ok: list[bytes] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.get_remaining_time_in_millis() > 0
        recs = event["Records"]
        data = [base64.b64decode(r["kinesis"]["data"]) for r in recs]
        self.calls.append(data)
        for r in recs:
            assert r["eventSource"] == "aws:kinesis"
            assert r["eventID"] == f"shardId-000000000000:{r['kinesis']['sequenceNumber']}"
        if b"boom" in data:
            raise RuntimeError("boom")
        self.ok.extend(d for d in data if d != b"bad")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["kinesis"]["sequenceNumber"]}
                for r, d in zip(recs, data, strict=True)
                if d == b"bad"
            ]
        }


@pytest.mark.parametrize("poison", [b"bad", b"boom"])
def test_poison_is_bisected_retried_then_sent_to_the_on_failure_queue(poison: bytes) -> None:
    payloads = [f"r{i}".encode() for i in range(40)]
    payloads[17] = poison
    handler, sqs = Handler(), FakeSqs()
    em = KinesisEventSourceEmulator(
        "flow",
        handler,
        "queue",
        EventSourceConfig(batch_size=20, max_retries=2),
        kinesis=FakeKinesis(payloads, page=20),
        sqs=sqs,
    )
    em.drain()
    assert em.stats.polled == 40
    assert em.stats.processed == 39
    assert em.stats.discarded == 1 and len(sqs.sent) == 1
    info = sqs.sent[0]["KinesisBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == f"{1017:056d}"
    assert sqs.sent[0]["requestContext"]["approximateInvokeCount"] == 3  # 1 + 2 retries
    # the poison was finally invoked alone, 3 times
    assert sum(1 for c in handler.calls if c == [poison]) == 3
    # every good record was processed (some more than once: redelivery after a failure)
    assert set(handler.ok) == set(payloads) - {poison}


def test_clean_stream_is_one_invocation_per_batch() -> None:
    payloads = [f"r{i}".encode() for i in range(250)]
    handler = Handler()
    em = KinesisEventSourceEmulator(
        "flow", handler, None, EventSourceConfig(batch_size=100), kinesis=FakeKinesis(payloads, 100)
    )
    em.drain()
    assert [len(c) for c in handler.calls] == [100, 100, 50]
    assert em.stats.processed == 250 and em.stats.retries == 0


class FlakySqs(FakeSqs):
    """Unreachable while `down` (every send raises), then takes messages again."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.failed = 0

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        if self.down:
            self.failed += 1
            raise ConnectionError("on-failure queue unreachable")
        super().send_message(QueueUrl, MessageBody)


def test_an_outage_of_the_on_failure_queue_loses_no_record() -> None:
    from magic8_dev.local.kinesis_poller import ParkFailed

    payloads = [f"r{i}".encode() for i in range(300)]
    poison = {17, 18, 150, 299}
    for i in poison:
        payloads[i] = b"bad" if i % 2 else b"boom"
    handler, sqs = Handler(), FlakySqs()
    em = KinesisEventSourceEmulator(
        "flow",
        handler,
        "queue",
        EventSourceConfig(batch_size=50, max_retries=1, park_attempts=3),
        kinesis=FakeKinesis(payloads, page=50),
        sqs=sqs,
        sleep=lambda _s: None,
    )
    with pytest.raises(ParkFailed):
        em.drain()
    # the shard did not move past the batch holding the first poison record
    assert em._iterators["shardId-000000000000"] == "0"
    assert sqs.failed == 3 and em.stats.discarded == 0 and em.stats.processed == 17
    sqs.down = False
    em.drain()
    # every record counted exactly once: processed or parked, nothing in between
    assert em.stats.polled == 300
    assert em.stats.processed == 300 - len(poison)
    assert em.stats.discarded == len(poison) == len(sqs.sent)
    parked = sorted(int(m["KinesisBatchInfo"]["startSequenceNumber"]) - 1000 for m in sqs.sent)
    assert parked == sorted(poison)
    assert set(handler.ok) == {p for i, p in enumerate(payloads) if i not in poison}
    assert em.stats.rereads >= 50  # the unfinished batch was read again
