"""`magic8 evaluate-ifd --grid` / `--fit`: IFD on a grid of generated scenarios.

Each row is one generator setting (magic8_dev.flow.generator.SessionParams overrides: base
volume, episode purity, size, single/several strikes, first-hour and cold-start episodes,
buying/selling, market-maker bait) replayed for several seeds, in memory, through the
gateway's ingestion path (FlowIngest + PressureAggregator with early windows) and the IFD
detector. A row reports episodes, caught, recall, false alerts per underlying per trading
day, median/worst latency from an episode's start.

`--fit` replays the same rows with other seeds, keeps the best score of every
non-episode window (DESIGN.md matching: not at an episode's option type and strikes within
[start - 5 min, end + 10 min]) and fits magic8.ifd.calibration (the worst row's false
windows per underlying per day at each score), written with the analysis configuration it
was fitted on.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from magic8.ifd.analysis import AnalysisConfig
from magic8.ifd.calibration import CALIBRATION_PATH, Calibration, fit
from magic8.ifd.detector import IfdConfig
from magic8.ifd.values import SignalPolicy
from magic8.settings import REPO_ROOT
from magic8_dev.flow.generator import SessionParams, session_days, truth_of
from magic8_dev.ifd.evaluate import (
    EARLY_SECONDS,
    Replayed,
    feed_mbo,
    gateway_ingest,
    make_detector,
    near,
    run_windows,
    score,
)

GRID_RESULT = REPO_ROOT / "bench" / "results" / "ifd_grid.json"
BASE_TRADES = SessionParams().quiet_trades_per_day
EPISODES_PER_DAY = 3.0  # more episodes per generated day than the sample: cheaper rows
JOBS = 2  # worker processes
SMALL = {"episode_size": (5, 15), "episode_minutes": (15, 20)}


@dataclass(frozen=True)
class Scenario:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    min_recall: float = 0.9

    def params(self, seed: int, days: int) -> SessionParams:
        base = SessionParams(days=days, seed=seed, episodes_per_day=EPISODES_PER_DAY)
        return replace(base, **self.overrides)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("default"),
    Scenario("volume x3", {"quiet_trades_per_day": 3 * BASE_TRADES}),
    Scenario("volume x10", {"quiet_trades_per_day": 10 * BASE_TRADES}),
    Scenario("purity 0.8", {"episode_purity": 0.8}),
    Scenario("purity 0.7", {"episode_purity": 0.7}, min_recall=0.8),
    Scenario("small size", SMALL),
    Scenario("small single strike", {**SMALL, "episode_shapes": ("single",)}, min_recall=0.8),
    Scenario("single strike", {"episode_shapes": ("single",)}),
    Scenario("several strikes", {"episode_shapes": ("cluster",)}),
    Scenario("first hour", {"episode_start_minutes": (0, 45)}),
    Scenario("cold start", {"warmup_days": 0}),
    Scenario("buying", {"episode_aggressors": ("BUY",)}),
    Scenario("selling", {"episode_aggressors": ("SELL",)}),
    Scenario("bait x4", {"bait_per_day": 6.0}),
    Scenario("volume x10, small", {"quiet_trades_per_day": 10 * BASE_TRADES, **SMALL}),
)
# 6 seeds x 4 days: 24 underlying-days and 48 episodes per row (with 3 seeds a row's median
# moved by up to 80 s and its false-alert count by one or two between seed sets)
GRID_SEEDS = tuple(range(1201, 1207))
# 48 underlying-days per regime: the budget's 0.1/day (2x margin) is "at most 4 windows";
# 6 seeds (24 days, "at most 2") gave thresholds 3.50 and 3.74 on two disjoint seed sets
FIT_SEEDS = tuple(range(9101, 9113))
DAYS = 4  # per session (day 1 is warm-up, except cold start)
QUICK_SEEDS = (1201,)
QUICK_DAYS = 3


def replay_generated(
    params: SessionParams,
    config: IfdConfig,
    early_seconds: float | None = EARLY_SECONDS,
    collect_scores: bool = False,
) -> tuple[dict[str, Any], Replayed]:
    """Generate a session in memory, replay it, score it; returns (truth, replayed)."""
    detector, publisher, limiter = make_detector(config)
    out = Replayed(scores={} if collect_scores else None)
    days = []
    for day in session_days(params):
        days.append(day)
        ingest, groups = gateway_ingest(early_seconds)
        for d in day.definitions:
            ingest.on_record(d)
        feed_mbo(ingest, day.records)
        ingest.flush()
        run_windows(detector, groups, out)
        day.records = day.records[:0]  # free the day's records
    out.alerts_published = len(publisher.alerts)
    out.rate_limited = sum(limiter.excess.values())
    return truth_of(params, days), out


def _row(name: str, reports: list[dict[str, Any]], days: int, minimum: float) -> dict[str, Any]:
    episodes = sum(r["overall"]["episodes"] for r in reports)
    caught = sum(r["overall"]["detected"] for r in reports)
    false = sum(r["overall"]["false"] for r in reports)
    lat = [x for r in reports for x in r.get("_lat", [])]
    recall = caught / episodes if episodes else None
    fpd = false / days if days else 0.0
    return {
        "scenario": name,
        "sessions": len(reports),
        "trading_days": days,
        "episodes": episodes,
        "caught": caught,
        "recall": None if recall is None else round(recall, 4),
        "false_alerts": false,
        "false_alerts_per_day": round(fpd, 4),
        "latency_median_s": round(statistics.median(lat), 1) if lat else None,
        "latency_max_s": round(max(lat), 1) if lat else None,
        "min_recall": minimum,
        "ok": (recall is None or recall >= minimum) and fpd <= 0.2 + 1e-9,
    }


def latencies(truth: dict[str, Any], alerts: Sequence[Any]) -> list[float]:
    """First-hit latency (s) of each detected episode."""
    from magic8_dev.ifd.evaluate import is_hit

    out = []
    for ep in truth.get("episodes", []):
        hits = [s.time for s in alerts if is_hit(ep, s)]
        if hits:
            start = ep["start"]
            from datetime import datetime

            out.append((min(hits) - datetime.fromisoformat(start)).total_seconds())
    return out


def _score_one(
    params: SessionParams, config: IfdConfig, early_seconds: float | None
) -> dict[str, Any]:
    truth, replayed = replay_generated(params, config, early_seconds)
    alerts = replayed.alerts()
    report = score(truth, alerts)
    report["_lat"] = latencies(truth, alerts)
    return report


def _fit_one(params: SessionParams, config: IfdConfig, early_seconds: float | None) -> list[float]:
    truth, replayed = replay_generated(params, config, early_seconds, True)
    return non_episode_scores(truth, replayed)


def _map(fn: Any, tasks: list[tuple[Any, ...]], jobs: int) -> Any:
    """Results in task order (worker processes when jobs > 1)."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from (fn(*t) for t in tasks)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(fn, *t) for t in tasks]
        for f in futures:
            yield f.result()


