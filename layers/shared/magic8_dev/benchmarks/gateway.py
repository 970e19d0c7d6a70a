"""Benchmark: gateway ingest throughput and Kinesis producer throughput.

Ingest (acceptance: >= 2,000,000 MBO records/s): a generated 1,000,000-record NQ options
MBO file (real DBN, zstd; magic8_dev.flow.generator) is decoded by databento
(`DBNStore.from_file` + `to_ndarray(count=...)`, decompression included) and aggregated by
the PressureAggregator through FlowIngest, closed windows built as PressureWindow records:
the replay path, which is also the live path after batching. Repeated; best and median.

Live callback path (reported, no target): the same records delivered one object at a time,
as `databento.Live` callbacks do (`FlowIngest.on_record`: raw bytes buffered, aggregated
as arrays), on a 200,000-record slice.

Kinesis: KinesisFlowProducer.send of N windows over 500 instrument ids against the
embedded moto server (EmbeddedAws, a real HTTP endpoint); records/s and PutRecords calls.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import databento as db
import zstandard

from magic8.domain.flow import PressureWindow
from magic8.flow.aggregator import PressureAggregator
from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import replay
from magic8_dev.flow.generator import generate_mbo_file

TARGET_RECORDS_PER_S = 2_000_000
N_RECORDS = 1_000_000


def _ingest_once(path: Path) -> tuple[float, float, int, int, int]:
    windows = 0

    def sink(ws: list[PressureWindow]) -> None:
        nonlocal windows
        windows += len(ws)

    ingest = FlowIngest(PressureAggregator(source="replay", track_keys=False), on_windows=sink)
    cpu0 = time.process_time()
    started = time.perf_counter()
    result = replay([path], ingest, source="replay")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return elapsed, cpu, result.records, windows, int(ingest.aggregator.stats["trades_counted"])


def _measure(path: Path, repeats: int) -> dict[str, Any]:
    runs = [_ingest_once(path) for _ in range(repeats)]
    wall = [r[0] for r in runs]
    cpu = [r[1] for r in runs]
    _, _, records, windows, trades = runs[0]
    best = min(wall)
    return {
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "records": records,
        "trades_counted": trades,
        "windows": windows,
        "repeats": repeats,
        "best_s": round(best, 4),
        "median_s": round(statistics.median(wall), 4),
        "cpu_s_best": round(min(cpu), 4),
        "records_per_s_best": round(records / best),
        "records_per_s_median": round(records / statistics.median(wall)),
        "records_per_cpu_s_best": round(records / min(cpu)) if min(cpu) > 0 else None,
    }


def _live_path(path: Path, n: int) -> dict[str, Any]:
    store = db.DBNStore.from_file(path)
    records = []
    for i, rec in enumerate(store):
        if i >= n:
            break
        records.append(rec)
    ingest = FlowIngest(PressureAggregator(source="live"), batch_records=512)
    started = time.perf_counter()
    for rec in records:
        ingest.on_record(rec)
    ingest.flush()
    elapsed = time.perf_counter() - started
    return {
        "records": len(records),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed),
        "note": "per-record callback objects (decoding by the client not included)",
    }


def _windows(n: int, keys: int) -> list[PressureWindow]:
    t0 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)
    out = []
    for i in range(n):
        start = t0 + timedelta(minutes=5 * (i // keys))
        out.append(
            PressureWindow(
                instrument_id=200_000 + i % keys,
                underlying="NQZ5",
                symbol=f"NQZ5 C{20000 + 25 * (i % keys)}",
                expiration="2025-12-19",
                strike=20000.0 + 25 * (i % keys),
                option_type="C",
                window_start=start,
                window_end=start + timedelta(minutes=5),
                bid_volume=10,
                ask_volume=30,
                total_trades=12,
                avg_trade_size=3.3,
                largest_trade=9,
                notional_premium=12_345.0,
                pressure_ratio=0.5,
                dominant_side="BUY",
                source="replay",
            )
        )
    return out


def _kinesis(n: int, keys: int = 500) -> dict[str, Any]:
    from magic8.adapters.aws import client, reset_clients
    from magic8.adapters.kinesis_flow import KinesisFlowProducer
    from magic8_dev.local.moto_server import EmbeddedAws

    aws = EmbeddedAws().start()
    try:
        reset_clients()
        kinesis = client("kinesis")
        stream = "magic8-bench-flow"
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(
            StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
        )
        windows = _windows(n, keys)
        producer = KinesisFlowProducer(stream, client=kinesis)
        started = time.perf_counter()
        sent = producer.send(windows)
        producer.flush()
        elapsed = time.perf_counter() - started
        return {
            "records": n,
            "partition_keys": keys,
            "sent": sent,
            "put_records_calls": producer.stats["calls"],
            "failed_entries": producer.stats["failed"],
            "elapsed_s": round(elapsed, 3),
            "records_per_s": round(sent / elapsed),
            "endpoint": "moto server (EmbeddedAws, 127.0.0.1 HTTP)",
        }
    finally:
        aws.stop()
        reset_clients()


def run(results_dir: Path, quick: bool = False) -> dict[str, Any]:
    repeats = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="magic8-bench-gw-") as tmp:
        zst = Path(tmp) / "nq-options-1m.mbo.dbn.zst"
        started = time.perf_counter()
        n = generate_mbo_file(zst, N_RECORDS, seed=42)
        gen_s = time.perf_counter() - started
        raw = Path(tmp) / "nq-options-1m.mbo.dbn"
        raw.write_bytes(
            zstandard.ZstdDecompressor().decompress(zst.read_bytes(), max_output_size=1 << 31)
        )
        plain = _measure(raw, repeats)
        compressed = _measure(zst, repeats)
        live = _live_path(zst, 50_000 if quick else 200_000)
    kinesis = _kinesis(2_000 if quick else 10_000)
    rate = plain["records_per_s_best"]
    return {
        "ingest": {
            **plain,
            "generated_records": n,
            "generate_s": round(gen_s, 2),
            "target_records_per_s": TARGET_RECORDS_PER_S,
            "meets_target": rate >= TARGET_RECORDS_PER_S,
            "meets_target_cpu_time": (plain["records_per_cpu_s_best"] or 0) >= TARGET_RECORDS_PER_S,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "includes": "DBN decode (databento DBNStore.to_ndarray) + aggregation + windows",
            "note": "uncompressed DBN, the live wire format (Live compression defaults to none)",
        },
        "ingest_zstd": {
            **compressed,
            "includes": "zstd decompression + DBN decode + aggregation + windows",
        },
        "live_callback_path": live,
        "kinesis_producer": kinesis,
        "machine_note": (
            "wall time includes waiting for a CPU on a shared machine (see load_average_1m); "
            "records_per_cpu_s is the compute rate of this process (user+sys, all threads)"
        ),
    }
