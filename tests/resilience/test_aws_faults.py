"""DynamoDB throttling and 5xx under the predict API: answers degrade, never 5xx."""

from __future__ import annotations

import json
import math
import time

import pytest

from functions.predict.deps import build_handler
from magic8.adapters.aws import reset_clients
from magic8.settings import AwsSettings
from magic8_dev.local.api_front import LambdaContext, apigw_event
from magic8_dev.local.provision import LocalResources
from magic8_dev.ml.seed import seed_market
from magic8_dev.resilience.fault_proxy import FaultProxy, FaultRule
from magic8_dev.resilience.loadgen import batch_body
from magic8_dev.resilience.table import ResilienceRow, budget, record

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-aws_faults")]

SEEDED = ("SPX", "NDX", "SPY", "QQQ", "XSP")


def _batch(handler, seed: int) -> tuple[int, int, list[dict[str, object]]]:  # type: ignore[no-untyped-def]
    body = json.loads(batch_body(32, seed=seed))
    body["requests"] = [r for r in body["requests"] if r["symbol"] in SEEDED]
    event = apigw_event(
        "POST",
        "/predict/batch",
        json.dumps(body),
        {"content-type": "application/json", "x-api-key": "k"},
    )
    resp = handler(event, LambdaContext())
    payload = json.loads(resp["body"])
    return len(body["requests"]), int(resp["statusCode"]), payload.get("predictions", [])


def test_market_reads_throttled_and_failing_degrade_to_stale_answers(
    aws_resources: LocalResources, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_market(AwsSettings())
    monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.endpoint_url)
    monkeypatch.setenv("MAGIC8_CACHE_MARKET_TTL_S", "0")  # every batch reads the table
    monkeypatch.setenv("MAGIC8_MARKET_CIRCUIT_RESET_S", "0.5")
    reset_clients()
    handler = build_handler()
    sent = answered = 0
    statuses: list[int] = []
    sources: set[object] = set()

    def run(n: int, first_seed: int) -> None:
        nonlocal sent, answered
        for i in range(n):
            n_sent, status, predictions = _batch(handler, first_seed + i)
            statuses.append(status)
            sent += n_sent
            for p in predictions:
                assert 0.0 <= float(p["win_probability"]) <= 1.0  # type: ignore[arg-type]
                assert math.isfinite(float(p["threshold"]))  # type: ignore[arg-type]
                sources.add(p["data_source"])
                answered += 1

    run(2, 0)  # healthy: the breaker remembers the last good snapshots
    n_fault = 10 if budget() == "quick" else 100
    fault_proxy.add(FaultRule("dynamodb", "BatchGetItem", "throttle", rate=0.6))
    fault_proxy.add(FaultRule("dynamodb", "BatchGetItem", "server_error", rate=0.8))
    fault_proxy.add(FaultRule("dynamodb", "BatchWriteItem", "server_error", rate=0.5))
    run(n_fault, 100)
    fault_proxy.clear()
    time.sleep(0.6)  # the circuit half-opens and closes on the next good read
    run(2, 10_000)
    _, _, last = _batch(handler, 20_000)
    reset_clients()
    injected = sum(fault_proxy.stats.injected.values())
    row = record(
        ResilienceRow(
            scenario="DynamoDB throttling + 5xx on market reads and history writes (predict)",
            injected=injected,
            survived=all(s == 200 for s in statuses),
            records_in=sent,
            records_out=answered,
            note=f"data_source seen: {sorted(map(str, sources))}",
        )
    )
    assert injected >= n_fault
    assert set(statuses) == {200}, "no 5xx while DynamoDB fails"
    assert "stale" in sources, "answers during the outage are flagged stale"
    assert {p["data_source"] for p in last} == {"seed"}, "fresh data again after recovery"
    assert row.nothing_lost
