"""SNS publish failures and redelivery under the ifd function: no alert lost, none doubled."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

import functions.ifd.handler as ifd
from magic8.adapters.aws import reset_clients
from magic8.settings import AwsSettings
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import LocalResources, provision
from magic8_dev.resilience.fault_proxy import FaultProxy, FaultRule
from magic8_dev.resilience.table import ResilienceRow, budget, record
from tests.integration.test_ifd_handler import (
    alert_messages,
    episode_session,
    events,
    invoke,
    payloads_of,
)

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-ifd_faults")]

STRIKES = (20100, 20125, 20150, 20175)


def _fresh(moto: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, endpoint: str) -> LocalResources:
    moto.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    reset_clients()
    res = provision(AwsSettings())
    for key, value in res.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    reset_clients()
    ifd.reset()
    return res


def _deliver_like_lambda(event: dict[str, Any], max_attempts: int = 20) -> int:
    """Invoke; on batch item failures retry from the first failed record (Lambda's
    ReportBatchItemFailures semantics). Returns the number of retries needed."""
    records = event["Records"]
    for attempt in range(max_attempts):
        failures = invoke({"Records": records})["batchItemFailures"]
        if not failures:
            return attempt
        first = min(f["itemIdentifier"] for f in failures)
        records = [r for r in records if r["kinesis"]["sequenceNumber"] >= first]
    raise AssertionError("records still failing after retries")


def _run(days: list[list[bytes]]) -> tuple[int, int]:
    retries = records = 0
    seq = 1
    for payloads in days:
        for event in events(payloads, batch_size=100, first_seq=seq):
            retries += _deliver_like_lambda(event)
            records += len(event["Records"])
        seq += 10_000
    return records, retries


def _keys(messages: list[dict[str, Any]]) -> list[str]:
    return [json.loads(m["Message"])["dedupe_key"] for m in messages]


def test_sns_failures_and_redelivery_lose_and_double_nothing(
    moto_server: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, fault_proxy: FaultProxy
) -> None:
    history, today = episode_session(random.Random(21), STRIKES)
    days = [payloads_of(history), payloads_of(today)]

    # reference: the same flow with nothing failing
    res = _fresh(moto_server, monkeypatch, moto_server.endpoint_url)
    _run(days)
    expected = _keys(alert_messages(res.alerts_queue_url))
    assert expected, "the episode alerts"

    # the same flow with SNS failing: whole-publish errors and throttles
    res = _fresh(moto_server, monkeypatch, fault_proxy.endpoint_url)
    fault_proxy.add(FaultRule("sns", "Publish", "server_error", remaining=30))
    fault_proxy.add(FaultRule("sns", "Publish", "throttle", rate=0.3))
    records, retries = _run(days)
    redeliveries = 2 if budget() == "quick" else 5
    for _ in range(redeliveries):  # Kinesis redelivers today's records
        _run([days[1]])
    sent = _keys(alert_messages(res.alerts_queue_url))
    injected = fault_proxy.stats.injected["sns:Publish"]
    reset_clients()
    row = record(
        ResilienceRow(
            scenario=f"SNS publish 5xx/throttling + {redeliveries} redeliveries (ifd)",
            injected=injected,
            survived=True,
            records_in=records,
            records_out=records,
            alerts_expected=len(expected),
            alerts_sent=len(sent),
            note=f"{retries} batch retries from the first failed record",
        )
    )
    assert injected >= 30
    assert retries >= 1, "a publish that kept failing failed its record, which was retried"
    assert sorted(sent) == sorted(expected), "every alert exactly once"
    assert max(Counter(sent).values()) == 1
    assert row.nothing_lost
