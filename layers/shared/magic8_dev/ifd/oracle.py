"""`magic8 evaluate-ifd --oracle`: the latency bound of a detector that knows the generator.

The oracle sees every trade (time, strike, size, aggressor side: more than the detector's
per-window sums) and knows the exact generating distribution of one grid row
(magic8_dev.flow.generator): the quiet-flow rate of every option, its size mix
(geometric(0.45) clipped at 40, 3% blocks of 10-60 lots) and sides (49/49/2% unknown),
and the episode's rate (one trade per 20 s over its strikes), size range and purity.

For every hypothesis "an episode on calls|puts at these 1-3 neighbouring OTM strikes
(0-6 strikes from the money), with buy|sell aggressors" it runs a likelihood-ratio CUSUM
on the exact per-trade likelihood ratio (episode + quiet flow vs quiet flow):

    W = max(0, W + log(1 + mu_k f1(size) p1(side) / (lambda_k f0(size) p0(side))) - mu dt)

and alerts direction d when W_d >= h and the direction evidence accumulated over W_d's
segment, sum log(p_d(side) / p_-d(side)), is >= g (a wrong-direction alert is a false
alert). (h, g) are chosen to minimise the median latency subject to the grid's budget:
false alerts from quiet flow plus wrong-direction alerts <= 0.2 per underlying per
trading day (3 episodes per active day, as in the grid).

Its null is quiet flow only (no market-maker bait, which has the episode's sizes and
rates and could only force a higher threshold) and its alerts are continuous in time
(the gateway cuts early windows every 30 s): the oracle's latency is a lower bound for
any detector on these sessions. Rows that differ only in what the oracle already knows
(first hour, cold start, buying/selling, bait) share the default row's bound.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magic8.settings import REPO_ROOT
from magic8_dev.flow.generator import STRIKE_STEP, SessionParams
from magic8_dev.ifd.evaluate import EARLY_SECONDS
from magic8_dev.ifd.grid import minutes_text

ORACLE_RESULT = REPO_ROOT / "bench" / "results" / "ifd_oracle.json"
SESSION_MIN = 390.0  # 13:30-20:00 UTC
EPISODE_RATE = 60.0 / SessionParams().episode_trade_interval_s  # trades per minute
EPISODES_PER_DAY = 3.0
BUDGET_PER_DAY = 0.2
CUT_MIN = EARLY_SECONDS / 60.0  # the gateway's early-window cadence
REFRACTORY_MIN = 30.0  # alerts of one type within this of each other are one alert
HYP_OFFSETS = range(7)  # episode centres: 0..6 strikes out of the money
HYP_WIDTHS = (1, 2, 3)
G_GRID = tuple(0.25 * i for i in range(25))  # direction evidence thresholds tried (nats)
P_BLOCK = SessionParams().quiet_block_share


@dataclass(frozen=True)
class Row:
    name: str
    quiet_trades_per_day: int = SessionParams().quiet_trades_per_day
    purity: float = 0.9
    size: tuple[int, int] = (15, 60)
    minutes: tuple[int, int] = (15, 45)
    widths: tuple[int, ...] = (1, 2, 3)  # the generator: single 1, cluster 2-3


BASE = SessionParams().quiet_trades_per_day
SMALL: dict[str, Any] = {"size": (5, 15), "minutes": (15, 20)}
ROWS: tuple[Row, ...] = (
    Row("default"),
    Row("volume x3", quiet_trades_per_day=3 * BASE),
    Row("volume x10", quiet_trades_per_day=10 * BASE),
    Row("purity 0.8", purity=0.8),
    Row("purity 0.7", purity=0.7),
    Row("small size", **SMALL),
    Row("small single strike", widths=(1,), **SMALL),
    Row("single strike", widths=(1,)),
    Row("several strikes", widths=(2, 3)),
    Row("volume x10, small", quiet_trades_per_day=10 * BASE, **SMALL),
)
SAME_AS_DEFAULT = ("first hour", "cold start", "buying", "selling", "bait x4")


# -- the generating distribution ----------------------------------------------------------


def quiet_size_pmf(max_size: int = 60) -> np.ndarray:
    """P(size = s), s = 0..max_size, of a quiet trade (the generator's mix)."""
    s = np.arange(max_size + 1)
    geo = np.where((s >= 1) & (s < 40), 0.45 * 0.55 ** (s - 1.0), 0.0)
    geo[40] = 0.55**39
    block = np.where((s >= 10) & (s <= 60), 1.0 / 51, 0.0)
    return (1 - P_BLOCK) * geo + P_BLOCK * block


F0 = quiet_size_pmf()


def episode_size_pmf(size: tuple[int, int]) -> np.ndarray:
    s = np.arange(61)
    return np.where((s >= size[0]) & (s <= size[1]), 1.0 / (size[1] - size[0] + 1), 0.0)


def option_rates(q_per_day: float, spot: float, atm: float, each_side: int = 16) -> np.ndarray:
    """Quiet trades per minute per strike index (-each_side..each_side) x (C, P)."""
    k = atm + STRIKE_STEP * np.arange(-each_side, each_side + 1)
    w = np.exp(-np.abs(k - spot) / 250.0)
    w = np.repeat(w[:, None], 2, axis=1)  # both types
    return q_per_day * w / w.sum() / SESSION_MIN


def sample_quiet(
    rng: np.random.Generator, rate: float, t0: float, t1: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, sizes, sides) of one option's quiet trades; sides 1 buy, -1 sell, 0 unknown."""
    n = rng.poisson(rate * (t1 - t0))
    t = np.sort(rng.uniform(t0, t1, n))
    size = rng.choice(61, size=n, p=F0)
    u = rng.random(n)
    side = np.where(u < 0.02, 0, np.where(u < 0.51, 1, -1))
    return t, size, side


# -- the CUSUM ----------------------------------------------------------------------------


@dataclass
class Track:
    """One hypothesis' statistic at each of its trades: W_d and direction evidence D_d."""

    t: np.ndarray
    w: np.ndarray  # (2, n): W for buy-aggressor, sell-aggressor episodes
    d: np.ndarray  # (2, n)


def cusum_track(
    t: np.ndarray,
    lam: np.ndarray,
    size: np.ndarray,
    side: np.ndarray,
    width: int,
    f1: np.ndarray,
    purity: float,
) -> Track:
    """t, lam (quiet rate of the trade's strike), size, side of the merged trades of a
    hypothesis' strikes, time ordered; t from the start of the stretch (minutes)."""
    mu = EPISODE_RATE / width
    p0 = np.where(side == 0, 0.02, 0.49)
    base = lam * F0[size] * p0
    llr = np.empty((2, len(t)))
    for i, sgn in enumerate((1, -1)):
        p1 = np.where(side == sgn, purity, np.where(side == -sgn, 1 - purity, 0.0))
        llr[i] = np.log1p(mu * f1[size] * p1 / base)
    comp = EPISODE_RATE * t  # total episode rate over the hypothesis' strikes
    after = np.cumsum(llr, axis=1) - comp
    before = after - llr
    w = np.empty_like(after)
    d = np.empty_like(after)
    for i in range(2):
        b = np.r_[0.0, before[i]]  # b[0]: the stretch's start (S = 0); b[m + 1]: before trade m
        acc = np.minimum.accumulate(b)
        w[i] = after[i] - acc[1:]
        # where the running minimum was set: W's segment starts at trade m - 1 (m = 0: start)
        new_min = np.r_[True, b[1:] < acc[:-1]]
        m = np.maximum.accumulate(np.where(new_min, np.arange(len(b)), 0))[1:]
        delta = llr[i] - llr[1 - i]
        diff = np.cumsum(delta)
        excl = diff - delta  # sum before trade j
        d[i] = diff - np.where(m >= 1, excl[np.maximum(m - 1, 0)], 0.0)
    return Track(t, w, d)


def first_alert(tr: Track, h: float, g: float) -> tuple[float, float]:
    """(first time direction 0 alerts, first time direction 1 alerts); inf when never."""
    out = []
    for i in range(2):
        ok = (tr.w[i] >= h) & (tr.d[i] >= g)
        j = int(np.argmax(ok)) if len(ok) else 0
        out.append(float(tr.t[j]) if len(ok) and ok[j] else math.inf)
    return out[0], out[1]


def alert_times(tr: Track, h: float, g: float) -> np.ndarray:
    ok = ((tr.w >= h) & (tr.d >= g)).any(axis=0)
    return tr.t[ok]


def hypotheses(option_type: str, atm_index: int, each_side: int = 16) -> list[list[int]]:
    """Strike index lists (0..2*each_side) of every episode hypothesis of one type."""
    step = 1 if option_type == "C" else -1
    out = []
    for off in HYP_OFFSETS:
        for width in HYP_WIDTHS:
            ks = [atm_index + step * (off + i) for i in range(width)]
            ks = [k for k in ks if 0 <= k <= 2 * each_side]
            if len(ks) == width:
                out.append(ks)
    return out


def tracks_for(
    streams: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]],
    hyps: list[list[int]],
    f1: np.ndarray,
    purity: float,
) -> list[tuple[list[int], Track]]:
    out = []
    for ks in hyps:
        parts = [streams[k] for k in ks]
        t = np.concatenate([p[0] for p in parts])
        order = np.argsort(t, kind="stable")
        size = np.concatenate([p[1] for p in parts])[order]
        side = np.concatenate([p[2] for p in parts])[order]
        lam = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])[order]
        out.append((ks, cusum_track(t[order], lam, size, side, len(ks), f1, purity)))
    return out


