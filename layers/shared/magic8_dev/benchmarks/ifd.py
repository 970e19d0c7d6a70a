"""Benchmark: IFD detection throughput and ifd handler latency per batch.

Domain: the pressure windows of generated NQ options days (magic8_dev.flow.generator, replayed
by the gateway's aggregator; replay time not counted) through the IFD detector with
in-memory stores (baselines, analysis, signals, alerts) — windows per second.

Handler: functions.ifd.handler.handler invoked with Lambda's Kinesis event for batches of
100 and 500 records against the embedded moto server (real HTTP endpoint); wall time per
batch, and the part spent in AWS round trips (botocore calls, timed) reported separately
from the handler's own compute, plus the number of AWS calls per batch.
"""

from __future__ import annotations

import base64
import importlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from magic8.domain.flow import PressureWindow
from magic8.ifd.detector import IfdConfig
from magic8_dev.flow.generator import SessionParams, generate_session
from magic8_dev.ifd.evaluate import Replayed, day_dirs, make_detector, replay_day, run_windows
from magic8_dev.ifd.evaluate import window_groups as groups_of

HANDLER = "functions.ifd.handler"


def _windows(root: Path, days: int) -> list[list[PressureWindow]]:
    session = root / "session"
    generate_session(session, SessionParams(days=days, seed=77))
    return [[w for group in replay_day(d) for w in group] for d in day_dirs(session)]


def domain_throughput(days: list[list[PressureWindow]], repeats: int) -> dict[str, Any]:
    n = sum(len(d) for d in days)
    rates = []
    for _ in range(repeats):
        detector, _, _ = make_detector(IfdConfig())
        out = Replayed()
        started = time.perf_counter()
        for day in days:
            run_windows(detector, groups_of(day), out)
        rates.append(n / (time.perf_counter() - started))
    return {
        "windows": n,
        "repeats": repeats,
        "windows_per_s_best": round(max(rates)),
        "windows_per_s_median": round(statistics.median(rates)),
        "signals": len(out.signals),
        "alerts": sum(1 for s in out.signals if s.alerted),
    }


@contextmanager
def _aws_timer() -> Iterator[dict[str, float]]:
    """Time every botocore API call (the AWS round trips) while active."""
    import botocore.client

    acc = {"seconds": 0.0, "calls": 0.0}
    base: Any = botocore.client.BaseClient
    original = base._make_api_call

    def timed(self: Any, operation: str, params: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, operation, params)
        finally:
            acc["seconds"] += time.perf_counter() - started
            acc["calls"] += 1

    base._make_api_call = timed
    try:
        yield acc
    finally:
        base._make_api_call = original


def _event(windows: list[PressureWindow], first_seq: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": str(w.instrument_id),
                    "sequenceNumber": f"{first_seq + i:056d}",
                    "data": base64.b64encode(w.model_dump_json().encode()).decode(),
                    "approximateArrivalTimestamp": time.time(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{first_seq + i:056d}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/magic8-ifd-role",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/magic8-flow",
            }
            for i, w in enumerate(windows)
        ]
    }


def handler_latency(
    days: list[list[PressureWindow]], sizes: tuple[int, ...], batches: int
) -> dict[str, Any]:
    from magic8.adapters.aws import reset_clients
    from magic8.settings import AwsSettings
    from magic8_dev.local.kinesis_poller import FakeLambdaContext
    from magic8_dev.local.moto_server import EmbeddedAws
    from magic8_dev.local.provision import provision

    saved = dict(os.environ)
    aws = EmbeddedAws().start()
    out: dict[str, Any] = {"endpoint": "moto server (EmbeddedAws, 127.0.0.1 HTTP)"}
    try:
        reset_clients()
        os.environ.update(provision(AwsSettings()).env())
        module = importlib.import_module(HANDLER)
        module.reset()
        flat = [w for day in days for g in groups_of(day) for w in g]
        seq = 1
        pos = 0
        for size in sizes:
            total, in_aws, calls = [], [], []
            for _ in range(batches):
                if pos + size > len(flat):
                    pos = 0  # wrap: later batches are redeliveries (the skip path)
                chunk = flat[pos : pos + size]
                pos += size
                event = _event(chunk, seq)
                seq += size
                with _aws_timer() as acc:
                    started = time.perf_counter()
                    response = module.handler(event, FakeLambdaContext())
                    total.append(time.perf_counter() - started)
                assert not response["batchItemFailures"]
                in_aws.append(acc["seconds"])
                calls.append(acc["calls"])
            compute = [t - a for t, a in zip(total, in_aws, strict=True)]
            out[f"batch_{size}"] = {
                "batches": batches,
                "handler_ms_median": round(statistics.median(total) * 1000, 1),
                "handler_ms_max": round(max(total) * 1000, 1),
                "aws_round_trips_ms_median": round(statistics.median(in_aws) * 1000, 1),
                "compute_ms_median": round(statistics.median(compute) * 1000, 1),
                "aws_calls_per_batch_median": statistics.median(calls),
                "records_per_s": round(size / statistics.median(total)),
            }
    finally:
        aws.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()
    return out


def run(results_dir: Path, quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="magic8-ifd-bench-") as tmp:
        days = _windows(Path(tmp), 2 if quick else 4)
    return {
        "benchmark": "ifd",
        "domain": domain_throughput(days, 1 if quick else 3),
        "handler": handler_latency(days, (100, 500), 3 if quick else 8),
        "notes": (
            "domain: in-memory stores, windows grouped by window end; handler: per-batch "
            "wall time on the moto server, AWS round trips timed inside botocore, compute = "
            "wall - AWS. The machine is shared: compare ratios within one run."
        ),
    }
