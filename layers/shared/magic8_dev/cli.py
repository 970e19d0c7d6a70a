"""`magic8` console command: the project's tools behind one entry point.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs so that
`magic8 --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("magic8_dev.local.runner", "start the whole stack on the embedded default (make run)"),
    "train": ("magic8_dev.ml.train", "train the XGBoost hierarchy and write models/"),
    "seed-market": ("magic8_dev.ml.seed", "write market snapshots from real bars into DynamoDB"),
    "replay": ("magic8_dev.flow.replay_cli", "replay DBN files into pressure windows (JSON lines)"),
    "generate-session": (
        "magic8_dev.flow.generator_cli",
        "generate a labelled NQ options session (real DBN files + truth.json)",
    ),
    "evaluate-ifd": ("magic8_dev.ifd.evaluate", "replay labelled sessions and score IFD detection"),
    "bench": ("magic8_dev.bench", "run benchmarks and write bench/results/"),
    "resilience": ("magic8_dev.resilience.cli", "fault and fuzz suites with a nothing-lost table"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magic8", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        build_parser().parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"magic8 {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
