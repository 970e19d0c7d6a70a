"""`magic8 bench` / `make bench`: run the benchmarks, print them, write bench/results/*.json.

Each benchmark is a module in magic8_dev.benchmarks exposing `run(results_dir: Path) -> dict`.
Speed is compared as ratios measured in one run; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from magic8.settings import REPO_ROOT

BENCHMARKS: tuple[str, ...] = ("predict", "gateway", "monitor", "load", "ifd")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="shortened budgets (CI)")


def run(args: argparse.Namespace) -> int:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.only or BENCHMARKS:
        try:
            module = importlib.import_module(f"magic8_dev.benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"[bench] {name}: not available ({exc})")
            failed += 1
            continue
        print(f"[bench] {name} ...", flush=True)
        started = time.perf_counter()
        result = module.run(args.results_dir, quick=args.quick)
        result.setdefault("elapsed_s", round(time.perf_counter() - started, 2))
        out = args.results_dir / f"{name}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result, indent=2, default=str))
        print(f"[bench] {name}: wrote {out}", flush=True)
    return 1 if failed else 0
