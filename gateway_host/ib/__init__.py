"""The Interactive Brokers half of the gateway host (split as nautilus_trader splits adapters).

- config: IbSessionConfig
- contracts: IbSymbol, DEFAULT_SYMBOLS
- errors: the IB message codes the session acts on (named frozensets) and its exceptions
- pacing: HistoricalPacingGuard (IB's historical-data pacing rules; pure, no ib_async)
- snapshots: per-symbol quotes/bars -> MarketSnapshot
- session: IbSession (connect, subscribe, history, reconnect, write snapshots)
"""

from gateway_host.ib.config import IbSessionConfig
from gateway_host.ib.contracts import DEFAULT_SYMBOLS, IbSymbol
from gateway_host.ib.errors import ClientIdInUse, HistoricalDataError
from gateway_host.ib.session import IbSession

__all__ = [
    "DEFAULT_SYMBOLS",
    "ClientIdInUse",
    "HistoricalDataError",
    "IbSession",
    "IbSessionConfig",
    "IbSymbol",
]
