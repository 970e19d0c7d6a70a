"""The serve-time model hierarchy: native XGBoost boosters + manifest.json.

The boosters are XGBoost models behind the `Booster` port; the composition roots pass
magic8.adapters.xgb_native.NativeBooster (the XGBoost library through its C API: the same
prediction function as xgboost.Booster.inplace_predict, without importing the xgboost
Python package and the scipy it imports at cold start). Tooling may pass xgboost.Booster.

Each row is answered by the most specific model the manifest holds for it:
``symbol_strategy:<SYMBOL>:<Strategy>`` -> ``symbol:<SYMBOL>`` -> ``strategy:<Strategy>``
-> ``default``. Training keeps a specific model only when it had enough samples and beat
its fallback and the option-math baseline on its own selection days. Each model carries
a calibration map (JSON x/y knots of an isotonic or Platt fit on the calibration days),
per strategy where training had enough rows, applied here so that served probabilities
equal the offline ones, and an F1-optimised threshold (the old decision rule; the service
answers with the trade's expected-value threshold instead, see magic8.domain.service).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

MANIFEST = "manifest.json"


class Booster(Protocol):
    """What the hierarchy needs of a loaded XGBoost model."""

    def set_param(self, params: dict[str, Any]) -> None: ...
    def inplace_predict(self, x: np.ndarray) -> np.ndarray: ...


BoosterLoader = Callable[[Path], Booster]


class ModelAnswer(NamedTuple):
    """One row's answer (immutable; a NamedTuple builds 3x faster than a frozen dataclass,
    and a batch builds 100)."""

    win_probability: float
    threshold: float
    model_type: str  # which hierarchy level answered, e.g. "symbol_strategy:SPX:Butterfly"
    model_version: str


def model_keys(symbol: str, strategy: str) -> tuple[str, str, str, str]:
    """Hierarchy keys for one row, most specific first."""
    return (
        f"symbol_strategy:{symbol}:{strategy}",
        f"symbol:{symbol}",
        f"strategy:{strategy}",
        "default",
    )


@dataclass
class _Entry:
    key: str
    booster: Booster
    threshold: float
    thresholds_by_strategy: dict[str, float]
    calibration: tuple[np.ndarray, np.ndarray] | None = None
    calibration_by_strategy: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _knots(spec: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if not spec:
        return None
    return np.asarray(spec["x"], dtype=np.float64), np.asarray(spec["y"], dtype=np.float64)


@dataclass
class ModelHierarchy:
    version: str
    feature_names: tuple[str, ...]
    entries: dict[str, _Entry]
    manifest: dict[str, Any] = field(default_factory=dict)
    _route: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: Path, load_booster: BoosterLoader) -> ModelHierarchy:
        """The hierarchy in `model_dir` (manifest.json + native model files), each model
        loaded by `load_booster` (e.g. magic8.adapters.xgb_native.NativeBooster)."""
        model_dir = Path(model_dir)
        manifest = json.loads((model_dir / MANIFEST).read_text())
        entries: dict[str, _Entry] = {}
        for key, spec in manifest["models"].items():
            booster = load_booster(model_dir / spec["file"])
            booster.set_param({"nthread": 1})
            entries[key] = _Entry(
                key=key,
                booster=booster,
                threshold=float(spec["threshold"]),
                thresholds_by_strategy={
                    k: float(v) for k, v in spec.get("thresholds_by_strategy", {}).items()
                },
                calibration=_knots(spec.get("calibration")),
                calibration_by_strategy={
                    k: knots
                    for k, v in (spec.get("calibration_by_strategy") or {}).items()
                    if (knots := _knots(v)) is not None
                },
            )
        if "default" not in entries:
            raise ValueError(f"{model_dir / MANIFEST}: no default model")
        return cls(
            version=str(manifest["version"]),
            feature_names=tuple(manifest["feature_names"]),
            entries=entries,
            manifest=manifest,
        )

    @property
    def payoff(self) -> dict[str, dict[str, float]]:
        """Per strategy: the mean share of max profit a win makes and of max loss a loss
        loses, measured on the training days (the service's expected value uses them)."""
        out: dict[str, dict[str, float]] = self.manifest.get("payoff") or {}
        return out

    def base_rate(self, symbol: str, strategy: str) -> float:
        """The win rate the model saw in training for (symbol, strategy): the probability a
        cached answer decays toward (magic8.domain.decay). From the manifest, most specific
        first: `base_rates` by hierarchy key (symbol_strategy:..., symbol:..., strategy:...,
        default), then data.win_rate_by_strategy, then the test set's win rate, else 0.5."""
        rates = self.manifest.get("base_rates") or {}
        for key in model_keys(symbol, strategy):
            if key in rates:
                return float(rates[key])
        by_strategy = (self.manifest.get("data") or {}).get("win_rate_by_strategy") or {}
        if strategy in by_strategy:
            return float(by_strategy[strategy])
        test = (self.manifest.get("metrics") or {}).get("test") or {}
        rate = test.get("win_rate")
        return float(rate) if isinstance(rate, int | float) and 0.0 <= rate <= 1.0 else 0.5

    def route(self, symbol: str, strategy: str) -> str:
        """The key of the model that serves (symbol, strategy)."""
        key = self._route.get((symbol, strategy))
        if key is None:
            key = next(k for k in model_keys(symbol, strategy) if k in self.entries)
            self._route[(symbol, strategy)] = key
        return key

    def predict(
        self, features: np.ndarray, symbols: Sequence[str], strategies: Sequence[str]
    ) -> list[ModelAnswer]:
        """One answer per row; rows are grouped by serving model, one call per group."""
        n = features.shape[0]
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"features: expected (n, {len(self.feature_names)}), got {features.shape}"
            )
        if len(symbols) != n or len(strategies) != n:
            raise ValueError("predict: one symbol and one strategy per row")
        keys = [self.route(str(a), str(b)) for a, b in zip(symbols, strategies, strict=True)]
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        x32 = np.ascontiguousarray(features, dtype=np.float32)
        probs = np.empty(n)
        for key, rows in groups.items():
            entry = self.entries[key]
            x = x32 if len(rows) == n else x32[rows]
            p = entry.booster.inplace_predict(x).astype(np.float64)
            if entry.calibration_by_strategy:
                row_strategy = np.array([str(strategies[i]) for i in rows])
                out_p = (
                    np.interp(p, entry.calibration[0], entry.calibration[1])
                    if entry.calibration is not None
                    else p.copy()
                )
                for name, (kx, ky) in entry.calibration_by_strategy.items():
                    sel = row_strategy == name
                    if sel.any():
                        out_p[sel] = np.interp(p[sel], kx, ky)
                p = out_p
            elif entry.calibration is not None:
                p = np.interp(p, entry.calibration[0], entry.calibration[1])
            probs[rows] = p
        probs = np.clip(np.nan_to_num(probs, nan=0.5, posinf=1.0, neginf=0.0), 0.0, 1.0)
        version = self.version
        out: list[ModelAnswer] = []
        for key, strat, prob in zip(keys, strategies, probs.tolist(), strict=True):
            entry = self.entries[key]
            thr = entry.thresholds_by_strategy.get(str(strat), entry.threshold)
            out.append(ModelAnswer(prob, thr, key, version))
        return out