# -- simulation ---------------------------------------------------------------------------


def null_days(row: Row, days: int, rng: np.random.Generator) -> list[list[Track]]:
    """Per quiet day, the tracks of every hypothesis (both types)."""
    f1 = episode_size_pmf(row.size)
    out = []
    for _ in range(days):
        atm, spot = 20_000.0, 20_000.0 + rng.uniform(-12.5, 12.5)
        rates = option_rates(row.quiet_trades_per_day, spot, atm)
        day: list[Track] = []
        for j, cp in enumerate(("C", "P")):
            hyps = hypotheses(cp, 16)
            ks = sorted({k for h in hyps for k in h})
            streams = {}
            for k in ks:
                t, s, sd = sample_quiet(rng, float(rates[k, j]), 0.0, SESSION_MIN)
                streams[k] = (t, s, sd, float(rates[k, j]))
            day.extend(tr for _, tr in tracks_for(streams, hyps, f1, row.purity))
        out.append(day)
    return out


@dataclass
class EpisodeSim:
    start: float
    end: float
    buy: bool  # the episode's aggressor
    tracks: list[Track]  # hypotheses of its type that include one of its strikes


def episode_sims(row: Row, n: int, rng: np.random.Generator) -> list[EpisodeSim]:
    f1 = episode_size_pmf(row.size)
    out = []
    warm = 60.0
    for _ in range(n):
        atm, spot = 20_000.0, 20_000.0 + rng.uniform(-12.5, 12.5)
        rates = option_rates(row.quiet_trades_per_day, spot, atm)
        cp = "C" if rng.random() < 0.5 else "P"
        j = 0 if cp == "C" else 1
        step = 1 if cp == "C" else -1
        width = int(rng.choice(row.widths))
        centre = 16 + step * int(rng.integers(0, 7))
        ep_ks = [centre + step * i for i in range(width)]
        dur = float(rng.integers(row.minutes[0], row.minutes[1] + 1))
        start, end = warm, warm + dur
        horizon = end + 10.0
        buy = bool(rng.random() < 0.5)
        p_buy = row.purity if buy else 1 - row.purity
        hyps = [h for h in hypotheses(cp, 16) if set(h) & set(ep_ks)]
        ks = sorted({k for h in hyps for k in h})
        streams = {}
        n_ep = max(1, rng.poisson(dur * EPISODE_RATE))
        ep_k = rng.choice(ep_ks, n_ep)
        ep_t = rng.uniform(start, end, n_ep)
        ep_s = rng.integers(row.size[0], row.size[1] + 1, n_ep)
        ep_side = np.where(rng.random(n_ep) < p_buy, 1, -1)
        for k in ks:
            t, s, sd = sample_quiet(rng, float(rates[k, j]), 0.0, horizon)
            m = ep_k == k
            t = np.r_[t, ep_t[m]]
            order = np.argsort(t, kind="stable")
            streams[k] = (
                t[order],
                np.r_[s, ep_s[m]][order],
                np.r_[sd, ep_side[m]][order],
                float(rates[k, j]),
            )
        out.append(
            EpisodeSim(start, end, buy, [tr for _, tr in tracks_for(streams, hyps, f1, row.purity)])
        )
    return out


