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
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from magic8.domain.alerts import Alert

EPS = 1e-4
DEFAULT_PSI_THRESHOLD = 0.25
DEFAULT_MIN_SAMPLES = 50
# Keys tried, in order, for the per-feature distributions in the manifest.
MANIFEST_KEYS: tuple[str, ...] = (
    "feature_distributions",
    "feature_bins",
    "drift_reference",
    "distributions",
)


class FeatureDistribution(BaseModel):
    """Training distribution of one feature: k+1 increasing bin edges, k proportions."""

    model_config = ConfigDict(frozen=True)

    edges: list[float] = Field(min_length=2)
    proportions: list[float] = Field(min_length=1)

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

    def expected(self) -> np.ndarray:
        e = np.asarray(self.proportions, dtype=float)
        return e / e.sum()

    def actual(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Proportions of `values` per bin (outer bins open-ended)."""
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        inner = np.asarray(self.edges[1:-1], dtype=float)
        # bin i holds edges[i] <= x < edges[i+1]; below/above the outer edges -> end bins
        idx = np.searchsorted(inner, v, side="right")
        counts = np.bincount(idx, minlength=len(self.proportions)).astype(float)
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
        if edges is None or props is None:
            continue
        out[str(name)] = FeatureDistribution(
            edges=[float(e) for e in edges], proportions=[float(p) for p in props]
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


def check_drift(
    reference: Mapping[str, FeatureDistribution],
    live: Mapping[str, Sequence[float] | np.ndarray],
    threshold: float = DEFAULT_PSI_THRESHOLD,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """PSI per feature present in both the reference and the live sample."""
    features: list[FeatureDrift] = []
    skipped: list[str] = []
    for name, dist in reference.items():
        if name not in live:
            continue
        values = np.asarray(live[name], dtype=float)
        values = values[np.isfinite(values)]
        if len(values) < min_samples:
            skipped.append(name)
            continue
        score = psi(dist.expected(), dist.actual(values))
        features.append(
            FeatureDrift(feature=name, psi=score, n=len(values), drifted=score > threshold)
        )
    return DriftReport(
        threshold=threshold, min_samples=min_samples, features=features, skipped=skipped
    )


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
