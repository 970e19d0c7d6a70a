"""The instruments the IB session follows, as IB expects them."""

from __future__ import annotations

from typing import Literal

from ib_async import Contract, Index, Stock
from pydantic import BaseModel, ConfigDict


class IbSymbol(BaseModel):
    """One instrument as IB expects it (index on its listing exchange, or a stock)."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    sec_type: Literal["IND", "STK"]
    exchange: str
    currency: str = "USD"
    primary_exchange: str = ""

    def contract(self) -> Contract:
        if self.sec_type == "IND":
            return Index(self.symbol, self.exchange, self.currency)
        return Stock(
            self.symbol, self.exchange, self.currency, primaryExchange=self.primary_exchange
        )


DEFAULT_SYMBOLS: tuple[IbSymbol, ...] = (
    IbSymbol(symbol="SPX", sec_type="IND", exchange="CBOE"),
    IbSymbol(symbol="NDX", sec_type="IND", exchange="NASDAQ"),
    IbSymbol(symbol="RUT", sec_type="IND", exchange="RUSSELL"),
    IbSymbol(symbol="VIX", sec_type="IND", exchange="CBOE"),
    IbSymbol(symbol="XSP", sec_type="IND", exchange="CBOE"),
    IbSymbol(symbol="SPY", sec_type="STK", exchange="SMART", primary_exchange="ARCA"),
    IbSymbol(symbol="QQQ", sec_type="STK", exchange="SMART", primary_exchange="NASDAQ"),
)
