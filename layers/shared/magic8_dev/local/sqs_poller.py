"""The local SQS event source of λ history: what Lambda's SQS event-source mapping does,
against moto (which runs no mappings).

It receives up to `batch_size` messages of the history queue (short polls: moto serves a
service's requests one at a time, so a long poll would hold the API's SendMessage behind
it), builds Lambda's SQS event (Records[] with messageId, receiptHandle, body,
attributes.ApproximateReceiveCount, eventSource aws:sqs, eventSourceARN) and invokes the
handler. As a mapping with ReportBatchItemFailures: the messages not named in
batchItemFailures are deleted; the named ones (or all, if the handler raises) become
visible again after the visibility timeout and are redelivered, and the queue's redrive
policy moves a message received maxReceiveCount times to the dead-letter queue.

`make run` turns the queue path on: this component puts MAGIC8_HISTORY_QUEUE_URL in the
environment before the API's first request builds its service.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from magic8 import resources as r
from magic8.adapters.aws import client
from magic8_dev.local.context import LocalContext
from magic8_dev.local.kinesis_poller import FakeLambdaContext, load_handler

log = logging.getLogger(__name__)

HANDLER_PATH = "functions.history.handler:handler"
FUNCTION_NAME = "magic8-history"


@dataclass(frozen=True)
class SqsMapping:
    """The history queue's event-source mapping (infra/constructs/history_writer.py)."""

    batch_size: int = 10
    # the mapping's batching window: an empty or partial receive waits this long, so the
    # poller takes the emulator's SQS lock (which the API's SendMessage also needs) about
    # once a second, not five times
    poll_interval_s: float = 1.0
    visibility_timeout_s: int = 30


STAT_KEYS = ("polls", "received", "processed", "failed", "errors")


class SqsEventSourceEmulator:
    def __init__(
        self,
        queue_url: str,
        handler: Any,
        mapping: SqsMapping | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.queue_url = queue_url
        self.handler = handler
        self.mapping = mapping or SqsMapping()
        self.sqs = client("sqs")
        self.arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.region = region
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))

    def poll_once(self) -> int:
        """One receive and (when messages came) one invocation; returns messages received."""
        self.stats["polls"] += 1
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.mapping.batch_size,
            WaitTimeSeconds=0,
            VisibilityTimeout=self.mapping.visibility_timeout_s,
            AttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return 0
        self.stats["received"] += len(messages)
        event = {"Records": [self._record(m) for m in messages]}
        try:
            out = self.handler(event, FakeLambdaContext(function_name=FUNCTION_NAME))
            failed = {f["itemIdentifier"] for f in (out or {}).get("batchItemFailures", [])}
        except Exception as exc:  # a function error: every message is redelivered
            log.warning("history handler failed: %s", exc)
            self.stats["errors"] += 1
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        self.stats["processed"] += len(done)
        self.stats["failed"] += len(failed)
        return len(messages)

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {
                "ApproximateReceiveCount": m.get("Attributes", {}).get(
                    "ApproximateReceiveCount", "1"
                ),
                "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0"),
                "SenderId": "local",
                "ApproximateFirstReceiveTimestamp": "0",
            },
            "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        }

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                got = self.poll_once()
            except Exception as exc:  # the queue unreachable: try again
                log.warning("history queue poll failed: %s", exc)
                got = 0
            if got < self.mapping.batch_size:
                stop.wait(self.mapping.poll_interval_s)


class SqsPollerComponent:
    """`magic8 run` component "history": the event source of the history function."""

    name = "history"

    def __init__(self, handler_path: str = HANDLER_PATH) -> None:
        self.handler_path = handler_path
        self.emulator: SqsEventSourceEmulator | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ctx: LocalContext) -> None:
        url = ctx.resources.history_queue_url
        if not url:
            return
        handler, module = load_handler(self.handler_path)
        reset = getattr(module, "reset", None)
        if callable(reset):
            reset()
        self.emulator = SqsEventSourceEmulator(url, handler, region=ctx.aws.region)
        # the API hands its history points to the queue from its first request on
        os.environ[r.HISTORY_QUEUE.env_var] = url
        emulator = self.emulator
        ctx.counters["history_written"] = lambda: emulator.stats["processed"]
        self._stop.clear()
        stop = self._stop

        def run() -> None:
            inner = threading.Event()

            def watch() -> None:
                while not (stop.is_set() or ctx.stop_event.is_set()):
                    time.sleep(0.1)
                inner.set()

            threading.Thread(target=watch, daemon=True).start()
            emulator.run(inner)

        self._thread = threading.Thread(target=run, name="history-sqs-poller", daemon=True)
        self._thread.start()

    def status(self) -> str:
        if self.emulator is None:
            return "off (no history queue)"
        s = self.emulator.stats
        return (
            f"messages {s['processed']}/{s['received']} written, {s['failed']} redelivered, "
            f"{s['errors']} handler errors"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        os.environ.pop(r.HISTORY_QUEUE.env_var, None)
