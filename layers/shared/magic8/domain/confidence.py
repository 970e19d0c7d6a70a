"""Confidence history: per symbol x strategy series (one partition, one Query per read),
one point per trade identity (action, option kind, strikes) per answered batch, carrying
the feature row the model saw, so the dashboard draws one line per watched trade and
unrelated trades never share a line. The request hands a batch's points to a queue in one
call; a consumer writes them (magic8.adapters.history_queue)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from magic8.domain.trades import Strategy, Symbol


def series_name(symbol: str, strategy: str) -> str:
    """The history table's partition key: "<SYMBOL>#<Strategy>" (e.g. "SPX#Iron Condor")."""
    return f"{symbol}#{strategy}"


def all_series() -> list[str]:
    return [series_name(sym.value, strat.value) for sym in Symbol for strat in Strategy]


def epoch_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


@dataclass(slots=True)
class ConfidencePoint:
    """One history point (treat as immutable; not frozen: built 100 at a time)."""

    symbol: str
    strategy: str
    ts_ms: int
    win_probability: float
    prediction: str
    threshold: float
    model_type: str
    model_version: str
    data_source: str
    # how many answers of one batch the point summarises, and their spread
    count: int = 1
    min_probability: float | None = None
    max_probability: float | None = None
    # the trade the point speaks for when it is one trade's answer ("" for a series summary)
    trade: str = ""
    # the feature row the model scored (name -> value), when the writer kept it; on the
    # request path the row stays an array (feature_row, feature_names) until it is needed
    features: dict[str, float | None] | None = None
    feature_row: Any = None
    feature_names: tuple[str, ...] = ()

    def feature_map(self) -> dict[str, float | None] | None:
        if self.features is None and self.feature_row is not None and self.feature_names:
            values = [float(v) for v in self.feature_row]
            if len(values) == len(self.feature_names):
                return dict(zip(self.feature_names, values, strict=True))
        return self.features

    @property
    def series(self) -> str:
        return series_name(self.symbol, self.strategy)

    def to_dict(self, include_features: bool = False) -> dict[str, Any]:
        out = {
            "ts": self.ts_ms,
            "timestamp": datetime.fromtimestamp(self.ts_ms / 1000, UTC).isoformat(),
            "win_probability": self.win_probability,
            "prediction": self.prediction,
            "threshold": self.threshold,
            "model_type": self.model_type,
            "model_version": self.model_version,
            "data_source": self.data_source,
            "count": self.count,
            "min_probability": (
                self.win_probability if self.min_probability is None else self.min_probability
            ),
            "max_probability": (
                self.win_probability if self.max_probability is None else self.max_probability
            ),
            "trade": self.trade,
        }
        if include_features:
            features = self.feature_map()
            out["features"] = (
                None
                if features is None
                else {
                    k: (v if v is not None and math.isfinite(v) else None)
                    for k, v in features.items()
                }
            )
        return out


def lines(points: list[ConfidencePoint], include_features: bool = False) -> list[dict[str, Any]]:
    """Points grouped by trade identity, oldest first within each line; lines in order of
    their first point."""
    by_trade: dict[str, list[ConfidencePoint]] = {}
    for p in points:
        by_trade.setdefault(p.trade, []).append(p)
    return [
        {
            "trade": trade,
            "count": len(pts),
            "points": [p.to_dict(include_features) for p in pts],
        }
        for trade, pts in by_trade.items()
    ]


@dataclass(frozen=True)
class Trend:
    """Latest point of a series against the latest point at or before `hours` ago."""

    series: str
    latest: ConfidencePoint
    previous: ConfidencePoint | None

    @property
    def change(self) -> float | None:
        if self.previous is None:
            return None
        return self.latest.win_probability - self.previous.win_probability

    def to_dict(self) -> dict[str, Any]:
        change = self.change
        return {
            "series": self.series,
            "symbol": self.latest.symbol,
            "strategy": self.latest.strategy,
            "latest": self.latest.to_dict(),
            "previous": self.previous.to_dict() if self.previous else None,
            "change": round(change, 6) if change is not None else None,
            "direction": (
                None
                if change is None
                else "up"
                if change > 1e-9
                else "down"
                if change < -1e-9
                else "flat"
            ),
        }
