"""Market snapshots: what the gateway writes and the prediction service reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Bars kept per snapshot: enough for the features' longest lookback (SMA20, RSI14,
# range position over the session) with room to spare.
SNAPSHOT_BAR_WINDOW = 96

DataSource = Literal["gateway", "seed", "replay", "stale", "unavailable"]


class Bar(BaseModel):
    """One 5-minute bar. ts is the bar's start, epoch seconds UTC."""

    model_config = ConfigDict(frozen=True)

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


class MarketSnapshot(BaseModel):
    """One item per symbol in the market table.

    DynamoDB form: {symbol, last, bid, ask, bars: [[ts, o, h, l, c, v], ...] as a JSON
    string in `bars_json`, updated_at (ISO-8601), updated_ts (epoch s), source,
    expires_at (epoch s TTL)}.
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    last: Annotated[float, Field(allow_inf_nan=False)]
    bid: float | None = None
    ask: float | None = None
    bars: tuple[Bar, ...] = ()
    updated_at: datetime
    source: DataSource = "gateway"

    def age_seconds(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        return max(0.0, (now - self.updated_at).total_seconds())
