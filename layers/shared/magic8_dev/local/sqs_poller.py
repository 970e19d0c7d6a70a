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

The event source and λ history run in a process of their own (`python -m
magic8_dev.local.sqs_poller`, SqsPollerProcess), as Lambda runs each function apart:
decoding a message and writing ~100 items with their feature rows is ~15 ms of CPU that,
in the API's process, held its GIL while clients waited. The child prints its counters as
one JSON line a second on stdout; the functions' logs and EMF go to the parent's log
stream; it exits when its stdin closes (the parent died) or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


STATS_EVERY_S = 1.0
BACKGROUND_NICE = 10
START_TIMEOUT_S = 30.0


class SqsPollerProcess:
    """The event source + its handler in a child process; `stats` mirrors the child's
    counters (updated from its stdout once a second)."""

    def __init__(
        self, queue_url: str, handler_path: str = HANDLER_PATH, logs: IO[Any] | None = None
    ) -> None:
        self.queue_url = queue_url
        self.handler_path = handler_path
        self.logs = logs
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self.ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> SqsPollerProcess:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # layers/shared
        root = str(Path(__file__).resolve().parents[4])  # functions/ importable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, root, env.get("PYTHONPATH")) if p)
        try:
            err: Any = self.logs.fileno() if self.logs is not None else subprocess.DEVNULL
        except (AttributeError, OSError, ValueError):  # a stream without a file (pytest)
            err = subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magic8_dev.local.sqs_poller",
                "--queue-url",
                self.queue_url,
                "--handler",
                self.handler_path,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="history-stats", daemon=True)
        self._reader.start()
        if not self.ready.wait(START_TIMEOUT_S):
            self.stop()
            raise TimeoutError(f"the history function did not start in {START_TIMEOUT_S:.0f} s")
        return self

    def _read(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        for line in proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            for k in STAT_KEYS:
                self.stats[k] = int(doc.get(k, 0))
            self.ready.set()

    def stop(self, timeout: float = 2.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # the child finishes its current poll and exits
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._reader is not None:
            self._reader.join(timeout=timeout)


class SqsPollerComponent:
    """`magic8 run` component "history": the event source of the history function, in a
    process of its own (in_process=True: a thread of this one, for tests that need to
    reach into the handler)."""

    name = "history"

    def __init__(self, handler_path: str = HANDLER_PATH, in_process: bool = False) -> None:
        self.handler_path = handler_path
        self.in_process = in_process
        self.emulator: SqsEventSourceEmulator | None = None
        self.process: SqsPollerProcess | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ctx: LocalContext) -> None:
        url = ctx.resources.history_queue_url
        if not url:
            return
        if self.in_process:
            self._start_thread(ctx, url)
        else:
            self.process = SqsPollerProcess(url, self.handler_path, logs=sys.stdout).start()
            proc_stats = self.process.stats
            ctx.counters["history_written"] = lambda: proc_stats["processed"]
        # the API hands its history points to the queue from its first request on
        os.environ[r.HISTORY_QUEUE.env_var] = url

    def _start_thread(self, ctx: LocalContext, url: str) -> None:
        handler, module = load_handler(self.handler_path)
        reset = getattr(module, "reset", None)
        if callable(reset):
            reset()
        self.emulator = SqsEventSourceEmulator(url, handler, region=ctx.aws.region)
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
        if self.emulator is not None:
            s = self.emulator.stats
        elif self.process is not None:
            s = self.process.stats
        else:
            return "off (no history queue)"
        where = "" if self.emulator is not None else " (own process)"
        return (
            f"messages {s['processed']}/{s['received']} written, {s['failed']} redelivered, "
            f"{s['errors']} handler errors{where}"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.process is not None:
            self.process.stop()
        os.environ.pop(r.HISTORY_QUEUE.env_var, None)


def main(argv: list[str] | None = None) -> int:
    """The child: the event source and the handler; counters on stdout, logs on stderr."""
    parser = argparse.ArgumentParser(prog="python -m magic8_dev.local.sqs_poller")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--handler", default=HANDLER_PATH)
    parser.add_argument("--nice", type=int, default=BACKGROUND_NICE)
    args = parser.parse_args(argv)
    # a background function: on two shared cores its writes (100 items a message) must
    # not take the CPU from the API's requests (in AWS it runs on a machine of its own)
    if args.nice:
        os.nice(args.nice)
    stats_out = sys.stdout
    sys.stdout = sys.stderr  # the handler's JSON logs and EMF lines (bound at its import)
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def orphaned() -> None:  # the parent died: its end of our stdin closes
        sys.stdin.read()
        stop.set()

    threading.Thread(target=orphaned, name="stdin-watch", daemon=True).start()
    handler, _module = load_handler(args.handler)
    emulator = SqsEventSourceEmulator(args.queue_url, handler)

    def report() -> None:
        while True:
            print(json.dumps(dict(emulator.stats)), file=stats_out, flush=True)
            if stop.wait(STATS_EVERY_S):
                break
        print(json.dumps(dict(emulator.stats)), file=stats_out, flush=True)

    reporter = threading.Thread(target=report, name="stats", daemon=True)
    reporter.start()
    emulator.run(stop)
    reporter.join(timeout=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
