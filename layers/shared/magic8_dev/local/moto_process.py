"""moto in a process of its own: `python -m magic8_dev.local.moto_process --port N`.

The local stack's AWS (EmbeddedAws starts it) runs apart from the API and the handlers,
so the emulator's CPU never takes the API's GIL. On top of moto's server it adds what the
local run needs to stay quiet and bounded:

- one lock per AWS service around moto's request handling: moto's backends are not safe
  for concurrent use (Kinesis PutRecords during GetRecords raises "OrderedDict mutated
  during iteration" inside moto); requests to one service are served one at a time, as a
  single-threaded emulator would, and services do not wait for each other. DynamoDB item
  requests lock only the tables they name (a predict history write does not queue behind
  the ifd function's window-store calls);
- DynamoDB TTL: items whose TTL attribute is in the past are deleted every sweep, as
  DynamoDB does (moto never does; queries on moto cost O(table));
- Kinesis retention: records older than the local retention (default 120 s, env
  MAGIC8_LOCAL_KINESIS_RETENTION_S) are dropped from each shard, the newest always kept
  (moto numbers the next record from it); AWS keeps 24 h, but moto's PutRecords and
  GetRecords walk the whole shard, so a replay looping for hours would slow without end.
  The local poller reads within a second (the producer also waits while 2,000 records are
  unread); `make run` puts ~2,900 records a minute, ~0.9 KB each in moto: 120 s hold
  ~6k records, where 600 s held ~29k (~27 MB, and every GetRecords walked them);
- moto's instance tracking emptied every sweep: moto 5.2.5 appends every model object it
  creates (each DynamoDB item version, Kinesis record, SQS message) to a class-level list
  for its /moto-api/data.json dashboard, so nothing deleted, overwritten, expired or trimmed
  was ever freed (moto's RSS grew ~14 MB/min under `make run`);
- SQS messages past their queue's retention deleted as SQS does, and SNS topics' lists of
  every publication emptied (the local alerts subscriber queue, which nobody reads
  locally, gets ~14 alerts a minute; `make run` gives it a 1-hour retention);
- the shard's newest sequence number in O(1) (moto lists every key on each put);
- a table Query on the primary key reads its own partition: moto's Query sorts every item
  of the table to pick out one partition (a 72-point history query took 0.4-0.5 s once the
  table held a few thousand items); here it costs what DynamoDB's does, O(partition).

It exits when its stdin closes (the parent died) or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

SWEEP_INTERVAL_S = 5.0
# MAGIC8_LOCAL_AWS_NICE: the emulator at a lower CPU priority than the API's process.
# Off by default: measured at 5, the benchmark's new batches did not get faster (the
# after-response SendMessage waited longer on the emulator instead)
DEFAULT_NICE = 0
DEFAULT_RETENTION_S = 120.0

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def service_of(environ: dict[str, Any]) -> str:
    """The AWS service a request is for (from SigV4's credential scope)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    marker = "Credential="
    if marker in auth:
        scope = auth.split(marker, 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            return scope[3]
    return "moto-api" if environ.get("PATH_INFO", "").startswith("/moto-api") else "other"


class ServiceLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, service: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(service)
            if lock is None:
                lock = self._locks[service] = threading.Lock()
            return lock


def dynamodb_tables(body: bytes) -> list[str]:
    """The tables a DynamoDB request names (empty: a request about no table's items)."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    names: set[str] = set()
    if isinstance(doc.get("TableName"), str):
        names.add(doc["TableName"])
    if isinstance(doc.get("RequestItems"), dict):
        names.update(str(k) for k in doc["RequestItems"])
    for entry in doc.get("TransactItems") or []:
        if isinstance(entry, dict):
            for op in entry.values():
                if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                    names.add(op["TableName"])
    return sorted(names)


def _lock_names(service: str, environ: dict[str, Any]) -> list[str]:
    if service != "dynamodb":
        return [service]
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if not target.endswith(("Item", "Query", "Scan", "TransactGetItems", "TransactWriteItems")):
        return [service]  # table-level operations: one at a time
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    tables = dynamodb_tables(body)
    return [f"dynamodb:{t}" for t in tables] or [service]


def serialised(app: WsgiApp, locks: ServiceLocks) -> WsgiApp:
    """The WSGI app with one request at a time per service, or per DynamoDB table (the
    body is produced inside the locks: moto builds it eagerly, so nothing of the backend
    is touched after)."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        service = service_of(environ)
        if service == "moto-api":  # reset touches every backend: take them all
            return app(environ, start_response)
        with contextlib.ExitStack() as held:
            for name in _lock_names(service, environ):  # sorted: no lock-order deadlock
                held.enter_context(locks(name))
            return list(app(environ, start_response))

    return wrapped


def expire_ttl_items(now: float, locks: ServiceLocks) -> int:
    """Delete the DynamoDB items past their TTL, as DynamoDB's TTL process does."""
    from moto.dynamodb.models import dynamodb_backends

    deleted = 0
    for account in list(dynamodb_backends.keys()):
        for region in list(dynamodb_backends[account].keys()):
            backend = dynamodb_backends[account][region]
            for table in list(backend.tables.values()):
                ttl = getattr(table, "ttl", {}) or {}
                attr = ttl.get("AttributeName")
                if ttl.get("TimeToLiveStatus") != "ENABLED" or not attr:
                    continue
                with locks(f"dynamodb:{table.name}"):
                    for item in table.all_items():
                        value = item.attrs.get(attr)
                        if value is None or value.type != "N":
                            continue
                        try:
                            expired = float(value.value) < now
                        except (TypeError, ValueError):
                            continue
                        if expired:
                            table.delete_item(item.hash_key, item.range_key)
                            deleted += 1
    return deleted


def trim_kinesis(now: float, retention_s: float, locks: ServiceLocks) -> int:
    """Drop records older than the retention from every shard, keeping the newest."""
    from moto.kinesis.models import kinesis_backends

    dropped = 0
    with locks("kinesis"):
        for account in list(kinesis_backends.keys()):
            for region in list(kinesis_backends[account].keys()):
                for stream in list(kinesis_backends[account][region].streams.values()):
                    for shard in list(stream.shards.values()):
                        records = shard.records
                        while len(records) > 1:
                            first = next(iter(records))
                            if records[first].created_at >= now - retention_s:
                                break
                            del records[first]
                            dropped += 1
    return dropped


def forget_tracked_instances() -> int:
    """Empty moto's per-class lists of every model instance it ever created; returns how
    many references were dropped.

    moto 5.2.5 (moto.core.common_models.BaseModel.__new__) appends each new model object to
    its class's `instances_tracked`, read only by the /moto-api/data.json dashboard and by
    moto's reset (which empties them). Every PutItem/UpdateItem builds a new dynamodb Item
    (the replaced one stays listed), every PutRecords a kinesis Record, every SendMessage an
    sqs Message: measured under `make run`, ~9,000 Items and ~2,900 Records a minute while
    the tables held ~2,000 items and the shard stayed trimmed, so moto's RSS grew ~14 MB/min
    without end and its full garbage collections walked an ever larger heap. The backends
    keep their own references to what is live; only the dashboard's view is lost.
    """
    from moto.core.model_instances import model_data

    dropped = 0
    for models in list(model_data.values()):
        for cls in list(models.values()):
            tracked = getattr(cls, "instances_tracked", None)
            if isinstance(tracked, list) and tracked:
                dropped += len(tracked)
                tracked.clear()  # in place: a request thread may append concurrently
    return dropped


def expire_sqs_messages(now: float, locks: ServiceLocks) -> int:
    """Delete the messages older than their queue's MessageRetentionPeriod, as SQS does
    (moto 5.2.5 only stops returning them: a queue nobody reads, like the local alerts
    subscriber queue, kept every message for the emulator's life)."""
    from moto.sqs.models import sqs_backends

    dropped = 0
    with locks("sqs"):
        for account in list(sqs_backends.keys()):
            for region in list(sqs_backends[account].keys()):
                for queue in list(sqs_backends[account][region].queues.values()):
                    keep_s = float(getattr(queue, "message_retention_period", 0) or 0)
                    if keep_s <= 0:
                        continue
                    with queue._messages_lock:
                        old = [
                            m
                            for m in queue._messages
                            if m.sent_timestamp and m.sent_timestamp / 1000.0 + keep_s <= now
                        ]
                        if old:
                            gone = set(map(id, old))
                            queue._messages = [m for m in queue._messages if id(m) not in gone]
                            for m in old:
                                queue.pending_messages.discard(m)
                            dropped += len(old)
    return dropped


def forget_sent_notifications(locks: ServiceLocks) -> int:
    """Empty each SNS topic's `sent_notifications`: moto 5.2.5 appends every publication
    to it (for its own test API; AWS keeps no such list), one per alert, for ever."""
    from moto.sns.models import sns_backends

    dropped = 0
    with locks("sns"):
        for account in list(sns_backends.keys()):
            for region in list(sns_backends[account].keys()):
                for topic in list(sns_backends[account][region].topics.values()):
                    sent = getattr(topic, "sent_notifications", None)
                    if isinstance(sent, list) and sent:
                        dropped += len(sent)
                        sent.clear()
    return dropped


_query_partition = threading.local()


def patch_moto() -> None:
    from moto.dynamodb.models.table import Table
    from moto.kinesis.models import Shard

    def newest(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    Shard.get_max_sequence_number = newest  # type: ignore[method-assign]

    if getattr(Table.query, "_magic8_partition", False):
        return
    query, all_items = Table.query, Table.all_items

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index = kwargs.get("index_name") if "index_name" in kwargs else None
        if len(args) > 6:  # index_name passed positionally
            index = args[6]
        if index is None and hash_key is not None and self.range_key_attr:
            _query_partition.table = self
            _query_partition.key = hash_key
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _query_partition.table = None

    def partition_items(self: Any) -> Any:
        if id(getattr(_query_partition, "table", None)) == id(self):
            part = self.items.get(_query_partition.key)
            return list(part.values()) if part else []
        return all_items(self)

    partition_query._magic8_partition = True  # type: ignore[attr-defined]
    Table.query = partition_query  # type: ignore[method-assign]
    Table.all_items = partition_items  # type: ignore[method-assign]


def sweep(now: float, locks: ServiceLocks, retention_s: float) -> dict[str, int]:
    """One housekeeping pass: expired TTL items, records past the retention, then the
    references moto's instance tracking kept to them (and to everything else replaced)."""
    return {
        "ttl_items_deleted": expire_ttl_items(now, locks),
        "kinesis_records_trimmed": trim_kinesis(now, retention_s, locks),
        "sqs_messages_expired": expire_sqs_messages(now, locks),
        "sns_notifications_forgotten": forget_sent_notifications(locks),
        "tracked_instances_forgotten": forget_tracked_instances(),
    }


def housekeeping(stop: threading.Event, locks: ServiceLocks, retention_s: float) -> None:
    log = logging.getLogger("magic8.moto")
    while not stop.wait(SWEEP_INTERVAL_S):
        try:
            sweep(time.time(), locks, retention_s)
        except Exception as exc:  # never take the emulator down for housekeeping
            log.warning("moto housekeeping failed: %r", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="magic8_dev.local.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--retention-s",
        type=float,
        default=float(os.environ.get("MAGIC8_LOCAL_KINESIS_RETENTION_S", DEFAULT_RETENTION_S)),
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=int(os.environ.get("MAGIC8_LOCAL_AWS_NICE", DEFAULT_NICE)),
        help="lower CPU priority than the API's process (AWS's services are not on its CPU)",
    )
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    patch_moto()
    locks = ServiceLocks()
    app = serialised(DomainDispatcherApplication(create_backend_app), locks)
    try:
        server = make_server(
            args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
        )
    except OSError as exc:
        print(f"moto: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    def watch_parent() -> None:
        # stdin is a pipe from the parent: EOF means it is gone
        try:
            while sys.stdin.buffer.read(1024):
                pass
        except (OSError, ValueError):
            pass
        shutdown()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    threading.Thread(
        target=housekeeping, args=(stop, locks, args.retention_s), name="housekeeping", daemon=True
    ).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
