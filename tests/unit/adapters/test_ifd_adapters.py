"""SnsAlertPublisher retries and subject rules; DynamoDB value conversion and TTL filter."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from magic8.adapters.dynamo_state import expired, from_dynamo, to_dynamo
from magic8.adapters.sns_publisher import SnsAlertPublisher, clean_subject
from magic8.domain.alerts import Alert

ALERT = Alert(
    kind="ifd_signal",
    symbol="NQZ5",
    severity="warning",
    subject="IFD LONG NQZ5 20100C conf 0.91: institutional buying of calls",
    payload={"confidence": 0.91},
    dedupe_key="200040:1758029400",
)


class FlakySns:
    def __init__(self, failures: list[str]) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        if self.failures:
            code = self.failures.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "Publish")
        return {"MessageId": f"m-{len(self.calls)}"}


def test_publishes_json_subject_and_filter_attributes() -> None:
    sns = FlakySns([])
    assert SnsAlertPublisher("arn:topic", sns=sns).publish(ALERT) == "m-1"
    call = sns.calls[0]
    assert call["TopicArn"] == "arn:topic"
    assert call["Subject"] == ALERT.subject
    assert call["MessageAttributes"]["kind"] == {"DataType": "String", "StringValue": "ifd_signal"}
    assert set(call["MessageAttributes"]) == {"kind", "symbol", "severity"}
    assert call["MessageStructure"] == "json"
    bodies = json.loads(call["Message"])
    # machines (SQS, Lambda, default) get the Alert JSON unchanged
    for protocol in ("default", "sqs", "lambda"):
        assert Alert.model_validate_json(bodies[protocol]).dedupe_key == ALERT.dedupe_key
    # e-mail gets text a trader reads: the subject first, no JSON braces
    text = bodies["email"]
    assert text.splitlines()[0] == ALERT.subject
    assert "{" not in text and "Severity:" in text and ALERT.dedupe_key in text


def test_retries_transient_errors_then_gives_up() -> None:
    sns = FlakySns(["Throttling", "InternalError"])
    assert SnsAlertPublisher("arn:topic", sns=sns, backoff_s=0).publish(ALERT) == "m-3"
    hopeless = FlakySns(["Throttling"] * 5)
    with pytest.raises(ClientError):
        SnsAlertPublisher("arn:topic", sns=hopeless, attempts=3, backoff_s=0).publish(ALERT)
    assert len(hopeless.calls) == 3
    denied = FlakySns(["AuthorizationError"])
    with pytest.raises(ClientError):
        SnsAlertPublisher("arn:topic", sns=denied, backoff_s=0).publish(ALERT)
    assert len(denied.calls) == 1  # not retryable


def test_subject_is_printable_ascii_under_100() -> None:
    assert clean_subject("IFD\nLONG — NQ" + "x" * 200).isascii()
    assert len(clean_subject("x" * 200)) == 99
    assert "\n" not in clean_subject("a\nb")
    assert clean_subject("\n") == "magic8 alert"
    with pytest.raises(ValueError):
        SnsAlertPublisher("")


def test_dynamo_values_round_trip_and_ttl() -> None:
    item = {"a": 0.1, "b": [1.5, 2], "c": {"d": None, "e": 3.0}, "f": True, "g": None}
    stored = to_dynamo(item)
    assert stored["a"] == Decimal("0.1") and "g" not in stored and "d" not in stored["c"]
    assert from_dynamo(stored) == {"a": 0.1, "b": [1.5, 2], "c": {"e": 3}, "f": True}
    assert expired({"expires_at": Decimal(100)}, now=100.0)
    assert not expired({"expires_at": Decimal(101)}, now=100.0)
    assert not expired({}, now=100.0)
