"""Kinesis ProvisionedThroughputExceeded on PutRecords: the gateway producer drops nothing."""

from __future__ import annotations

import json

import boto3
import pytest

from magic8.adapters.kinesis_flow import KinesisFlowProducer
from magic8_dev.local.provision import LocalResources
from magic8_dev.resilience.fault_proxy import FaultProxy, FaultRule
from magic8_dev.resilience.table import ResilienceRow, budget, record
from tests.resilience.conftest import sample_day_windows
from tests.streams import kinesis_records

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-kinesis_faults")]


def _read_stream(stream: str) -> list[dict[str, object]]:
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    return [
        {"key": r["PartitionKey"], "window": json.loads(r["Data"])}
        for r in kinesis_records(kinesis, stream)
    ]


def test_put_records_partial_failures_and_throttles_lose_nothing(
    aws_resources: LocalResources, fault_proxy: FaultProxy
) -> None:
    windows = sample_day_windows(days=1 if budget() == "quick" else 3)
    assert len(windows) > 100
    # 30% of entries fail individually on every PutRecords call, and some whole calls throttle
    fault_proxy.add(FaultRule("kinesis", "PutRecords", "throttle", rate=0.15))
    fault_proxy.add(FaultRule("kinesis", "PutRecords", "partial_failure", rate=1.0))
    client = boto3.client(
        "kinesis",
        endpoint_url=fault_proxy.endpoint_url,
        region_name="us-east-1",
        config=boto3.session.Config(retries={"total_max_attempts": 1}),
    )
    producer = KinesisFlowProducer(
        aws_resources.settings.flow_stream,
        client=client,
        max_attempts=50,
        base_delay_s=0.001,
        max_delay_s=0.01,
    )
    for i in range(0, len(windows), 97):  # the gateway sends as windows close
        producer.send(windows[i : i + 97])
    producer.flush()
    stored = _read_stream(aws_resources.settings.flow_stream)
    injected = sum(fault_proxy.stats.injected.values()) + fault_proxy.stats.failed_entries
    keys = [(w["window"]["instrument_id"], w["window"]["window_start"]) for w in stored]
    row = record(
        ResilienceRow(
            scenario="kinesis PutRecords throttling + partial failures (gateway producer)",
            injected=injected,
            survived=producer.pending == 0,
            records_in=len(windows),
            records_out=len(set(keys)),
        )
    )
    assert injected > 10
    assert producer.pending == 0
    assert len(stored) == len(windows), "every window stored exactly once"
    assert len(set(keys)) == len(windows)
    assert row.nothing_lost
    # order per partition key is kept: a strike's windows arrive in time order
    by_key: dict[str, list[str]] = {}
    for w in stored:
        by_key.setdefault(str(w["key"]), []).append(str(w["window"]["window_start"]))
    for starts in by_key.values():
        assert starts == sorted(starts)
