"""The local Kinesis event source: what Lambda's event-source mapping does, against moto.

moto stores the `flow` stream but runs no event-source mappings, so this component polls
every shard (GetShardIterator / GetRecords), builds Lambda's Kinesis event (Records[] with
kinesis.{data (base64), sequenceNumber, partitionKey, approximateArrivalTimestamp,
kinesisSchemaVersion}, eventSource aws:kinesis, eventSourceARN, eventID
"shardId-...:seq", ...) and invokes the ifd handler with up to `batch_size` records.

Failure semantics follow a mapping configured with ReportBatchItemFailures,
BisectBatchOnFunctionError and MaximumRetryAttempts:
- a response with batchItemFailures checkpoints everything before the lowest failed
  sequence number and retries from there; a function error (exception) retries the whole
  batch; an itemIdentifier that is not in the batch counts as a function error;
- with bisect on, a retried batch of more than one record is split in two (splitting
  does not consume retries, as in Lambda), so a poison record ends up alone;
- once a batch of one has failed `max_retries` + 1 times, the record's metadata (the
  on-failure destination record: requestContext, responseContext, KinesisBatchInfo) is
  sent to the on-failure SQS queue and the shard moves on.

Nothing is lost (as the managed poller, which checkpoints only what it has finished):
a shard's position advances past a batch only once every record of it is processed or
parked in the on-failure queue; each shard keeps a checkpoint (the highest sequence
number processed or parked, records are handled in order). If the on-failure queue is
unreachable the send is retried with backoff, never dropped; when it gives up (stop, or
`park_attempts` in tests) the position stays where it was and the next poll reads the
batch again, skipping what the checkpoint already covers.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from magic8.adapters.aws import LazyClient
from magic8_dev.local.context import LocalContext

HANDLER_PATH = "functions.ifd.handler:handler"
FUNCTION_NAME = "magic8-ifd"


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "local"
    timeout_s: float = 60.0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass(frozen=True)
class EventSourceConfig:
    batch_size: int = 100
    max_retries: int = 2  # MaximumRetryAttempts
    bisect: bool = True  # BisectBatchOnFunctionError
    starting_position: str = "TRIM_HORIZON"
    poll_interval_s: float = 0.2
    park_attempts: int | None = None  # sends to the on-failure queue; None = until it works
    park_backoff_s: float = 0.1  # first delay between sends (doubling, capped at 2 s)


@dataclass
class EventSourceStats:
    polled: int = 0  # records read from the stream
    processed: int = 0  # records of successful invocations (first success counts)
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0  # invocations that returned batchItemFailures
    retries: int = 0
    bisections: int = 0
    discarded: int = 0  # records sent to the on-failure destination
    dlq_messages: int = 0
    dlq_send_failures: int = 0  # sends to the on-failure queue that failed (and were retried)
    rereads: int = 0  # records read again because their batch had not finished


Handler = Callable[[dict[str, Any], Any], Any]


class ParkFailed(Exception):
    """The on-failure queue could not take a record: the shard's position stays put."""


