"""Outcomes and live accuracy: how right the predictions have been, per symbol x strategy.

An outcome is a trade's real result (won or not) next to the win probability the system
gave it. Over rolling windows (default 1, 7 and 30 days, by the outcome's close time) and
per symbol x strategy (plus an "ALL" x "ALL" row) we report:

- accuracy: share of trades where (probability >= threshold) == won;
- Brier score: mean squared difference between probability and result (0 is perfect);
- calibration: equal-width probability bins (bin i is (i/n, (i+1)/n], the first also
  holds 0) with count, mean predicted probability and observed win rate, and the
  expected calibration error (count-weighted mean |observed - predicted|).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from magic8.domain import validation
from magic8.domain.trades import Strategy, Symbol, _case_insensitive

Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
DEFAULT_WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
ALL = "ALL"


class OutcomeIn(BaseModel):
    """POST /outcomes: the real result of a trade.

    Name the answer (`prediction_id` from any /predict or /predict/batch answer: symbol,
    strategy, probability and the threshold served come from it), or a watchlist entry
    (`entry_id`: symbol, strategy and the last sweep's probability are taken from it), or
    give symbol, strategy and win_probability.
    """

    model_config = ConfigDict(extra="ignore", str_max_length=64, frozen=True)

    won: bool
    prediction_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    entry_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    symbol: Symbol | None = None
    strategy: Strategy | None = None
    win_probability: Probability | None = None
    threshold: Probability | None = None
    pnl: Annotated[float, Field(allow_inf_nan=False)] | None = None
    closed_at: datetime | None = None

    @field_validator("closed_at")
    @classmethod
    def _plausible_close(cls, v: datetime | None) -> datetime | None:
        return None if v is None else validation.plausible_time(v, "closed_at")

    @field_validator("pnl", "win_probability", "threshold", mode="before")
    @classmethod
    def _numbers_not_bools(cls, v: object, info: ValidationInfo) -> object:
        return validation.no_bool(v, str(info.field_name))

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: object) -> object:
        return _case_insensitive(Strategy, v)

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    symbol: str
    strategy: str
    win_probability: Probability
    threshold: Probability = 0.5
    won: bool
    pnl: float | None = None
    entry_id: str | None = None
    prediction_id: str | None = None
    closed_at: datetime

    @field_validator("closed_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v


class OutcomeError(ValueError):
    """The outcome cannot be completed; the message names the missing field."""


def resolve_outcome(
    data: OutcomeIn,
    now: datetime,
    entry_symbol: str | None = None,
    entry_strategy: str | None = None,
    last_probability: float | None = None,
    last_threshold: float | None = None,
) -> Outcome:
    """Complete an outcome from what it says and, for a watched trade, what the sweep saw."""
    symbol = data.symbol.value if data.symbol else entry_symbol
    strategy = data.strategy.value if data.strategy else entry_strategy
    p = data.win_probability if data.win_probability is not None else last_probability
    thr = data.threshold if data.threshold is not None else last_threshold
    if symbol is None:
        raise OutcomeError("symbol: required (or an entry_id of a watched trade)")
    if strategy is None:
        raise OutcomeError("strategy: required (or an entry_id of a watched trade)")
    if p is None:
        raise OutcomeError("win_probability: required (or an entry_id the sweep has scored)")
    return Outcome(
        symbol=symbol,
        strategy=strategy,
        win_probability=p,
        threshold=0.5 if thr is None else thr,
        won=data.won,
        pnl=data.pnl,
        entry_id=data.entry_id,
        prediction_id=data.prediction_id,
        closed_at=data.closed_at or now,
    )


class OutcomeStore(Protocol):
    def add(self, outcome: Outcome) -> None: ...

    def list_since(self, since: datetime) -> list[Outcome]:
        """Outcomes closed at or after `since`."""
        ...


class InMemoryOutcomeStore:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def list_since(self, since: datetime) -> list[Outcome]:
        return [o for o in self.outcomes if o.closed_at >= since]


# ----------------------------------------------------------------------------- metrics


class CalibrationBin(BaseModel):
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


class GroupAccuracy(BaseModel):
    symbol: str
    strategy: str
    window_days: int
    n: int
    wins: int
    accuracy: float
    brier: float
    ece: float
    calibration: list[CalibrationBin]


class AccuracyReport(BaseModel):
    generated_at: datetime
    windows_days: list[int]
    groups: list[GroupAccuracy]

    def group(self, symbol: str, strategy: str, window_days: int) -> GroupAccuracy | None:
        for g in self.groups:
            if (g.symbol, g.strategy, g.window_days) == (symbol, strategy, window_days):
                return g
        return None


def brier_score(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def hit_rate(p: np.ndarray, thr: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p >= thr) == (y == 1)))


def calibration(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[CalibrationBin]:
    """Non-empty equal-width bins: (i/n, (i+1)/n], the first bin also holding 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges[1:-1], p, side="left"), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    p_sum = np.bincount(idx, weights=p, minlength=n_bins)
    y_sum = np.bincount(idx, weights=y, minlength=n_bins)
    return [
        CalibrationBin(
            lower=float(edges[i]),
            upper=float(edges[i + 1]),
            count=int(counts[i]),
            mean_predicted=float(p_sum[i] / counts[i]),
            observed_rate=float(y_sum[i] / counts[i]),
        )
        for i in range(n_bins)
        if counts[i]
    ]


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float:
    n = sum(b.count for b in bins)
    if not n:
        return 0.0
    return float(sum(b.count * abs(b.observed_rate - b.mean_predicted) for b in bins) / n)


def group_accuracy(
    outcomes: Sequence[Outcome], symbol: str, strategy: str, window_days: int, n_bins: int = 10
) -> GroupAccuracy:
    p = np.fromiter((o.win_probability for o in outcomes), dtype=float, count=len(outcomes))
    thr = np.fromiter((o.threshold for o in outcomes), dtype=float, count=len(outcomes))
    y = np.fromiter((1.0 if o.won else 0.0 for o in outcomes), dtype=float, count=len(outcomes))
    bins = calibration(p, y, n_bins)
    return GroupAccuracy(
        symbol=symbol,
        strategy=strategy,
        window_days=window_days,
        n=len(outcomes),
        wins=int(y.sum()),
        accuracy=hit_rate(p, thr, y),
        brier=brier_score(p, y),
        ece=expected_calibration_error(bins),
        calibration=bins,
    )


def accuracy_report(
    outcomes: Iterable[Outcome],
    now: datetime,
    windows_days: Sequence[int] = DEFAULT_WINDOWS_DAYS,
    n_bins: int = 10,
) -> AccuracyReport:
    """Accuracy, Brier and calibration per symbol x strategy (and ALL x ALL) per window."""
    items = [o for o in outcomes if o.closed_at <= now]
    groups: list[GroupAccuracy] = []
    for days in sorted(set(windows_days)):
        since = now - timedelta(days=days)
        in_window = [o for o in items if o.closed_at >= since]
        if not in_window:
            continue
        by_key: dict[tuple[str, str], list[Outcome]] = {}
        for o in in_window:
            by_key.setdefault((o.symbol, o.strategy), []).append(o)
        for (sym, strat), group in sorted(by_key.items()):
            groups.append(group_accuracy(group, sym, strat, days, n_bins))
        groups.append(group_accuracy(in_window, ALL, ALL, days, n_bins))
    return AccuracyReport(generated_at=now, windows_days=sorted(set(windows_days)), groups=groups)
