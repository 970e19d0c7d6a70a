"""`magic8 resilience` / `make resilience`: the fault and fuzz suites, as one table.

Runs the pytest suites in tests/resilience (fault injection through the fault proxy and
the wire-protocol test doubles, malformed input, fuzzing) with each scenario writing one
row; prints the table (scenario, injected, survived, records in/out, alerts expected/sent)
and writes bench/results/resilience.json. Exit status is non-zero if any test failed or
any row lost something.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from magic8.settings import REPO_ROOT
from magic8_dev.resilience.table import BUDGET_ENV, ROWS_ENV, format_table, read_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget", choices=("quick", "full"), default=os.environ.get(BUDGET_ENV, "full")
    )
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        env = dict(os.environ, **{ROWS_ENV: str(rows_path), BUDGET_ENV: args.budget})
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            str(REPO_ROOT / "tests" / "resilience"),
            *args.pytest_args,
        ]
        code = subprocess.call(cmd, cwd=REPO_ROOT, env=env)
        rows = read_rows(rows_path)
    print()
    print(f"resilience ({args.budget} budget)")
    print(format_table(rows))
    lost = [r for r in rows if not r.get("nothing_lost")]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / "resilience.json"
    out.write_text(json.dumps({"budget": args.budget, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}; {len(rows)} scenarios, {len(lost)} lost something; pytest exit {code}")
    return 1 if code or lost or not rows else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="magic8 resilience")
    add_arguments(parser)
    return run(parser.parse_args())
