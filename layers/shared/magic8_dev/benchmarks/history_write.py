"""The confidence history's write alternatives, alternating in one run against the local
AWS emulator (moto in its own process, as `make run`): what the API's request would wait
for per answered batch of 100 new trades.

- one BatchWriteItem of 24 series summaries (issue 17's first design; no per-trade lines)
- four concurrent BatchWriteItem calls of 100 per-trade points (written from the request)
- ONE SQS SendMessage carrying the 100 per-trade points with their feature rows (chosen)
- ONE Kinesis PutRecord carrying the same

`python -m magic8_dev.benchmarks.history_write` -> bench/results/history_write.json
(wall p50 of the call and the calling thread's CPU p50).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from magic8.settings import REPO_ROOT

ROUNDS = 40


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def run(results_dir: Path, rounds: int = ROUNDS) -> dict[str, Any]:
    from magic8.adapters.aws import client, reset_clients
    from magic8.adapters.history_dynamo import _item
    from magic8.adapters.history_queue import encode
    from magic8.domain.confidence import ConfidencePoint
    from magic8.domain.features import FEATURE_NAMES
    from magic8.settings import AwsSettings
    from magic8_dev.local.moto_server import EmbeddedAws
    from magic8_dev.local.provision import provision

    saved = dict(os.environ)
    aws = EmbeddedAws().start()
    reset_clients()
    pool = ThreadPoolExecutor(8)
    try:
        res = provision(AwsSettings())
        os.environ.update(res.env())
        ddb, sqs, kinesis = client("dynamodb"), client("sqs"), client("kinesis")
        table, stream = res.settings.history_table, res.settings.flow_stream
        strategies = ("Butterfly", "Iron Condor", "Vertical", "Sonar")
        features = {name: 0.125 * i for i, name in enumerate(FEATURE_NAMES)}

        def points(n: int, k: int, with_features: bool) -> list[ConfidencePoint]:
            return [
                ConfidencePoint(
                    "SPX",
                    strategies[i % 4],
                    1_700_000_000_000 + k * 1000 + i,
                    0.5,
                    "WIN",
                    0.4,
                    "m",
                    "v",
                    "seed",
                    trade=f"BUY {i}/{i + 5}/{i + 10}",
                    features=dict(features) if with_features else None,
                )
                for i in range(n)
            ]

        def put(items: list[dict[str, Any]]) -> Any:
            return ddb.batch_write_item(RequestItems={table: items})

        def summaries(k: int) -> Any:
            put(
                [
                    {"PutRequest": {"Item": _item(p, p.ts_ms, 2_000_000_000)}}
                    for p in points(24, k, False)
                ]
            )

        def four_writes(k: int) -> Any:
            reqs = [
                {"PutRequest": {"Item": _item(p, p.ts_ms, 2_000_000_000)}}
                for p in points(100, k, True)
            ]
            list(pool.map(put, [reqs[i : i + 25] for i in range(0, 100, 25)]))

        queue = sqs.create_queue(QueueName="bench-history")["QueueUrl"]
        bodies: dict[int, str] = {}

        def one_message(k: int) -> Any:
            sqs.send_message(QueueUrl=queue, MessageBody=bodies.pop(k))

        def one_record(k: int) -> Any:
            kinesis.put_record(StreamName=stream, Data=bodies.pop(k).encode(), PartitionKey="h")

        alternatives = {
            "one_BatchWriteItem_24_series_summaries": summaries,
            "four_concurrent_BatchWriteItem_100_trade_points": four_writes,
            "one_SQS_SendMessage_100_trade_points_with_features": one_message,
            "one_Kinesis_PutRecord_100_trade_points_with_features": one_record,
        }
        message_bytes = len(encode(points(100, 0, True))[0].encode())
        wall: dict[str, list[float]] = {k: [] for k in alternatives}
        cpu: dict[str, list[float]] = {k: [] for k in alternatives}
        for r in range(rounds + 3):
            for name, fn in alternatives.items():
                k = 1000 * r + len(wall[name])
                bodies[k] = encode(points(100, k, True))[0]  # built outside the timing
                c, t = time.thread_time(), time.perf_counter()
                fn(k)
                if r >= 3:  # warm-up rounds
                    wall[name].append(time.perf_counter() - t)
                    cpu[name].append(time.thread_time() - c)
        out: dict[str, Any] = {
            "benchmark": "history_write",
            "rounds": rounds,
            "message_bytes_100_points_with_features": message_bytes,
            "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "alternatives": {
                name: {
                    "wall_p50_ms": round(statistics.median(wall[name]) * 1000, 2),
                    "wall_p95_ms": round(
                        sorted(wall[name])[int(0.95 * (len(wall[name]) - 1))] * 1000, 2
                    ),
                    "caller_cpu_p50_ms": round(statistics.median(cpu[name]) * 1000, 2),
                }
                for name in alternatives
            },
        }
    finally:
        pool.shutdown()
        aws.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "history_write.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    print(json.dumps(run(REPO_ROOT / "bench" / "results", rounds), indent=2))