class KinesisEventSourceEmulator:
    """Polls a Kinesis stream and drives a Lambda handler with Lambda's semantics."""

    kinesis = LazyClient("kinesis")
    sqs = LazyClient("sqs")

    def __init__(
        self,
        stream_name: str,
        handler: Handler,
        failure_queue_url: str | None = None,
        config: EventSourceConfig | None = None,
        region: str | None = None,
        account: str = "123456789012",
        function_name: str = FUNCTION_NAME,
        kinesis: Any = None,
        sqs: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream_name = stream_name
        self.handler = handler
        self.failure_queue_url = failure_queue_url
        self.config = config or EventSourceConfig()
        self.region = region or os.environ.get("AWS_REGION", "us-east-1")
        self.account = account
        self.function_name = function_name
        self._kinesis = kinesis
        self._sqs = sqs
        self.stats = EventSourceStats()
        self.stream_arn = ""
        self._iterators: dict[str, str | None] = {}
        # shard -> highest sequence number processed or parked (everything up to it is done)
        self._checkpoint: dict[str, int] = {}
        self._read: dict[str, int] = {}  # shard -> highest sequence number read
        self._lock = threading.Lock()
        self._sleep = sleep
        self._stop: threading.Event | None = None

    # --- polling --------------------------------------------------------------------
    def _init_shards(self) -> None:
        desc = self.kinesis.describe_stream_summary(StreamName=self.stream_name)
        self.stream_arn = desc["StreamDescriptionSummary"]["StreamARN"]
        shards = self.kinesis.list_shards(StreamName=self.stream_name)["Shards"]
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in self._iterators:
                self._iterators[sid] = self.kinesis.get_shard_iterator(
                    StreamName=self.stream_name,
                    ShardId=sid,
                    ShardIteratorType=self.config.starting_position,
                )["ShardIterator"]

    def poll_once(self) -> int:
        """One GetRecords per shard; delivers what it got. Returns records read."""
        with self._lock:
            if not self._iterators:
                self._init_shards()
            total = 0
            for sid, iterator in list(self._iterators.items()):
                if iterator is None:
                    continue
                out = self.kinesis.get_records(ShardIterator=iterator, Limit=self.config.batch_size)
                records = [self._event_record(sid, r) for r in out.get("Records", [])]
                if records:
                    total += len(records)
                    seen = self._read.get(sid, -1)
                    new = sum(1 for r in records if _seq(r) > seen)
                    self.stats.polled += new
                    self.stats.rereads += len(records) - new
                    self._read[sid] = max(seen, _seq(records[-1]))
                    done = self._checkpoint.get(sid, -1)
                    todo = [r for r in records if _seq(r) > done]
                    if todo:
                        # raises ParkFailed when the on-failure queue cannot take a record:
                        # then the iterator is not advanced and the batch is read again
                        self.deliver(sid, todo)
                # the batch is processed or parked: only now the shard moves on
                self._iterators[sid] = out.get("NextShardIterator")
            return total

    def drain(self, max_polls: int = 1000) -> int:
        """Poll until a poll returns nothing (tests)."""
        total = 0
        for _ in range(max_polls):
            n = self.poll_once()
            total += n
            if n == 0:
                return total
        return total

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                n = self.poll_once()
            except Exception as exc:  # keep polling like the managed poller does
                logging.getLogger("magic8_dev.local.ifd").warning(
                    "ifd poller: poll failed: %s", exc
                )
                n = 0
            if n == 0:
                stop.wait(self.config.poll_interval_s)

    # --- the event -------------------------------------------------------------------
    def _event_record(self, shard_id: str, r: dict[str, Any]) -> dict[str, Any]:
        arrival = r.get("ApproximateArrivalTimestamp")
        ts = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival or 0)
        seq = r["SequenceNumber"]
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": seq,
                "data": base64.b64encode(r["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": ts,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{self.account}:role/{self.function_name}-role",
            "awsRegion": self.region,
            "eventSourceARN": self.stream_arn,
        }

    def invoke(self, records: list[dict[str, Any]]) -> tuple[bool, int | None, str]:
        """Invoke the handler once: (ok, index of the first failed record or None, error)."""
        self.stats.invocations += 1
        ctx = FakeLambdaContext(
            function_name=self.function_name,
            invoked_function_arn=(
                f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"
            ),
        )
        try:
            response = self.handler({"Records": records}, ctx)
        except Exception as exc:
            self.stats.function_errors += 1
            return False, 0, f"Unhandled: {type(exc).__name__}: {exc}"
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return True, None, ""
        self.stats.partial_failures += 1
        index = {r["kinesis"]["sequenceNumber"]: i for i, r in enumerate(records)}
        positions = [index.get(f.get("itemIdentifier") or "") for f in failures]
        if any(p is None for p in positions):  # unknown identifier: whole batch failed
            return False, 0, "invalid batchItemFailures itemIdentifier"
        return False, min(p for p in positions if p is not None), "batchItemFailures"

    def deliver(self, shard_id: str, records: list[dict[str, Any]], attempt: int = 0) -> None:
        """Invoke, then retry/bisect/discard what failed, like the Lambda poller."""
        ok, first_failed, error = self.invoke(records)
        if ok:
            self._count_processed(shard_id, records)
            return
        assert first_failed is not None
        self._count_processed(shard_id, records[:first_failed])
        remaining = records[first_failed:]
        if self.config.bisect and len(remaining) > 1:
            self.stats.bisections += 1
            mid = len(remaining) // 2
            self.deliver(shard_id, remaining[:mid], attempt)
            self.deliver(shard_id, remaining[mid:], attempt)
            return
        if attempt >= self.config.max_retries:
            self._discard(shard_id, remaining, attempt + 1, error)
            return
        self.stats.retries += 1
        self.deliver(shard_id, remaining, attempt + 1)

    def _count_processed(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Count records the first time they succeed (deliveries go in sequence order)."""
        last = self._checkpoint.get(shard_id, -1)
        for r in records:
            seq = _seq(r)
            if seq > last:
                last = seq
                self.stats.processed += 1
        self._checkpoint[shard_id] = last

    def _park(self, message: dict[str, Any]) -> None:
        """Send to the on-failure queue, retrying with backoff while it fails."""
        body = json.dumps(message)
        delay = self.config.park_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                self.sqs.send_message(QueueUrl=self.failure_queue_url, MessageBody=body)
                return
            except Exception as exc:
                self.stats.dlq_send_failures += 1
                limit = self.config.park_attempts
                stopping = self._stop is not None and self._stop.is_set()
                if stopping or (limit is not None and attempt >= limit):
                    raise ParkFailed(f"on-failure queue unreachable: {exc}") from exc
                self._sleep(delay)
                delay = min(2.0, delay * 2)

    def _discard(
        self, shard_id: str, records: list[dict[str, Any]], invokes: int, error: str
    ) -> None:
        first, last = records[0]["kinesis"], records[-1]["kinesis"]
        if not self.failure_queue_url:  # no destination configured: Lambda drops them too
            self._parked(shard_id, records)
            return

        def iso(ts: float) -> str:
            return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")

        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": (
                    f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"
                ),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invokes,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": error.split(":", 1)[0] or "Unhandled",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["sequenceNumber"],
                "endSequenceNumber": last["sequenceNumber"],
                "approximateArrivalOfFirstRecord": iso(first["approximateArrivalTimestamp"]),
                "approximateArrivalOfLastRecord": iso(last["approximateArrivalTimestamp"]),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        self._park(message)
        self.stats.dlq_messages += 1
        self._parked(shard_id, records)

    def _parked(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        self.stats.discarded += len(records)
        last = max(_seq(r) for r in records)
        self._checkpoint[shard_id] = max(self._checkpoint.get(shard_id, -1), last)


def _seq(record: dict[str, Any]) -> int:
    return int(record["kinesis"]["sequenceNumber"])


def load_handler(path: str = HANDLER_PATH) -> tuple[Handler, Any]:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    handler: Handler = getattr(module, attr)
    return handler, module


class SignalLogCounter(logging.Handler):
    """Counts the function's "ifd signal" log lines (signals, and alerts by status), as a
    CloudWatch Logs metric filter would: the local runtime watches the function from
    outside instead of the function keeping counters for it."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "ifd signal":
            return
        self.counts["signals"] += 1
        status = getattr(record, "alert_status", "none")
        if status == "sent":
            self.counts["alerts"] += 1
        elif status != "none":
            self.counts[str(status)] += 1


class KinesisPollerComponent:
    """`magic8 run` component "ifd": the event source of the ifd function."""

    name = "ifd"

    def __init__(self, handler_path: str = HANDLER_PATH, config: EventSourceConfig | None = None):
        self.handler_path = handler_path
        self.config = config or EventSourceConfig(
            batch_size=int(os.environ.get("MAGIC8_IFD_BATCH_SIZE", "100")),
            max_retries=int(os.environ.get("MAGIC8_IFD_MAX_RETRIES", "2")),
        )
        self.emulator: KinesisEventSourceEmulator | None = None
        self._module: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signal_log = SignalLogCounter()

    def start(self, ctx: LocalContext) -> None:
        handler, self._module = load_handler(self.handler_path)
        logging.getLogger("ifd").addHandler(self._signal_log)
        reset = getattr(self._module, "reset", None)
        if callable(reset):
            reset()  # cold: this stack's resources, not a previous one's cached settings
        self.emulator = KinesisEventSourceEmulator(
            stream_name=ctx.resources.settings.flow_stream,
            handler=handler,
            failure_queue_url=ctx.resources.ifd_failure_queue_url,
            config=self.config,
            region=ctx.aws.region,
        )
        emulator = self.emulator
        ctx.counters["ifd_polled"] = lambda: emulator.stats.polled
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(ctx,), name="ifd-kinesis-poller", daemon=True
        )
        self._thread.start()

    def _run(self, ctx: LocalContext) -> None:
        assert self.emulator is not None
        stop = threading.Event()

        def watch() -> None:
            while not (self._stop.is_set() or ctx.stop_event.is_set()):
                time.sleep(0.1)
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
        self.emulator.run(stop)

    def handler_stats(self) -> dict[str, int]:
        return dict(self._signal_log.counts)

    def status(self) -> str:
        if self.emulator is None:
            return "not started"
        s = self.emulator.stats
        h = self.handler_stats()
        return (
            f"records {s.processed}/{s.polled} processed, signals {h.get('signals', 0)}, "
            f"alerts {h.get('alerts', 0)}, failures {s.discarded} to on-failure queue "
            f"({s.invocations} invocations, {s.retries} retries, {s.bisections} bisections)"
        )

    def stop(self) -> None:
        logging.getLogger("ifd").removeHandler(self._signal_log)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