def null_rate(days: list[list[Track]], h: float, g: float) -> float:
    """Alerts per day (alerts of one type within REFRACTORY_MIN of each other are one)."""
    n = 0
    for day in days:
        # hypotheses are listed calls first, then puts (same count each)
        half = len(day) // 2
        for part in (day[:half], day[half:]):
            ts = np.sort(np.concatenate([alert_times(tr, h, g) for tr in part]))
            if len(ts):
                n += 1 + int(np.count_nonzero(np.diff(ts) > REFRACTORY_MIN))
    return n / max(len(days), 1)


def episode_outcomes(
    eps: list[EpisodeSim], h: float, g: float
) -> tuple[list[float], list[float], int, int]:
    """(latencies of caught episodes, the same at the gateway's early-window cuts, misses,
    episodes with a wrong-direction alert)."""
    lat: list[float] = []
    cut: list[float] = []
    missed = wrong = 0
    for ep in eps:
        right = wrong_t = math.inf
        for tr in ep.tracks:
            tb, ts = first_alert(tr, h, g)
            r, w = (tb, ts) if ep.buy else (ts, tb)
            right, wrong_t = min(right, r), min(wrong_t, w)
        if right <= ep.end + 10.0 and right >= ep.start - 5.0:
            lat.append(right - ep.start)
            cut.append(math.ceil(right / CUT_MIN) * CUT_MIN - ep.start)
        else:
            missed += 1
        if wrong_t <= ep.end + 10.0:
            wrong += 1
    return lat, cut, missed, wrong


