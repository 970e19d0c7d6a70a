"""`magic8 generate-session OUT_DIR --days N --seed S ...`: a labelled NQ options session.

Writes day-YYYY-MM-DD/definition.dbn.zst + mbo.dbn.zst per trading day and truth.json
(episodes and bait), the labelled-session format of DESIGN.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from datetime import date
from pathlib import Path

from magic8_dev.flow.generator import SessionParams, generate_session

DEFAULTS = SessionParams()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--days", type=int, default=DEFAULTS.days, help="trading days")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--start", type=date.fromisoformat, default=DEFAULTS.start, help="first day (YYYY-MM-DD)"
    )
    parser.add_argument("--spot", type=float, default=DEFAULTS.spot, help="NQ level on day one")
    parser.add_argument("--strikes-each-side", type=int, default=DEFAULTS.strikes_each_side)
    parser.add_argument(
        "--quiet-trades", type=int, default=DEFAULTS.quiet_trades_per_day, help="per day"
    )
    parser.add_argument("--noise-per-trade", type=float, default=DEFAULTS.noise_per_trade)
    parser.add_argument("--episodes-per-day", type=float, default=DEFAULTS.episodes_per_day)
    parser.add_argument("--bait-per-day", type=float, default=DEFAULTS.bait_per_day)
    parser.add_argument(
        "--warmup-days", type=int, default=DEFAULTS.warmup_days, help="quiet days first"
    )
    parser.add_argument(
        "--episode-purity",
        type=float,
        default=DEFAULTS.episode_purity,
        help="share of episode trades on the declared aggressor side",
    )
    parser.add_argument(
        "--episode-trade-interval", type=float, default=DEFAULTS.episode_trade_interval_s
    )


def params_from_args(args: argparse.Namespace) -> SessionParams:
    known = {f.name for f in fields(SessionParams)}
    values = {
        "days": args.days,
        "seed": args.seed,
        "start": args.start,
        "spot": args.spot,
        "strikes_each_side": args.strikes_each_side,
        "quiet_trades_per_day": args.quiet_trades,
        "noise_per_trade": args.noise_per_trade,
        "episodes_per_day": args.episodes_per_day,
        "bait_per_day": args.bait_per_day,
        "warmup_days": args.warmup_days,
        "episode_purity": args.episode_purity,
        "episode_trade_interval_s": args.episode_trade_interval,
    }
    return SessionParams(**{k: v for k, v in values.items() if k in known})


def run(args: argparse.Namespace) -> int:
    if args.days < 1:
        print("magic8 generate-session: --days must be >= 1")
        return 2
    if not 0.5 <= args.episode_purity <= 1.0:
        print("magic8 generate-session: --episode-purity must be in [0.5, 1]")
        return 2
    truth = generate_session(args.out_dir, params_from_args(args))
    size = sum(f.stat().st_size for f in Path(args.out_dir).rglob("*") if f.is_file())
    print(
        json.dumps(
            {
                "out_dir": str(args.out_dir),
                "days": [d["day"] for d in truth["days"]],
                "records": sum(d["records"] for d in truth["days"]),
                "episodes": len(truth["episodes"]),
                "bait": len(truth["bait"]),
                "bytes": size,
            },
            indent=2,
        )
    )
    return 0
