"""Rolling baselines per (underlying, strike, call/put, time-of-day bucket).

Statistics are kept as per-day aggregates (count, sum and sum of squares of the pressure
ratio and of log1p(volume)) per time-of-day bucket, for the last 20 trading days. One
window updates one day's aggregate in O(1); reading a baseline sums at most 20 small
aggregates — nothing is ever rescanned.

Cold start: a strike with little history is shrunk towards the (underlying, call/put,
bucket) prior, which is shrunk towards the underlying's all-day prior, which is shrunk
towards a fixed default. While the prior itself has fewer than ``min_prior_windows``
windows the baseline is marked ``cold`` and the analysis caps confidence below the alert
threshold (store, never alert, until the underlying has some history).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from magic8.domain.flow import PressureWindow, pressure_ratio

TRADING_DAYS = 20
BUCKET_MINUTES = 30
EXCHANGE_TZ = ZoneInfo("America/New_York")


def trading_day(ts: datetime) -> str:
    """The trading day (exchange-local date, ISO) a window belongs to."""
    return ts.astimezone(EXCHANGE_TZ).date().isoformat()


def tod_bucket(ts: datetime, minutes: int = BUCKET_MINUTES) -> int:
    """Time-of-day bucket in exchange-local time (DST-proof): 0 .. 24*60/minutes - 1."""
    local = ts.astimezone(EXCHANGE_TZ)
    return (local.hour * 60 + local.minute) // minutes


def log_volume(volume: float) -> float:
    return math.log1p(max(volume, 0.0))


@dataclass
class Moments:
    """Sufficient statistics of (ratio, log volume) for a set of windows."""

    n: float = 0.0
    s_r: float = 0.0
    s_r2: float = 0.0
    s_v: float = 0.0
    s_v2: float = 0.0

    def add(self, ratio: float, logvol: float) -> None:
        self.n += 1
        self.s_r += ratio
        self.s_r2 += ratio * ratio
        self.s_v += logvol
        self.s_v2 += logvol * logvol

    def remove(self, ratio: float, logvol: float) -> None:
        self.n = max(self.n - 1, 0.0)
        self.s_r -= ratio
        self.s_r2 -= ratio * ratio
        self.s_v -= logvol
        self.s_v2 -= logvol * logvol

    def merged(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.s_r + other.s_r,
            self.s_r2 + other.s_r2,
            self.s_v + other.s_v,
            self.s_v2 + other.s_v2,
        )

    def to_list(self) -> list[float]:
        return [self.n, self.s_r, self.s_r2, self.s_v, self.s_v2]

    @classmethod
    def from_list(cls, values: list[float]) -> Moments:
        return cls(*(float(v) for v in values))


@dataclass(frozen=True)
class Estimate:
    """Mean and variance of one quantity plus the weight of evidence behind it."""

    mean: float
    var: float
    n: float

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


def shrink(n: float, s: float, s2: float, prior: Estimate, k: float) -> Estimate:
    """Posterior-style blend of observed sums with a prior worth ``k`` pseudo-windows."""
    if n <= 0:
        return Estimate(prior.mean, prior.var, prior.n)
    mean = (s + k * prior.mean) / (n + k)
    sq_dev = max(s2 - 2 * mean * s + n * mean * mean, 0.0)
    var = (sq_dev + k * (prior.var + (prior.mean - mean) ** 2)) / (n + k)
    return Estimate(mean, var, n + prior.n)


@dataclass
class Baseline:
    """Per-bucket, per-day aggregates for one key (a strike, or an underlying prior)."""

    buckets: dict[int, dict[str, Moments]] = field(default_factory=dict)
    _memo: dict[tuple[str, int | None, int], Moments] = field(
        default_factory=dict, repr=False, compare=False
    )
    _rolled: tuple[str, int] | None = field(default=None, repr=False, compare=False)

    def add(self, day: str, bucket: int, ratio: float, logvol: float) -> None:
        self.buckets.setdefault(bucket, {}).setdefault(day, Moments()).add(ratio, logvol)
        if self._memo and any(day < as_of for as_of, _, _ in self._memo):
            self._memo.clear()  # a late window for a day some memoised sum covers

    def add_window(self, window: PressureWindow, bucket_minutes: int = BUCKET_MINUTES) -> None:
        self.add(
            trading_day(window.window_start),
            tod_bucket(window.window_start, bucket_minutes),
            pressure_ratio(window.ask_volume, window.bid_volume),
            log_volume(window.total_volume),
        )

    def remove(self, day: str, bucket: int, ratio: float, logvol: float) -> None:
        """Take one window's contribution back out (a revised window replaces it)."""
        m = self.buckets.get(bucket, {}).get(day)
        if m is not None:
            m.remove(ratio, logvol)
            self._memo.clear()

    def roll(self, as_of: str, days: int = TRADING_DAYS) -> None:
        """Keep ``as_of`` and the ``days`` trading days before it; drop older days."""
        if self._rolled == (as_of, days):
            return
        self._rolled = (as_of, days)
        self._memo.clear()
        for bucket in list(self.buckets):
            per_day = self.buckets[bucket]
            for day in [d for d in per_day if not in_window(d, as_of, days, include_today=True)]:
                del per_day[day]
            if not per_day:
                del self.buckets[bucket]

    def moments(
        self,
        as_of: str,
        bucket: int | None = None,
        days: int = TRADING_DAYS,
        include_today: bool = False,
    ) -> Moments:
        """Aggregate over the ``days`` trading days before ``as_of`` (one or all buckets).

        Past days never change once ``as_of`` has moved on, so their sums are memoised
        (in memory, per object) until the next ``roll``/``remove``.
        """
        key = (as_of, bucket, days)
        past = self._memo.get(key)
        if past is None:
            n = s_r = s_r2 = s_v = s_v2 = 0.0
            keys = [bucket] if bucket is not None else list(self.buckets)
            for b in keys:
                for day, m in self.buckets.get(b, {}).items():
                    if day < as_of and in_window(day, as_of, days):
                        n += m.n
                        s_r += m.s_r
                        s_r2 += m.s_r2
                        s_v += m.s_v
                        s_v2 += m.s_v2
            past = Moments(n, s_r, s_r2, s_v, s_v2)
            self._memo[key] = past
        if not include_today:
            return past
        total = Moments(past.n, past.s_r, past.s_r2, past.s_v, past.s_v2)
        keys = [bucket] if bucket is not None else list(self.buckets)
        for b in keys:
            today = self.buckets.get(b, {}).get(as_of)
            if today is not None:
                total = total.merged(today)
        return total

    def to_json(self) -> str:
        return json.dumps(
            {
                str(b): {d: m.to_list() for d, m in per_day.items()}
                for b, per_day in self.buckets.items()
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | None) -> Baseline:
        if not raw:
            return cls()
        data: dict[str, dict[str, list[float]]] = json.loads(raw)
        return cls(
            {
                int(b): {d: Moments.from_list(v) for d, v in per_day.items()}
                for b, per_day in data.items()
            }
        )


@lru_cache(maxsize=8192)
def in_window(day: str, as_of: str, days: int = TRADING_DAYS, include_today: bool = False) -> bool:
    """True when ``day`` is one of the ``days`` trading days (weekdays) before ``as_of``.

    ``as_of`` itself counts only with ``include_today``.
    """
    if day >= as_of:
        return include_today and day == as_of
    return int(np.busday_count(date.fromisoformat(day), date.fromisoformat(as_of))) <= days


@dataclass(frozen=True)
class BaselineConfig:
    trading_days: int = TRADING_DAYS
    bucket_minutes: int = BUCKET_MINUTES
    shrink_k: float = 6.0  # pseudo-windows a prior is worth
    min_prior_windows: int = 30  # below this the baseline is "cold" (confidence capped)
    default_logvol_mean: float = math.log1p(10.0)
    default_logvol_std: float = 1.0
    default_ratio_std: float = 0.6
    logvol_std_floor: float = 0.35
    ratio_std_floor: float = 0.2


@dataclass(frozen=True)
class BaselineStats:
    """What the analysis needs: expected ratio and log volume at this strike and time."""

    logvol: Estimate
    ratio: Estimate
    n_strike: float  # windows at this strike and bucket in the last 20 trading days
    n_prior: float  # windows at this underlying/type in the last 20 trading days
    cold: bool
    history_days: bool = True  # False: cold start, today's windows were used too

    def volume_z(self, volume: float, floor: float) -> float:
        return (log_volume(volume) - self.logvol.mean) / max(self.logvol.std, floor)

    def ratio_z(self, ratio: float, floor: float) -> float:
        return abs(ratio - self.ratio.mean) / max(self.ratio.std, floor)


def baseline_stats(
    strike: Baseline,
    prior: Baseline,
    day: str,
    bucket: int,
    cfg: BaselineConfig = BaselineConfig(),
) -> BaselineStats:
    """Strike/bucket statistics, shrunk towards bucket prior -> all-day prior -> default.

    Uses the 20 trading days before ``day`` (today's flow never dilutes its own
    baseline). Cold start: while those days hold fewer than ``min_prior_windows`` windows
    of the underlying/type, today's earlier windows of the underlying's priors are used
    too — never the strike's own same-day windows (an episode would otherwise become its
    own baseline) — and the result is ``cold`` (confidence capped) until even that
    reaches ``min_prior_windows``.
    """
    n_days = cfg.trading_days
    all_day = prior.moments(day, None, n_days)
    include_today = all_day.n < cfg.min_prior_windows
    if include_today:
        all_day = prior.moments(day, None, n_days, include_today=True)
    at_bucket = prior.moments(day, bucket, n_days, include_today)
    mine = strike.moments(day, bucket, n_days)
    default_v = Estimate(cfg.default_logvol_mean, cfg.default_logvol_std**2, 0.0)
    default_r = Estimate(0.0, cfg.default_ratio_std**2, 0.0)
    k = cfg.shrink_k
    v = shrink(all_day.n, all_day.s_v, all_day.s_v2, default_v, k)
    r = shrink(all_day.n, all_day.s_r, all_day.s_r2, default_r, k)
    v = shrink(at_bucket.n, at_bucket.s_v, at_bucket.s_v2, v, k)
    r = shrink(at_bucket.n, at_bucket.s_r, at_bucket.s_r2, r, k)
    v = shrink(mine.n, mine.s_v, mine.s_v2, v, k)
    r = shrink(mine.n, mine.s_r, mine.s_r2, r, k)
    return BaselineStats(
        logvol=v,
        ratio=r,
        n_strike=mine.n,
        n_prior=all_day.n,
        cold=all_day.n < cfg.min_prior_windows,
        history_days=not include_today,
    )


def batch_moments(rows: list[tuple[str, int, float, float]], as_of: str, bucket: int) -> Moments:
    """Reference (non-incremental) computation used by tests: rows of (day, bucket, r, v)."""
    sel = np.array(
        [(r, v) for d, b, r, v in rows if b == bucket and in_window(d, as_of)],
        dtype=float,
    ).reshape(-1, 2)
    return Moments(
        float(len(sel)),
        float(sel[:, 0].sum()),
        float((sel[:, 0] ** 2).sum()),
        float(sel[:, 1].sum()),
        float((sel[:, 1] ** 2).sum()),
    )


def as_dict(stats: BaselineStats) -> dict[str, Any]:
    return {
        "logvol_mean": round(stats.logvol.mean, 4),
        "logvol_std": round(stats.logvol.std, 4),
        "ratio_mean": round(stats.ratio.mean, 4),
        "ratio_std": round(stats.ratio.std, 4),
        "n_strike": stats.n_strike,
        "n_prior": stats.n_prior,
        "cold": stats.cold,
    }
