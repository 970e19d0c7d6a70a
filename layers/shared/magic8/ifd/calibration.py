"""Calibrated IFD confidence: evidence score -> false-alarm rate -> confidence.

The analysis turns a window into an evidence score (z units: how far the net aggressor
volume is from balanced flow, plus a bounded bonus for volume unusual against the strike's
baseline, times one minus the market-making penalty). What a score means is measured, not
assumed: on the non-episode windows of labelled sessions (several volumes, trade-size
mixes and amounts of market-maker bait), ``rate(s)`` is the number of windows scoring at
least ``s`` per underlying per trading day — the worst regime's rate, so it holds at any
volume. Beyond the highest score seen in flow without episodes, the rate decays
exponentially with the fitted tail scale.

confidence = exp(-rate(score)): the probability that a trading day of flow without
institutional activity produces no window scoring this high on the underlying.
Confidence 0.85 means such a window turns up about 0.16 times per underlying per day
(once in ~6 trading days); 0.95 once in ~20 days. The alert threshold is the confidence of
the lowest score whose rate fits the false-alarm budget (default: at most 1 false alert
per underlying per 5 trading days, fitted with a safety margin).

The fitted curve ships as ``calibration.json`` next to this module, with the analysis
configuration it was fitted on (``magic8 evaluate-ifd --fit`` rewrites it).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
DEFAULT_BUDGET_PER_DAY = 1.0 / 5.0  # at most 1 false alert per underlying per 5 trading days


@dataclass(frozen=True)
class Calibration:
    scores: tuple[float, ...]  # ascending evidence scores
    rates: tuple[float, ...]  # false windows per underlying per day scoring >= the score
    tail_scale: float  # rate decays as exp(-(s - scores[-1]) / tail_scale) beyond the data
    score_threshold: float  # alert when score >= this ...
    alert_threshold: float  # ... i.e. confidence >= this
    budget_per_day: float = DEFAULT_BUDGET_PER_DAY
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)

    def rate(self, score: float) -> float:
        """Expected false windows per underlying per trading day at or above ``score``."""
        xs, ys = self.scores, self.rates
        if not xs:
            return math.inf
        if score <= xs[0]:
            return ys[0] * math.exp((xs[0] - score) / max(self.tail_scale, 1e-6))
        if score >= xs[-1]:
            return ys[-1] * math.exp(-(score - xs[-1]) / max(self.tail_scale, 1e-6))
        i = bisect.bisect_right(xs, score)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if y0 <= 0 or y1 <= 0 or x1 <= x0:
            return y1
        t = (score - x0) / (x1 - x0)
        return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))

    def confidence(self, score: float) -> float:
        return math.exp(-self.rate(score))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["scores"] = tuple(float(x) for x in kw.get("scores", ()))
        kw["rates"] = tuple(float(x) for x in kw.get("rates", ()))
        return cls(**kw)


def fit(
    scores_by_regime: Mapping[str, tuple[Sequence[float], float]],
    budget_per_day: float = DEFAULT_BUDGET_PER_DAY,
    margin: float = 0.5,
    points: int = 60,
    fitted_on: dict[str, Any] | None = None,
) -> Calibration:
    """Fit the curve on non-episode window scores.

    ``scores_by_regime``: regime -> (the best score of each non-episode window, the number
    of underlying-trading-days it covers). The rate at s is the worst regime's count of
    windows >= s per underlying-day; the alert threshold is the lowest score whose rate is
    at most ``margin * budget_per_day`` (the margin keeps the budget on unseen sessions).
    """
    regimes = {k: (sorted(v), max(d, 1e-9)) for k, (v, d) in scores_by_regime.items() if v}
    pooled = sorted(s for v, _ in regimes.values() for s in v)
    if not pooled:
        raise ValueError("no non-episode windows to fit on")

    def rate(s: float) -> float:
        return max((len(v) - bisect.bisect_left(v, s)) / d for v, d in regimes.values())

    # grid: from the median non-episode score up to the highest one
    lo = pooled[len(pooled) // 2]
    hi = pooled[-1]
    xs = [lo + (hi - lo) * i / (points - 1) for i in range(points)] if hi > lo else [lo]
    ys = [rate(x) for x in xs]
    # the tail: mean excess of the worst regime's top scores over the last grid point
    top = sorted(
        (s for v, _ in regimes.values() for s in v[-20:]),
        reverse=True,
    )[:20]
    ref = top[-1] if top else hi
    excess = [s - ref for s in top if s > ref]
    tail = max(sum(excess) / len(excess) if excess else 0.5, 0.25)
    # keep rates strictly positive and non-increasing (log interpolation)
    floor = min(1.0 / d for _, d in regimes.values())
    out_y: list[float] = []
    for y in ys:
        y = max(y, floor * 0.5)
        out_y.append(min(y, out_y[-1]) if out_y else y)
    cal = Calibration(tuple(xs), tuple(out_y), tail, 0.0, 0.0, budget_per_day, fitted_on or {})
    target = margin * budget_per_day
    # lowest score with rate <= target (rates are non-increasing; the tail is exponential)
    if cal.rate(xs[0]) <= target:
        threshold = xs[0]
    else:
        a, b = xs[0], xs[-1]
        while cal.rate(b) > target:
            b += tail
        for _ in range(60):
            m = (a + b) / 2
            if cal.rate(m) > target:
                a = m
            else:
                b = m
        threshold = b
    return Calibration(
        cal.scores,
        cal.rates,
        tail,
        round(threshold, 4),
        math.floor(cal.confidence(threshold) * 1e4) / 1e4,
        budget_per_day,
        fitted_on or {},
    )


FALLBACK = Calibration(
    scores=(3.0, 4.0, 5.0),
    rates=(2.0, 0.2, 0.02),
    tail_scale=0.43,
    score_threshold=4.3,
    alert_threshold=0.9,
    fitted_on={"note": "fallback (no calibration.json)"},
)


@lru_cache(maxsize=4)
def load_calibration(path: Path = CALIBRATION_PATH) -> Calibration:
    """The shipped calibration (read once, lazily); the fallback when there is none."""
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return FALLBACK
