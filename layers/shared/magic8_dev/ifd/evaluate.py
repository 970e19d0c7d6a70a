"""`magic8 evaluate-ifd [SESSION_DIR...] [--signals OUT.jsonl]`: score IFD on labelled sessions.

Each session (DESIGN.md labelled-session format: `day-YYYY-MM-DD/` folders of DBN files
plus `truth.json`) is replayed day by day, in date order, through the gateway's own
ingestion path (magic8.flow: FlowIngest + PressureAggregator over the real DBN files) and
the IFD detector with in-memory stores; baselines carry over from day to day. Windows are
handed to the detector grouped by window end, the way the gateway emits them when a
5-minute window closes.

Scoring (DESIGN.md): an alert is a hit when it names an episode's option type and one of
its strikes, with the episode's direction, at a time (its window end) within
[start - 5 min, end + 10 min]; every other alert is false. Recall counts episodes with at
least one hit; latency is first hit time - episode start. Scenarios: each episode's
(aggressor, calls/puts, single strike/cluster); a false alert is attributed to the
episode it mis-named (wrong direction at its strikes and time), else to the market-maker
bait it overlaps (mm_straddle, mm_strangle), else to "quiet".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from magic8.domain.flow import PressureWindow
from magic8.ifd.analysis import AnalysisConfig
from magic8.ifd.detector import IfdConfig, IfdDetector
from magic8.ifd.signals import AlertDispatcher
from magic8.ifd.values import Signal, SignalPolicy
from magic8.settings import REPO_ROOT
from magic8_dev.ifd.memory import (
    ListPublisher,
    MemoryBaselineStore,
    MemoryRateLimiter,
    MemorySignalStore,
    MemoryWindowStore,
    OnceDispatch,
)

DEFAULT_SESSION = REPO_ROOT / "layers" / "shared" / "magic8_dev" / "data" / "sessions" / "sample"
BEFORE = timedelta(minutes=5)
AFTER = timedelta(minutes=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sessions",
        nargs="*",
        type=Path,
        help=f"labelled session folders (default: the shipped sample, {DEFAULT_SESSION})",
    )
    parser.add_argument("--signals", type=Path, help="write every signal as JSON lines here")
    parser.add_argument("--store-threshold", type=float, default=SignalPolicy.store_threshold)
    parser.add_argument(
        "--alert-threshold",
        type=float,
        default=None,
        help="confidence to alert at (default: the threshold fitted to the false-alarm budget)",
    )
    parser.add_argument("--max-alerts-per-hour", type=int, default=SignalPolicy.max_alerts_per_hour)
    parser.add_argument(
        "--no-early", action="store_true", help="no early (non-final) windows in the replay"
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="generate and score the scenario grid (writes bench/results/ifd_grid.json)",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="the latency bound of a detector that knows the generator (likelihood-ratio "
        "CUSUM per trade; writes bench/results/ifd_oracle.json)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="--grid/--fit/--oracle: a shortened run"
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="fit the confidence calibration on generated sessions (seeds apart from the "
        "grid's) and rewrite magic8/ifd/calibration.json",
    )


# -- replay -----------------------------------------------------------------------------


def day_dirs(session: Path) -> list[Path]:
    days = sorted(p for p in session.iterdir() if p.is_dir() and p.name.startswith("day-"))
    if not days:
        raise FileNotFoundError(f"{session}: no day-YYYY-MM-DD folders")
    return days


EARLY_SECONDS = 30.0
SLICE_SECONDS = 30.0  # replay feeds the aggregator this much event time per batch


def gateway_ingest(early_seconds: float | None) -> tuple[Any, list[list[PressureWindow]]]:
    """The gateway's ingestion path (FlowIngest + PressureAggregator, early windows on);
    every emission (one list of windows) is kept as one group, as the gateway sends it."""
    from magic8.flow.aggregator import PressureAggregator
    from magic8.flow.ingest import FlowIngest

    groups: list[list[PressureWindow]] = []
    ingest = FlowIngest(
        PressureAggregator(source="replay", track_keys=False, early_seconds=early_seconds),
        on_windows=lambda ws: groups.append(list(ws)),
    )
    return ingest, groups


def feed_mbo(ingest: Any, records: Any, slice_seconds: float = SLICE_SECONDS) -> None:
    """MBO records (time ordered) through the ingest in event-time slices."""
    import numpy as np

    if len(records) == 0:
        return
    ts = records["ts_event"].astype(np.int64)
    step = int(slice_seconds * 1e9)
    edges = np.arange(int(ts[0]) - int(ts[0]) % step + step, int(ts[-1]) + step, step)
    cuts = np.searchsorted(ts, edges)
    lo = 0
    for hi in [*cuts.tolist(), len(records)]:
        if hi > lo:
            ingest.on_mbo(records[lo:hi], source="replay")
            lo = hi


def replay_day(
    day_dir: Path, early_seconds: float | None = EARLY_SECONDS
) -> list[list[PressureWindow]]:
    """The day's pressure windows, from its DBN files, by the gateway's aggregator (one
    list per emission, in emission order)."""
    import databento as db

    ingest, groups = gateway_ingest(early_seconds)
    for path in sorted(day_dir.glob("definition*.dbn*")):
        store = db.DBNStore.from_file(path)
        ingest.on_metadata(store.metadata)
        ingest.on_definitions(store.to_ndarray())
    for path in sorted(day_dir.glob("mbo*.dbn*")):
        store = db.DBNStore.from_file(path)
        ingest.on_metadata(store.metadata)
        feed_mbo(ingest, store.to_ndarray())
    ingest.flush()
    return groups


def window_groups(windows: Iterable[PressureWindow]) -> list[list[PressureWindow]]:
    """Windows grouped by emission time (window end; an early window's cut), in order."""
    ordered = sorted(windows, key=lambda w: (w.as_of, w.instrument_id))
    return [list(g) for _, g in groupby(ordered, key=lambda w: w.as_of)]


@dataclass
class Replayed:
    signals: list[Signal] = field(default_factory=list)
    windows: int = 0
    alerts_published: int = 0
    rate_limited: int = 0
    # (window_key, direction) -> (best score, option type, strike, earliest as_of,
    # direction) when collecting scores
    scores: dict[tuple[str, str], tuple[float, str, float, datetime, str]] | None = None

    def alerts(self) -> list[Signal]:
        """One per alerted window: its first alerted version (an early one, if any)."""
        first: dict[str, Signal] = {}
        for s in self.signals:
            if s.alerted and s.signal_id not in first:
                first[s.signal_id] = s
        return list(first.values())


def make_detector(config: IfdConfig) -> tuple[IfdDetector, ListPublisher, MemoryRateLimiter]:
    publisher = ListPublisher()
    limiter = MemoryRateLimiter()
    dispatcher = AlertDispatcher(publisher, limiter, config.policy)
    detector = IfdDetector(
        MemoryBaselineStore(),
        MemoryWindowStore(),
        MemorySignalStore(),
        OnceDispatch(dispatcher.dispatch),
        config,
    )
    return detector, publisher, limiter


def run_windows(
    detector: IfdDetector, groups: Iterable[Sequence[PressureWindow]], out: Replayed
) -> None:
    for group in groups:
        detector.observe(group)
        for w in group:
            outcome = detector.handle(w)
            out.windows += 1
            if outcome.signal is not None:
                out.signals.append(outcome.signal)
            a = outcome.assessment
            if out.scores is not None and a is not None and a.direction and w.strike:
                key = (w.window_key, a.direction)
                old = out.scores.get(key)
                if old is None or a.score > old[0]:
                    t = min(old[3], w.as_of) if old else w.as_of
                    out.scores[key] = (a.score, w.option_type or "", w.strike, t, a.direction)


def replay_session(
    session: Path, config: IfdConfig, early_seconds: float | None = EARLY_SECONDS
) -> Replayed:
    detector, publisher, limiter = make_detector(config)
    out = Replayed()
    for day in day_dirs(session):
        run_windows(detector, replay_day(day, early_seconds), out)
    out.alerts_published = len(publisher.alerts)
    out.rate_limited = sum(limiter.excess.values())
    return out


# -- scoring ------------------------------------------------------------------------------


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def episode_scenario(ep: dict[str, Any]) -> str:
    kind = "calls" if ep["option_type"] == "C" else "puts"
    shape = "single" if len(ep["strikes"]) == 1 else "cluster"
    return f"{ep['aggressor']} {kind} {shape} ({ep['direction']})"


def near(ep: dict[str, Any], t: datetime, strike: float) -> bool:
    return _ts(ep["start"]) - BEFORE <= t <= _ts(ep["end"]) + AFTER and any(
        abs(float(k) - strike) < 1e-6 for k in ep.get("strikes") or [ep.get("strike")]
    )


def _near(ep: dict[str, Any], s: Signal) -> bool:
    return near(ep, s.time, s.strike)


def is_hit(ep: dict[str, Any], s: Signal) -> bool:
    return s.option_type == ep["option_type"] and s.direction == ep["direction"] and _near(ep, s)


def score(truth: dict[str, Any], alerts: Sequence[Signal]) -> dict[str, Any]:
    episodes = truth.get("episodes", [])
    bait = truth.get("bait", [])
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"episodes": 0, "detected": 0, "alerts": 0, "hits": 0, "false": 0, "lat": []}
    )
    first_hit: dict[int, datetime] = {}
    for ep in episodes:
        per[episode_scenario(ep)]["episodes"] += 1
    hits = 0
    for s in alerts:
        matched = [i for i, ep in enumerate(episodes) if is_hit(ep, s)]
        if matched:
            hits += 1
            per[episode_scenario(episodes[matched[0]])]["alerts"] += 1
            per[episode_scenario(episodes[matched[0]])]["hits"] += 1
            for i in matched:
                if i not in first_hit or s.time < first_hit[i]:
                    first_hit[i] = s.time
            continue
        wrong = next(
            (ep for ep in episodes if ep["option_type"] == s.option_type and _near(ep, s)), None
        )
        if wrong is not None:
            scenario = episode_scenario(wrong)
        else:
            b = next(
                (
                    b
                    for b in bait
                    if s.option_type in b.get("option_types", ["C", "P"]) and _near(b, s)
                ),
                None,
            )
            scenario = b["kind"] if b is not None else "quiet"
        per[scenario]["alerts"] += 1
        per[scenario]["false"] += 1
    for i, ep in enumerate(episodes):
        if i in first_hit:
            sc = per[episode_scenario(ep)]
            sc["detected"] += 1
            sc["lat"].append((first_hit[i] - _ts(ep["start"])).total_seconds())
    for b in bait:
        per[b["kind"]].setdefault("events", 0)
        per[b["kind"]]["events"] = per[b["kind"]].get("events", 0) + 1

    def finish(d: dict[str, Any]) -> dict[str, Any]:
        lat = d.pop("lat")
        out = dict(d)
        if d["episodes"]:
            out["recall"] = round(d["detected"] / d["episodes"], 4)
        else:
            for k in ("episodes", "detected"):
                out.pop(k)
        out["precision"] = round(d["hits"] / d["alerts"], 4) if d["alerts"] else None
        out["false_alert_rate"] = round(d["false"] / d["alerts"], 4) if d["alerts"] else 0.0
        if lat:
            out["latency_s"] = {
                "mean": round(statistics.fmean(lat), 1),
                "median": round(statistics.median(lat), 1),
                "max": round(max(lat), 1),
            }
        return out

    all_lat = [x for d in per.values() for x in d["lat"]]
    overall = {
        "episodes": len(episodes),
        "detected": len(first_hit),
        "recall": round(len(first_hit) / len(episodes), 4) if episodes else None,
        "alerts": len(alerts),
        "hits": hits,
        "false": len(alerts) - hits,
        "precision": round(hits / len(alerts), 4) if alerts else None,
        "false_alert_rate": round((len(alerts) - hits) / len(alerts), 4) if alerts else 0.0,
        "latency_s": (
            {
                "mean": round(statistics.fmean(all_lat), 1),
                "median": round(statistics.median(all_lat), 1),
                "max": round(max(all_lat), 1),
            }
            if all_lat
            else None
        ),
        "bait_events": len(bait),
    }
    return {"overall": overall, "scenarios": {k: finish(v) for k, v in sorted(per.items())}}


