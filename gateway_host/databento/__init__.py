"""The Databento half of the gateway host (split as nautilus_trader splits adapters).

- config: DatabentoConfig, the NQ options parent symbols
- gaps: reconnect/sequence gaps -> hold windows, backfill within budget, release
- session: DatabentoSession (live or replay -> pressure windows -> FlowProducer)
"""

from gateway_host.databento.config import DEFAULT_PARENTS, WEEKLY_PRODUCTS, DatabentoConfig
from gateway_host.databento.session import DatabentoSession, from_settings

__all__ = [
    "DEFAULT_PARENTS",
    "WEEKLY_PRODUCTS",
    "DatabentoConfig",
    "DatabentoSession",
    "from_settings",
]