def grid(
    scenarios: Sequence[Scenario] = SCENARIOS,
    seeds: Sequence[int] = GRID_SEEDS,
    days: int = DAYS,
    config: IfdConfig | None = None,
    early_seconds: float | None = EARLY_SECONDS,
    progress: bool = False,
    jobs: int = JOBS,
) -> dict[str, Any]:
    config = config or IfdConfig()
    rows = []
    t0 = time.perf_counter()
    tasks = [(sc.params(seed, days), config, early_seconds) for sc in scenarios for seed in seeds]
    results = _map(_score_one, tasks, jobs)
    for sc in scenarios:
        reports = [next(results) for _ in seeds]
        n_days = sum(sc.params(seed, days).days for seed in seeds)
        row = _row(sc.name, reports, n_days, sc.min_recall)
        rows.append(row)
        if progress:
            print(format_row(row), file=sys.stderr, flush=True)
    return {
        "rows": rows,
        "seeds": list(seeds),
        "days_per_session": days,
        "early_seconds": early_seconds,
        "config": {
            "alert_threshold": config.policy.alert_threshold,
            "score_threshold": config.analysis.curve.score_threshold,
            "false_alarm_budget_per_day": config.analysis.curve.budget_per_day,
        },
        "all_ok": all(r["ok"] for r in rows),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


HEADER = (
    "| scenario | episodes | caught | recall | false alerts/day | median latency | worst |\n"
    "|---|---|---|---|---|---|---|"
)


def minutes_text(x: float | None) -> str:
    """Seconds as "4.2 min" ("—" when not measured)."""
    return "—" if x is None else f"{x / 60:.1f} min"


def format_row(r: dict[str, Any]) -> str:
    recall = "—" if r["recall"] is None else f"{100 * r['recall']:.0f}%"
    return (
        f"| {r['scenario']} | {r['episodes']} | {r['caught']} | {recall} | "
        f"{r['false_alerts_per_day']:.2f} ({r['false_alerts']}/{r['trading_days']} d) | "
        f"{minutes_text(r['latency_median_s'])} | {minutes_text(r['latency_max_s'])} |"
    )


def table(result: dict[str, Any]) -> str:
    return "\n".join([HEADER, *(format_row(r) for r in result["rows"])])


def run_grid(quick: bool = False, out: Path | None = GRID_RESULT) -> int:
    seeds, days = (QUICK_SEEDS, QUICK_DAYS) if quick else (GRID_SEEDS, DAYS)
    result = grid(seeds=seeds, days=days, progress=True)
    print(table(result))
    print(
        f"alert threshold {result['config']['alert_threshold']} (score "
        f"{result['config']['score_threshold']}); {result['elapsed_s']} s"
    )
    if out is not None and not quick:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


# -- fitting ------------------------------------------------------------------------------


def non_episode_scores(
    truth: dict[str, Any], replayed: Replayed, after_minutes: float = 30.0
) -> list[float]:
    """Best score of each window and direction that would be a false alert: not at an
    episode's option type, strikes and direction from 5 min before it to ``after_minutes``
    after it (windows right after a caught episode continue its alert:
    SignalPolicy.realert_minutes). A window naming the opposite direction at an episode's
    strikes counts: the grid scores it as a false alert (a minority flurry of 70%-pure flow)."""
    episodes = [
        {
            **ep,
            "end": (
                datetime.fromisoformat(ep["end"]) + timedelta(minutes=after_minutes - 10)
            ).isoformat(),
        }
        for ep in truth.get("episodes", [])
    ]
    out = []
    for sc, option_type, strike, t, direction in (replayed.scores or {}).values():
        if any(
            ep["option_type"] == option_type
            and ep["direction"] == direction
            and near(ep, t, strike)
            for ep in episodes
        ):
            continue
        out.append(sc)
    return out


def calibrate(
    scenarios: Sequence[Scenario] = SCENARIOS,
    seeds: Sequence[int] = FIT_SEEDS,
    days: int = DAYS,
    analysis: AnalysisConfig | None = None,
    early_seconds: float | None = EARLY_SECONDS,
    progress: bool = False,
    jobs: int = JOBS,
) -> Calibration:
    analysis = analysis or AnalysisConfig()
    config = IfdConfig(analysis=analysis, policy=SignalPolicy(alert_threshold=1.0))
    by_regime: dict[str, tuple[list[float], float]] = {}
    tasks = [(sc.params(seed, days), config, early_seconds) for sc in scenarios for seed in seeds]
    results = _map(_fit_one, tasks, jobs)
    for sc in scenarios:
        scores: list[float] = [x for _ in seeds for x in next(results)]
        n_days = float(sum(sc.params(seed, days).days for seed in seeds))
        by_regime[sc.name] = (scores, n_days)
        if progress:
            top = sorted(scores)[-3:]
            print(f"fit {sc.name}: {len(scores)} windows, top {top}", file=sys.stderr, flush=True)
    return fit(
        by_regime,
        fitted_on={
            "analysis": analysis.fingerprint(),
            "scenarios": [s.name for s in scenarios],
            "seeds": list(seeds),
            "days_per_session": days,
            "early_seconds": early_seconds,
            "underlying_days": {k: v[1] for k, v in by_regime.items()},
        },
    )


def run_fit(quick: bool = False, path: Path = CALIBRATION_PATH) -> int:
    seeds, days = (FIT_SEEDS[:1], QUICK_DAYS) if quick else (FIT_SEEDS, DAYS)
    cal = calibrate(seeds=seeds, days=days, progress=True)
    path.write_text(cal.to_json())
    print(
        f"wrote {path}: score threshold {cal.score_threshold}, alert threshold "
        f"(confidence) {cal.alert_threshold}, budget {cal.budget_per_day} false alerts "
        "per underlying per trading day"
    )
    return 0