def combine(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Overall counts across sessions (latency: episode-weighted mean, max)."""
    keys = ("episodes", "detected", "alerts", "hits", "false", "bait_events")
    tot = {k: sum(r["overall"][k] for r in reports) for k in keys}
    lats = [r["overall"]["latency_s"] for r in reports if r["overall"]["latency_s"]]
    return {
        **tot,
        "recall": round(tot["detected"] / tot["episodes"], 4) if tot["episodes"] else None,
        "precision": round(tot["hits"] / tot["alerts"], 4) if tot["alerts"] else None,
        "false_alert_rate": round(tot["false"] / tot["alerts"], 4) if tot["alerts"] else 0.0,
        "latency_s": {
            "mean": round(statistics.fmean(x["mean"] for x in lats), 1),
            "max": max(x["max"] for x in lats),
        }
        if lats
        else None,
    }


def config_report(config: IfdConfig) -> dict[str, Any]:
    cal = config.analysis.curve
    return {
        "store_threshold": config.policy.store_threshold,
        "alert_threshold": config.policy.alert_threshold,
        "fitted_alert_threshold": cal.alert_threshold,
        "fitted_score_threshold": cal.score_threshold,
        "false_alarm_budget_per_day": cal.budget_per_day,
        "max_alerts_per_hour": config.policy.max_alerts_per_hour,
        "calibration_matches_config": cal.fitted_on.get("analysis")
        == config.analysis.fingerprint(),
    }


def evaluate(
    sessions: Sequence[Path],
    config: IfdConfig | None = None,
    early_seconds: float | None = EARLY_SECONDS,
) -> tuple[dict[str, Any], list[Signal]]:
    config = config or IfdConfig()
    reports: list[dict[str, Any]] = []
    all_signals: list[Signal] = []
    for session in sessions:
        truth = json.loads((session / "truth.json").read_text())
        replayed = replay_session(session, config, early_seconds)
        alerts = replayed.alerts()
        report = score(truth, alerts)
        report["trading_days"] = len(truth.get("days") or day_dirs(session))
        report["session"] = str(session)
        report["windows"] = replayed.windows
        report["signals_stored"] = len(replayed.signals)
        report["alerts_rate_limited"] = replayed.rate_limited
        report["alerts_continuation"] = sum(
            1 for s in replayed.signals if s.alert_status == "continuation"
        )
        reports.append(report)
        all_signals.extend(replayed.signals)
    overall = combine(reports)
    days = sum(r["trading_days"] for r in reports)
    overall["trading_days"] = days
    overall["false_alerts_per_day"] = round(overall["false"] / days, 4) if days else None
    result: dict[str, Any] = {
        "overall": overall,
        "sessions": reports,
        "config": config_report(config),
    }
    return result, all_signals


def run(args: argparse.Namespace) -> int:
    if args.oracle:
        from magic8_dev.ifd.oracle import run_oracle

        return run_oracle(quick=args.quick)
    if args.grid or args.fit:
        from magic8_dev.ifd.grid import run_fit, run_grid

        return run_fit(quick=args.quick) if args.fit else run_grid(quick=args.quick)
    sessions = list(args.sessions) or [DEFAULT_SESSION]
    for s in sessions:
        if not (s / "truth.json").is_file():
            print(
                f"magic8 evaluate-ifd: {s}: no truth.json (not a labelled session)", file=sys.stderr
            )
            return 2
    policy = SignalPolicy(
        store_threshold=args.store_threshold, max_alerts_per_hour=args.max_alerts_per_hour
    )
    if args.alert_threshold is not None:
        policy = replace(policy, alert_threshold=args.alert_threshold)
    config = IfdConfig(analysis=AnalysisConfig(), policy=policy)
    result, signals = evaluate(sessions, config, None if args.no_early else EARLY_SECONDS)
    if args.signals:
        args.signals.parent.mkdir(parents=True, exist_ok=True)
        with args.signals.open("w", encoding="utf-8") as f:
            for s in signals:
                f.write(json.dumps(s.summary()) + "\n")
    print(json.dumps(result, indent=2))
    return 0
