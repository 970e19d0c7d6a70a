"""The confidence history's queue path on the embedded moto server: the predict API hands a
batch's points to the history queue in ONE SendMessage, the local SQS event source invokes
λ history, which writes one item per trade identity (with its feature row); GET
/confidence/history returns one line per trade and the features when asked. A malformed
message is redelivered, then dead-lettered, and never blocks the good ones."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from functions.history import handler as history_handler
from functions.predict import handler as predict_handler
from magic8 import resources as r
from magic8.adapters.aws import client
from magic8.domain.features import FEATURE_NAMES
from magic8_dev.local.api_front import LambdaContext, apigw_event, response_body
from magic8_dev.local.provision import LocalResources
from magic8_dev.local.sqs_poller import SqsEventSourceEmulator, SqsMapping, SqsPollerProcess
from magic8_dev.ml.seed import seed_market
from tests.factories import BUTTERFLY, IRON_CONDOR

pytestmark = pytest.mark.xdist_group("predict_api")


def _call(method: str, path: str, body: Any = None, query: Any = None) -> tuple[int, Any]:
    payload = json.dumps(body) if body is not None else None
    event = apigw_event(method, path, payload, {"content-type": "application/json"}, query)
    with contextlib.redirect_stdout(io.StringIO()):
        resp = predict_handler.handler(event, LambdaContext())
    return resp["statusCode"], json.loads(response_body(resp))


@pytest.fixture()
def queued(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqsEventSourceEmulator]:
    seed_market(aws_resources.settings)
    monkeypatch.setenv(r.HISTORY_QUEUE.env_var, aws_resources.history_queue_url)
    predict_handler.reset()
    history_handler.reset()
    with contextlib.redirect_stdout(io.StringIO()):
        source = SqsEventSourceEmulator(
            aws_resources.history_queue_url,
            history_handler.handler,
            SqsMapping(poll_interval_s=0.01),
        )
    yield source
    predict_handler.reset()
    history_handler.reset()


def _drain(source: SqsEventSourceEmulator) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        while source.poll_once():
            pass


def _queue_depth(url: str) -> int:
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def test_a_batch_is_one_message_written_per_trade_identity(
    queued: SqsEventSourceEmulator, aws_resources: LocalResources
) -> None:
    other_condor = {**IRON_CONDOR, "strikes": [5890, 5885, 5825, 5820]}
    trades = [BUTTERFLY, IRON_CONDOR, other_condor, {**IRON_CONDOR, "premium": 0.7}]
    status, out = _call("POST", "/predict/batch", {"requests": trades})
    assert status == 200 and len(out["predictions"]) == 4
    # handed over, not yet written: one message for the whole batch
    assert _queue_depth(aws_resources.history_queue_url) == 1
    status, hist = _call("GET", "/confidence/history/SPX/Iron Condor")
    assert status == 200 and hist["count"] == 0
    _drain(queued)
    assert queued.stats["processed"] == 1 and queued.stats["failed"] == 0
    status, hist = _call(
        "GET", "/confidence/history/SPX/Iron Condor", query={"include_features": ["true"]}
    )
    assert status == 200
    # two condor identities: two lines; the two premiums of one identity are one point
    assert sorted(line["trade"] for line in hist["lines"]) == [
        "SELL 5820/5825/5885/5890",
        "SELL 5830/5835/5875/5880",
    ]
    counts = {line["trade"]: line["points"][0]["count"] for line in hist["lines"]}
    assert counts["SELL 5830/5835/5875/5880"] == 2
    features = hist["points"][0]["features"]
    assert list(features) == list(FEATURE_NAMES)
    assert all(v is None or isinstance(v, float) for v in features.values())
    status, plain = _call("GET", "/confidence/history/SPX/Iron Condor")
    assert "features" not in plain["points"][0]


def test_a_malformed_message_is_redelivered_then_dead_lettered(
    queued: SqsEventSourceEmulator, aws_resources: LocalResources
) -> None:
    sqs = client("sqs")
    sqs.send_message(QueueUrl=aws_resources.history_queue_url, MessageBody="{not json")
    status, _ = _call("POST", "/predict/batch", {"requests": [BUTTERFLY]})
    assert status == 200
    queued.mapping = replace(queued.mapping, visibility_timeout_s=0)  # redeliver at once
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(3 * r.HISTORY_MAX_RECEIVES):
            queued.poll_once()
    assert queued.stats["processed"] == 1  # the good message, once
    assert queued.stats["failed"] >= 1
    status, hist = _call("GET", "/confidence/history/SPX/Butterfly")
    assert hist["count"] == 1 and hist["lines"][0]["trade"] == "BUY 5805/5855/5905"
    assert _queue_depth(aws_resources.history_dlq_url) == 1
    assert _queue_depth(aws_resources.history_queue_url) == 0


def test_the_history_function_in_its_own_process_writes_what_the_api_hands_over(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make run's form: λ history and its event source in a child process (the API's
    process never carries the writes); its counters come back over the pipe."""
    seed_market(aws_resources.settings)
    monkeypatch.setenv(r.HISTORY_QUEUE.env_var, aws_resources.history_queue_url)
    predict_handler.reset()
    consumer = SqsPollerProcess(aws_resources.history_queue_url).start()
    try:
        status, _ = _call("POST", "/predict/batch", {"requests": [BUTTERFLY, IRON_CONDOR]})
        assert status == 200
        deadline = time.monotonic() + 60
        while consumer.stats["processed"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert consumer.stats["processed"] == 1 and consumer.stats["errors"] == 0
        status, hist = _call("GET", "/confidence/history/SPX/Butterfly")
        assert status == 200 and hist["count"] == 1
    finally:
        proc = consumer._proc
        consumer.stop()
        predict_handler.reset()
    assert proc is not None and proc.returncode is not None  # the child is gone
