"""Per-symbol state of the IB session: quotes, 5-minute bars, and the MarketSnapshot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ib_async import Contract

from gateway_host.ib.contracts import IbSymbol
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar, MarketSnapshot

BAR_SECONDS = 300


@dataclass
class SymbolState:
    spec: IbSymbol
    contract: Contract | None = None
    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    bars: dict[int, Bar] = field(default_factory=dict)
    last_quote_at: datetime | None = None
    dirty: bool = False
    history_loaded: bool = False

    def merge_bars(self, new: Sequence[Bar]) -> None:
        for bar in new:
            self.bars[bar.ts] = bar
        if len(self.bars) > 2 * SNAPSHOT_BAR_WINDOW:
            for ts in sorted(self.bars)[: len(self.bars) - 2 * SNAPSHOT_BAR_WINDOW]:
                del self.bars[ts]
        self.dirty = True

    def apply_trade(self, price: float, now: datetime) -> None:
        ts = int(now.timestamp()) // BAR_SECONDS * BAR_SECONDS
        bar = self.bars.get(ts)
        if bar is None:
            self.bars[ts] = Bar(ts=ts, open=price, high=price, low=price, close=price)
        else:
            self.bars[ts] = Bar(
                ts=ts,
                open=bar.open,
                high=max(bar.high, price),
                low=min(bar.low, price),
                close=price,
                volume=bar.volume,
            )

    def snapshot(self, now: datetime) -> MarketSnapshot | None:
        ordered = [self.bars[ts] for ts in sorted(self.bars)][-SNAPSHOT_BAR_WINDOW:]
        last = self.last if self.last is not None else (ordered[-1].close if ordered else None)
        if last is None:
            return None
        return MarketSnapshot(
            symbol=self.spec.symbol,
            last=last,
            bid=self.bid,
            ask=self.ask,
            bars=tuple(ordered),
            updated_at=now,
            source="gateway",
        )


def finite_price(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None
