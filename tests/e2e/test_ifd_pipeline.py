"""ACCEPTANCE end to end: the shipped sample session (its first three days: the suite's time
budget) replayed by the gateway component into
the Kinesis `flow` stream (moto), polled by the local event source, analysed by the ifd
handler, published to SNS `alerts` and delivered to the SQS subscription — whose messages
are scored against the session's truth.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.moto_api._internal import moto_api_backend

from magic8.adapters.aws import client, reset_clients
from magic8.ifd.values import Signal
from magic8_dev.ifd.evaluate import DEFAULT_SESSION, score
from magic8_dev.local.gateway_component import GatewayReplayComponent
from magic8_dev.local.kinesis_poller import KinesisPollerComponent
from magic8_dev.local.runner import LocalStack
from tests.progress import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ifd-e2e")]


DAYS = 3  # the warm-up day and the first two days with episodes and market-maker bait


def replayed_days() -> list[Path]:
    return sorted(p for p in DEFAULT_SESSION.iterdir() if p.name.startswith("day-"))[:DAYS]


def sample_gateway() -> GatewayReplayComponent:
    """The gateway component on the sample session's first days, once, at full speed."""
    paths = tuple(str(p) for p in replayed_days())
    # the session's own timestamps: the alerts are scored against truth.json
    return GatewayReplayComponent(paths=paths, speed=0.0, loop=False, wall_clock=False)


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        if not got:
            return out
        out.extend(json.loads(m["Body"]) for m in got)


def test_sample_session_alerts_reach_the_sqs_subscription() -> None:
    stack = LocalStack(
        api_port=0,
        components=(
            "magic8_dev.local.kinesis_poller:KinesisPollerComponent",
            "tests.e2e.test_ifd_pipeline:sample_gateway",
        ),
    )
    # moto keeps its state in process-wide backends shared by every moto server of this
    # worker (e.g. the integration tests' session server): start from empty ones
    moto_api_backend.reset()
    reset_clients()
    ctx = stack.start()
    try:
        poller = next(c for c in stack.components if isinstance(c, KinesisPollerComponent))
        gateway = next(c for c in stack.components if isinstance(c, GatewayReplayComponent))

        def finished() -> bool:
            health = gateway.session.health()
            stats = poller.emulator.stats if poller.emulator else None
            sent = health["windows_sent"]
            return (
                health["state"] == "done"
                and sent == health["windows_emitted"]
                and stats is not None
                and stats.processed + stats.discarded >= sent > 0
            )

        def progress() -> tuple[object, ...]:
            health = gateway.session.health()
            stats = poller.emulator.stats if poller.emulator else None
            return (health["windows_sent"], stats.processed if stats else 0, health["state"])

        wait_for(
            finished,
            progress,
            "the replayed session fully processed",
            describe=lambda: "\n".join(stack.status_lines()),
        )
        sent = gateway.session.health()["windows_sent"]
        print("\n".join(stack.status_lines()))
        assert poller.emulator is not None
        assert poller.emulator.stats.discarded == 0  # nothing went to the on-failure queue
        assert poller.emulator.stats.processed == sent

        messages = drain(ctx.resources.alerts_queue_url)
        assert messages, "no alert reached the SQS subscription"
        alerts = []
        for m in messages:
            assert m["MessageAttributes"]["kind"]["Value"] == "ifd_signal"
            body = json.loads(m["Message"])
            assert m["Subject"] == body["subject"]
            alerts.append(Signal.model_validate(body["payload"]))
        assert len({a.window_key for a in alerts}) == len(alerts)  # one message per signal
        truth = json.loads((DEFAULT_SESSION / "truth.json").read_text())
        days = {p.name.removeprefix("day-") for p in replayed_days()}
        truth["episodes"] = [e for e in truth["episodes"] if e["day"] in days]
        truth["bait"] = [b for b in truth["bait"] if b["day"] in days]
        assert len(truth["episodes"]) >= 4 and truth["bait"]
        report = score(truth, alerts)
        print(json.dumps(report["overall"], indent=2))
        assert report["overall"]["recall"] >= 0.9
        assert report["overall"]["false_alert_rate"] <= 0.05
        assert drain(ctx.resources.ifd_failure_queue_url) == []
    finally:
        stack.stop()