def bound(row: Row, null_n: int, ep_n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    days = null_days(row, null_n, rng)
    eps = episode_sims(row, ep_n, rng)
    best: dict[str, Any] | None = None
    for g in G_GRID:
        # the lowest h whose quiet-flow alerts fit what the budget leaves (bisection)
        lo, hi = 0.0, 60.0
        for _ in range(14):
            mid = (lo + hi) / 2
            if null_rate(days, mid, g) > BUDGET_PER_DAY:
                lo = mid
            else:
                hi = mid
        for h in (hi, hi + 1, hi + 2, hi + 4):
            null = null_rate(days, h, g)
            lat, cut, missed, wrong = episode_outcomes(eps, h, g)
            false_per_day = null + EPISODES_PER_DAY * wrong / len(eps)
            if false_per_day > BUDGET_PER_DAY or not lat or missed > 0.1 * len(eps):
                continue
            cand = {
                "h": round(h, 2),
                "g": g,
                "false_per_day": round(false_per_day, 4),
                "quiet_false_per_day": round(null, 4),
                "wrong_direction_share": round(wrong / len(eps), 4),
                "recall": round(len(lat) / len(eps), 4),
                "median_s": round(60 * statistics.median(lat), 1),
                "p90_s": round(60 * float(np.quantile(lat, 0.9)), 1),
                "p95_s": round(60 * float(np.quantile(lat, 0.95)), 1),
                "max_s": round(60 * max(lat), 1),
                # alerts seen only at the gateway's early-window cuts (event time)
                "median_at_cuts_s": round(60 * statistics.median(cut), 1),
                "max_at_cuts_s": round(60 * max(cut), 1),
                # latency > 10 min (the worst-case target), per episode and for the worst
                # of a grid row's 21 episodes (3 seeds x 7)
                "over_10min_share": round(sum(x > 10 for x in cut) / len(eps), 4),
                "worst_of_21_over_10min": round(
                    1 - (1 - sum(x > 10 for x in cut) / len(eps)) ** 21, 3
                ),
            }
            if best is None or cand["median_s"] < best["median_s"]:
                best = cand
            break
    return {"scenario": row.name, "null_days": null_n, "episodes": ep_n, **(best or {})}


NULL_DAYS = 60
EPISODES = 400
QUICK_NULL_DAYS = 10
QUICK_EPISODES = 60
SEED = 12


def oracle(
    rows: tuple[Row, ...] = ROWS,
    null_days_: int = NULL_DAYS,
    episodes: int = EPISODES,
    seed: int = SEED,
    progress: bool = False,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = []
    for i, row in enumerate(rows):
        r = bound(row, null_days_, episodes, seed + i)
        out.append(r)
        if progress:
            print(format_row(r), file=sys.stderr, flush=True)
    return {
        "rows": out,
        "same_as_default": list(SAME_AS_DEFAULT),
        "budget_per_day": BUDGET_PER_DAY,
        "episodes_per_day": EPISODES_PER_DAY,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


HEADER = (
    "| scenario | oracle median | p95 | worst | median at 30-s cuts | > 10 min "
    "(P(worst of 21 > 10 min)) | wrong direction |\n|---|---|---|---|---|---|---|"
)


def format_row(r: dict[str, Any]) -> str:
    return (
        f"| {r['scenario']} | {minutes_text(r.get('median_s'))} | {minutes_text(r.get('p95_s'))} | "
        f"{minutes_text(r.get('max_s'))} | {minutes_text(r.get('median_at_cuts_s'))} | "
        f"{100 * r.get('over_10min_share', 0):.1f}% ({r.get('worst_of_21_over_10min', 0):.2f}) | "
        f"{100 * r.get('wrong_direction_share', 0):.1f}% |"
    )


def table(result: dict[str, Any]) -> str:
    return "\n".join([HEADER, *(format_row(r) for r in result["rows"])])


def run_oracle(quick: bool = False, out: Path | None = ORACLE_RESULT) -> int:
    n_null, n_ep = (QUICK_NULL_DAYS, QUICK_EPISODES) if quick else (NULL_DAYS, EPISODES)
    result = oracle(null_days_=n_null, episodes=n_ep, progress=True)
    print(table(result))
    print(f"(rows {', '.join(SAME_AS_DEFAULT)}: as default); {result['elapsed_s']} s")
    if out is not None and not quick:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0
