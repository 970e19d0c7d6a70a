"""The ifd handler against the moto server: poison isolation, on-failure queue, idempotent
alerts under redelivery, the hourly alert cap, store/alert thresholds."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from functions.ifd import handler as ifd
from magic8.adapters.aws import client
from magic8.adapters.dynamo_state import DynamoAlertRateLimiter
from magic8.adapters.signals_dynamo import DynamoSignalStore
from magic8.domain.flow import PressureWindow
from magic8.ifd.calibration import load_calibration
from magic8.ifd.ports import SignalQuery
from magic8_dev.local.kinesis_poller import (
    EventSourceConfig,
    FakeLambdaContext,
    KinesisEventSourceEmulator,
)
from magic8_dev.local.provision import LocalResources
from tests.factories import STRIKES, kinesis_record, merge, one_sided, quiet_windows, session_start

pytestmark = pytest.mark.xdist_group("ifd-moto")


@pytest.fixture()
def fresh_handler(aws_resources: LocalResources) -> Iterator[LocalResources]:
    ifd.reset()
    yield aws_resources
    ifd.reset()


def record(payload: bytes, seq: int, shard: str = "shardId-000000000000") -> dict[str, Any]:
    return kinesis_record(payload, seq, shard, partition_key="200001")


def events(payloads: list[bytes], batch_size: int = 100, first_seq: int = 1) -> list[dict]:
    recs = [record(p, first_seq + i) for i, p in enumerate(payloads)]
    return [{"Records": recs[i : i + batch_size]} for i in range(0, len(recs), batch_size)]


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return ifd.handler(event, FakeLambdaContext())


def poison_payloads(template: PressureWindow) -> list[bytes]:
    good = template.model_dump(mode="json")
    nan = dict(good, bid_volume=float("nan"))
    return [
        b'{"schema_version": 1, "instrument_id": ',  # bad JSON
        json.dumps(dict(good, schema_version=99)).encode(),  # unknown schema version
        json.dumps(nan).encode(),  # NaN (json.dumps writes the NaN literal)
        json.dumps(dict(good, ask_volume=-5.0)).encode(),  # negative volume
    ]


def with_poison(rng: random.Random, n_good: int) -> tuple[list[bytes], set[int]]:
    """n_good quiet windows with 1% poison records spread through them."""
    groups = quiet_windows(session_start("2025-09-15"), 30, rng)
    good = [w.model_dump_json().encode() for g in groups for w in g][:n_good]
    assert len(good) == n_good
    bad = poison_payloads(groups[0][0])
    payloads = list(good)
    positions = sorted(rng.sample(range(n_good), len(bad)))
    for offset, (pos, p) in enumerate(zip(positions, bad, strict=True)):
        payloads.insert(pos + offset, p)
    poison_idx = {i for i, p in enumerate(payloads) if p in bad}
    return payloads, poison_idx


def alert_messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return out
        out.extend(json.loads(m["Body"]) for m in got)


def test_poison_records_fail_alone(fresh_handler: LocalResources) -> None:
    payloads, poison = with_poison(random.Random(4), 396)
    assert len(payloads) == 400 and len(poison) == 4
    failed: set[str] = set()
    for event in events(payloads):
        failed |= {f["itemIdentifier"] for f in invoke(event)["batchItemFailures"]}
    assert failed == {f"{i + 1:056d}" for i in poison}


def test_poller_sends_poison_to_on_failure_queue(fresh_handler: LocalResources) -> None:
    res = fresh_handler
    payloads, poison = with_poison(random.Random(5), 396)
    kinesis = client("kinesis")
    seqs: list[str] = []
    for i in range(0, len(payloads), 200):
        out = kinesis.put_records(
            StreamName=res.settings.flow_stream,
            Records=[{"Data": p, "PartitionKey": "200001"} for p in payloads[i : i + 200]],
        )
        assert out["FailedRecordCount"] == 0
        seqs.extend(r["SequenceNumber"] for r in out["Records"])
    emulator = KinesisEventSourceEmulator(
        res.settings.flow_stream,
        ifd.handler,
        res.ifd_failure_queue_url,
        EventSourceConfig(batch_size=100, max_retries=1),
    )
    emulator.drain()
    assert emulator.stats.polled == 400
    assert emulator.stats.processed == 396
    assert emulator.stats.discarded == 4
    dlq = alert_messages(res.ifd_failure_queue_url)
    assert len(dlq) == 4
    infos = [m["KinesisBatchInfo"] for m in dlq]
    assert all(i["batchSize"] == 1 for i in infos)
    assert {i["startSequenceNumber"] for i in infos} == {seqs[i] for i in poison}
    assert all(m["requestContext"]["condition"] == "RetryAttemptsExhausted" for m in dlq)
    assert all(i["streamArn"].endswith(f"stream/{res.settings.flow_stream}") for i in infos)


def episode_session(
    rng: random.Random, strikes: tuple[int, ...], windows: int = 8
) -> tuple[list[PressureWindow], list[PressureWindow]]:
    """Day 1 quiet (history); day 2: quiet plus call buying at `strikes` from 14:00."""
    history = [w for g in quiet_windows(session_start("2025-09-15"), 12, rng) for w in g]
    start = session_start("2025-09-16")
    background = quiet_windows(start, 6 + windows, rng)
    flow = [
        w
        for k in strikes
        for w in one_sided(k, "C", start + timedelta(minutes=30), windows, buy=True, size=200)
    ]
    return history, merge(background, flow)


def payloads_of(windows: list[PressureWindow]) -> list[bytes]:
    return [w.model_dump_json().encode() for w in windows]


def test_redelivery_sends_no_extra_alert(fresh_handler: LocalResources) -> None:
    res = fresh_handler
    history, today = episode_session(random.Random(6), (20100, 20125, 20150))
    for event in events(payloads_of(history), batch_size=500):
        assert invoke(event)["batchItemFailures"] == []
    today_events = events(payloads_of(today), batch_size=100, first_seq=10_000)
    for event in today_events:
        assert invoke(event)["batchItemFailures"] == []
    first = alert_messages(res.alerts_queue_url)
    assert first, "the episode should alert"
    assert {json.loads(m["Message"])["kind"] for m in first} == {"ifd_signal"}
    attrs = first[0]["MessageAttributes"]
    assert {attrs[k]["Value"] for k in ("kind", "symbol")} == {"ifd_signal", "NQZ5"}
    assert attrs["severity"]["Value"] in ("warning", "critical")

    for _ in range(3):  # Kinesis redelivers the whole day three times
        for event in today_events:
            assert invoke(event)["batchItemFailures"] == []
    assert alert_messages(res.alerts_queue_url) == []

    # even with the option state lost (a crash between publish and state save), the
    # Powertools idempotency record keyed on the window stops a second publish
    state = client("dynamodb")
    items = state.scan(TableName=res.settings.state_table)["Items"]
    for it in items:
        if it["pk"]["S"].startswith("ifd#opt#"):
            state.delete_item(
                TableName=res.settings.state_table, Key={"pk": it["pk"], "sk": it["sk"]}
            )
    for event in today_events:
        assert invoke(event)["batchItemFailures"] == []
    assert alert_messages(res.alerts_queue_url) == []


def test_thresholds_and_hourly_cap(
    fresh_handler: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = fresh_handler
    monkeypatch.setenv("MAGIC8_IFD_REALERT_MINUTES", "0")  # every window may alert again
    ifd.reset()
    history, today = episode_session(random.Random(7), STRIKES, windows=7)
    for event in events(payloads_of(history), batch_size=500):
        assert invoke(event)["batchItemFailures"] == []
    for event in events(payloads_of(today), batch_size=100, first_seq=10_000):
        assert invoke(event)["batchItemFailures"] == []

    store = DynamoSignalStore(res.settings.signals_table)
    day = session_start("2025-09-16")
    signals = store.query(SignalQuery(day, day + timedelta(hours=8), underlying="NQZ5"))
    assert signals and all(s.confidence >= 0.7 for s in signals)
    sent = [s for s in signals if s.alert_status == "sent"]
    limited = [s for s in signals if s.alert_status == "rate_limited"]
    alert = load_calibration().alert_threshold  # fitted to the false-alarm budget
    assert all(s.confidence >= alert for s in sent + limited)
    assert all(s.confidence < alert for s in signals if s.alert_status == "none")
    hour = "2025-09-16T14"
    in_hour = [s for s in sent if s.window_end.strftime("%Y-%m-%dT%H") == hour]
    assert len(in_hour) == 50  # the cap
    assert len([s for s in limited if s.window_end.strftime("%Y-%m-%dT%H") == hour]) > 0
    counts = DynamoAlertRateLimiter(res.settings.state_table).counts(hour)
    assert counts["taken"] == 50
    assert counts["excess"] == len(
        [s for s in limited if s.window_end.strftime("%Y-%m-%dT%H") == hour]
    )
    messages = alert_messages(res.alerts_queue_url)
    assert len(messages) == len(sent)
    # by_day index: the same signals without naming the underlying
    assert {s.signal_id for s in store.query(SignalQuery(day, day + timedelta(hours=8)))} == {
        s.signal_id for s in signals
    }
