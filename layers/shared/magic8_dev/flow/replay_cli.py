"""`magic8 replay FILE_OR_DIR... --jsonl OUT [--speed X]`.

Replays DBN files through the gateway's ingestion path and writes the pressure windows as
JSON lines in the Kinesis `flow` record schema (magic8.domain.flow.PressureWindow) instead
of sending them. Prints the record types seen/used/skipped and the window count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from magic8.domain.flow import WINDOW_SECONDS, PressureWindow
from magic8.flow.aggregator import PressureAggregator
from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="DBN files (.dbn/.dbn.zst) or folders of them")
    parser.add_argument("--jsonl", required=True, help="output file ('-' for stdout)")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="session-time speed factor (0 = as fast as possible)",
    )
    parser.add_argument("--window-seconds", type=int, default=WINDOW_SECONDS)
    parser.add_argument(
        "--lateness", type=float, default=0.0, help="seconds a window stays open after its end"
    )


def run(args: argparse.Namespace) -> int:
    out: TextIO
    close = False
    if args.jsonl == "-":
        out = sys.stdout
    else:
        Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
        out = open(args.jsonl, "w", encoding="utf-8")  # noqa: SIM115
        close = True
    report = sys.stderr if args.jsonl == "-" else sys.stdout
    written = 0

    def write(windows: list[PressureWindow]) -> None:
        nonlocal written
        for w in windows:
            out.write(w.model_dump_json() + "\n")
        written += len(windows)

    aggregator = PressureAggregator(
        window_seconds=args.window_seconds,
        lateness_seconds=args.lateness,
        source="replay",
        track_keys=False,
    )
    ingest = FlowIngest(aggregator, on_windows=write)
    started = time.perf_counter()
    try:
        result = replay(args.paths, ingest, speed=args.speed or None, source="replay")
    except FileNotFoundError as exc:
        print(f"magic8 replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if close:
            out.close()
    elapsed = time.perf_counter() - started
    counts = ingest.counts()
    stats = dict(aggregator.stats)
    print(
        json.dumps(
            {
                "files": result.files,
                "records": result.records,
                "windows": written,
                "elapsed_s": round(elapsed, 3),
                "records_per_s": round(result.records / elapsed) if elapsed > 0 else None,
                "record_types": counts,
                "trades": {
                    "counted": stats.get("trades_counted", 0),
                    "fill_records_ignored": stats.get("fill_records_ignored", 0),
                },
                "instruments": len(ingest.instruments),
                "errors": ingest.errors,
                "failed_files": result.failed,
            },
            indent=2,
        ),
        file=report,
    )
    for message in result.failed.values():
        print(f"magic8 replay: skipped unreadable file {message}", file=sys.stderr)
    return 1 if result.failed else 0
