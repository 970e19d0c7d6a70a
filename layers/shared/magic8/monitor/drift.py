"""Feature drift: population stability index (PSI) of live features vs the training set.

The training manifest (models/manifest.json, written by `magic8 train`) carries, per
feature, bin edges and the proportion of training rows in each bin. Live feature values
are binned on the same edges (values outside the outer edges fall in the end bins) and

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

with proportions floored at `EPS` so empty bins stay finite. Rule of thumb: < 0.1
stable, 0.1-0.25 moderate shift, > 0.25 major shift (the default alert threshold).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from magic8.domain.alerts import Alert

EPS = 1e-4
DEFAULT_PSI_THRESHOLD = 0.25
DEFAULT_MIN_SAMPLES = 50
# Keys tried, in order, for the per-feature distributions in the manifest.
MANIFEST_KEYS: tuple[str, ...] = (
    "drift",  # magic8_dev.ml.train.drift_summary: {name: {edges (inner), expected, nan_share}}
    "feature_distributions",
    "feature_bins",
    "drift_reference",
    "distributions",
)


class FeatureDistribution(BaseModel):
    """Training distribution of one feature: k+1 increasing bin edges, k proportions.

    With `nan_share` (the training share of missing values) a last "missing" bin is added:
    expected = proportions * (1 - nan_share) + [nan_share]; live NaNs count in it.
    """

    model_config = ConfigDict(frozen=True)

    edges: list[float] = Field(min_length=2)
    proportions: list[float] = Field(min_length=1)
    nan_share: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureDistribution:
        if len(self.edges) != len(self.proportions) + 1:
            raise ValueError("edges must have one more element than proportions")
        finite = [e for e in self.edges if math.isfinite(e)]
        if any(b <= a for a, b in itertools.pairwise(finite)):
            raise ValueError("edges must increase")
        if any(p < 0 for p in self.proportions) or sum(self.proportions) <= 0:
            raise ValueError("proportions must be non-negative with a positive sum")
        return self

    @property
    def n_bins(self) -> int:
        return len(self.proportions) + (1 if self.nan_share is not None else 0)

    def expected(self) -> np.ndarray:
        e = np.asarray(self.proportions, dtype=float)
        e = e / e.sum()
        if self.nan_share is not None:
            e = np.append(e * (1.0 - self.nan_share), self.nan_share)
        return e

    def counts(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Live values per bin (outer bins open-ended; NaNs in the missing bin if any)."""
        v = np.asarray(values, dtype=float)
        finite = v[np.isfinite(v)]
        inner = np.asarray(self.edges[1:-1], dtype=float)
        # bin i holds edges[i] <= x < edges[i+1]; below/above the outer edges -> end bins
        idx = np.searchsorted(inner, finite, side="right")
        counts = np.bincount(idx, minlength=len(self.proportions)).astype(float)
        if self.nan_share is not None:
            counts = np.append(counts, float(len(v) - len(finite)))
        return counts

    def actual(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Proportions of `values` per bin."""
        counts = self.counts(values)
        return counts / counts.sum() if counts.sum() else counts


def parse_manifest(manifest: Mapping[str, Any]) -> dict[str, FeatureDistribution]:
    """Per-feature training distributions from the manifest ({} if it has none)."""
    section: Any = None
    for key in MANIFEST_KEYS:
        if isinstance(manifest.get(key), Mapping):
            section = manifest[key]
            break
    if section is None:
        return {}
    if isinstance(section.get("features"), Mapping):
        section = section["features"]
    out: dict[str, FeatureDistribution] = {}
    for name, spec in section.items():
        if not isinstance(spec, Mapping):
            continue
        edges = spec.get("bin_edges", spec.get("edges"))
        props = spec.get("expected", spec.get("proportions", spec.get("expected_proportions")))
        if edges is None or props is None or len(props) < 2:
            continue  # absent, or a constant feature (one bin): nothing to compare
        full = [float(e) for e in edges]
        if len(full) == len(props) - 1:  # inner edges only (magic8_dev.ml.train)
            full = [-math.inf, *full, math.inf]
        nan_share = spec.get("nan_share")
        out[str(name)] = FeatureDistribution(
            edges=full,
            proportions=[float(p) for p in props],
            nan_share=float(nan_share) if nan_share is not None else None,
        )
    return out


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    e = np.clip(np.asarray(expected, dtype=float), eps, None)
    a = np.clip(np.asarray(actual, dtype=float), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


class FeatureDrift(BaseModel):
    feature: str
    psi: float
    n: int
    drifted: bool


class DriftReport(BaseModel):
    threshold: float
    min_samples: int
    features: list[FeatureDrift]
    skipped: list[str] = Field(default_factory=list)  # too few live values

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)


def check_counts(
    reference: Mapping[str, FeatureDistribution],
    counts: Mapping[str, Sequence[float] | np.ndarray],
    threshold: float = DEFAULT_PSI_THRESHOLD,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """PSI per feature from live counts per bin (the reference's bins)."""
    features: list[FeatureDrift] = []
    skipped: list[str] = []
    for name, dist in reference.items():
        if name not in counts:
            continue
        c = np.asarray(counts[name], dtype=float)
        n = int(c.sum())
        if n < min_samples:
            skipped.append(name)
            continue
        score = psi(dist.expected(), c / n)
        features.append(FeatureDrift(feature=name, psi=score, n=n, drifted=score > threshold))
    return DriftReport(
        threshold=threshold, min_samples=min_samples, features=features, skipped=skipped
    )


def check_drift(
    reference: Mapping[str, FeatureDistribution],
    live: Mapping[str, Sequence[float] | np.ndarray],
    threshold: float = DEFAULT_PSI_THRESHOLD,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """PSI per feature present in both the reference and the live sample."""
    counts = {name: dist.counts(live[name]) for name, dist in reference.items() if name in live}
    return check_counts(reference, counts, threshold, min_samples)


# Features whose live distribution says which trades are watched or what time it is, not
# how the market behaves: one day's sweeps cover part of a session and one weekday.
DEFAULT_EXCLUDED: frozenset[str] = frozenset(
    {
        "minutes_since_open",
        "minutes_to_close",
        "day_of_week",
        "expected_move",
        "is_butterfly",
        "is_iron_condor",
        "is_vertical",
        "is_sonar",
        "action_sell",
        "vertical_call",
        "has_short_term",
        "has_long_term",
    }
)


DEFAULT_WINDOW_DAYS = 20
# days of live data before judging: the market features of a few days cover a narrow
# slice of the training years (one VIX regime), which is not yet drift
DEFAULT_MIN_DAYS = 5


class DriftAccumulator(BaseModel):
    """Live counts per feature bin, per trading day, over a rolling window of days (kept
    in the sweep state). One day alone is no population: within a day the market
    features barely move, so PSI is judged on the whole window."""

    days: dict[date, dict[str, list[int]]] = Field(default_factory=dict)
    rows_by_day: dict[date, int] = Field(default_factory=dict)
    alerted_day: date | None = None

    @property
    def rows(self) -> int:
        return sum(self.rows_by_day.values())

    def totals(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for counts in self.days.values():
            for name, c in counts.items():
                arr = np.asarray(c, dtype=float)
                out[name] = out[name] + arr if name in out else arr
        return out


class DriftMonitor:
    """The training reference plus the policy: what to compare, over how long, when to say so."""

    def __init__(
        self,
        reference: Mapping[str, FeatureDistribution],
        model_version: str = "",
        threshold: float = DEFAULT_PSI_THRESHOLD,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        excluded: frozenset[str] = DEFAULT_EXCLUDED,
        window_days: int = DEFAULT_WINDOW_DAYS,
        min_days: int = DEFAULT_MIN_DAYS,
    ) -> None:
        self.reference = {k: v for k, v in reference.items() if k not in excluded}
        self.min_days = min(min_days, window_days)
        self.model_version = model_version
        self.threshold = threshold
        self.min_samples = min_samples
        self.window_days = window_days

    def accumulate(
        self, acc: DriftAccumulator, day: date, names: Sequence[str], rows: np.ndarray
    ) -> DriftAccumulator:
        """Add rows to `day`'s counts; keep only the last `window_days` trading days."""
        days = {d: dict(c) for d, c in acc.days.items()}
        today = days.setdefault(day, {})
        for j, name in enumerate(names):
            dist = self.reference.get(name)
            if dist is None:
                continue
            prev = np.asarray(today.get(name) or np.zeros(dist.n_bins), dtype=float)
            today[name] = [int(v) for v in prev + dist.counts(rows[:, j])]
        rows_by_day = dict(acc.rows_by_day)
        rows_by_day[day] = rows_by_day.get(day, 0) + int(rows.shape[0])
        keep = sorted(days)[-self.window_days :]
        return acc.model_copy(
            update={
                "days": {d: days[d] for d in keep},
                "rows_by_day": {d: rows_by_day.get(d, 0) for d in keep},
            }
        )

    def report(self, acc: DriftAccumulator) -> DriftReport:
        if len(acc.days) < self.min_days:
            return DriftReport(
                threshold=self.threshold,
                min_samples=self.min_samples,
                features=[],
                skipped=sorted(self.reference),
            )
        return check_counts(self.reference, acc.totals(), self.threshold, self.min_samples)


def drift_alert(report: DriftReport, now: datetime, model_version: str = "") -> Alert | None:
    """One `drift` alert listing the drifted features (at most one per day)."""
    drifted = sorted(report.drifted, key=lambda f: -f.psi)
    if not drifted:
        return None
    names = ", ".join(f"{f.feature} {f.psi:.2f}" for f in drifted[:3])
    return Alert(
        kind="drift",
        symbol="MODEL",
        severity="warning",
        subject=f"magic8 feature drift (PSI > {report.threshold:g}): {names}"[:99],
        payload={
            "model_version": model_version,
            "threshold": report.threshold,
            "drifted": [f.model_dump() for f in drifted],
            "all": [f.model_dump() for f in report.features],
        },
        dedupe_key=f"drift:{model_version}:{now.date().isoformat()}",
        created_at=now,
    )


def service_feature_rows(service: Any) -> Any:
    """FeatureRowsFn over magic8.domain.service.PredictionService's public parts.

    Builds the rows the service just scored for these trades, from the snapshots in its
    market cache (read by the sweep's batch a moment ago: no extra market read while the
    cache holds them) with the same feature builder and the same feature time. Trades
    whose symbol has no snapshot are left out (their rows would be placeholders).
    """

    def rows(requests: Sequence[Any]) -> tuple[Sequence[str], np.ndarray] | None:
        vix = service.market_snapshot("VIX")
        contexts: dict[str, Any] = {}
        for sym in {r.symbol.value for r in requests}:
            snap = service.market_snapshot(sym)
            if snap is not None:
                contexts[sym] = service.features.context(snap, vix)
        kept = [r for r in requests if r.symbol.value in contexts]
        if not kept:
            return None
        ftime = service.feature_time(service.clock())
        matrix = service.features.build(kept, [contexts[r.symbol.value] for r in kept], ftime)
        return tuple(service.model.feature_names), np.asarray(matrix, dtype=float)

    return rows
