"""Price bars of the NQ futures front month (5-minute OHLCV) and the port that stores them.

The gateway aggregates Databento's 1-minute bars (or trades) into 5-minute bars
(magic8.flow.bars), writes them through a BarStore (magic8.adapters.bars_dynamo), and
the predict API serves them at GET /nq/bars for the dashboard's candlestick chart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

BAR_MINUTES = 5
DEFAULT_SYMBOL = "NQ"


class Bar(BaseModel):
    """One OHLCV bar; `start` is the bar's open time (UTC), it covers [start, start + minutes).

    complete=False: the bar's interval has not ended in the feed yet (a live candle)."""

    model_config = ConfigDict(frozen=True)

    symbol: str = DEFAULT_SYMBOL
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int = Field(ge=0)
    minutes: int = BAR_MINUTES
    complete: bool = True

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    def shifted(self, delta: timedelta) -> Bar:
        return self if not delta else self.model_copy(update={"start": self.start + delta})

    def public(self) -> dict[str, Any]:
        """The API's shape: {ts, open, high, low, close, volume, complete}."""
        return {
            "ts": self.start.astimezone(UTC).isoformat(),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "complete": self.complete,
        }


class BarStore(Protocol):
    def put(self, bars: list[Bar]) -> None:
        """Upsert bars (one item per symbol x start)."""

    def query(self, symbol: str, since: datetime, until: datetime, limit: int) -> list[Bar]:
        """Bars with since <= start < until, oldest first, at most `limit` (the oldest)."""

    def latest(self, symbol: str) -> Bar | None:
        """The most recent bar of a symbol, if any."""
