"""IB API message codes the session acts on, as named sets (no inline number lists).

Codes from the TWS API "Message Codes" reference. Each set is `Final` and frozen: the
session branches on membership (`code in CONNECTIVITY_LOST`), never on bare numbers.
"""

from __future__ import annotations

from typing import Final

# historical data pacing violation (the guard backs off and retries)
PACING_VIOLATION: Final = frozenset({162})
# a client with this client id is already connected: try the next one at once
CLIENT_ID_IN_USE: Final = frozenset({326})
# connectivity between IB and TWS/Gateway lost; wait for RESTORED within the grace period
CONNECTIVITY_LOST: Final = frozenset({1100})
# restored; 1101 = data lost (resubscribe + reload history), 1102 = data maintained
CONNECTIVITY_RESTORED_DATA_LOST: Final = frozenset({1101})
CONNECTIVITY_RESTORED_DATA_KEPT: Final = frozenset({1102})
CONNECTIVITY_RESTORED: Final = CONNECTIVITY_RESTORED_DATA_LOST | CONNECTIVITY_RESTORED_DATA_KEPT
# market data farm (2103) / historical (HMDS) farm (2105) connection broken
MARKET_DATA_FARM_BROKEN: Final = frozenset({2103})
HISTORICAL_FARM_BROKEN: Final = frozenset({2105})
FARM_BROKEN: Final = MARKET_DATA_FARM_BROKEN | HISTORICAL_FARM_BROKEN
# market data farm (2104) / historical farm (2106) connection OK
MARKET_DATA_FARM_OK: Final = frozenset({2104})
HISTORICAL_FARM_OK: Final = frozenset({2106})
FARM_OK: Final = MARKET_DATA_FARM_OK | HISTORICAL_FARM_OK
# the farm-broken code each farm-OK code clears
FARM_OK_CLEARS: Final = {2104: 2103, 2106: 2105}
# inactive-but-available farm notices (2107/2108), sec-def farm OK (2158)
FARM_INACTIVE: Final = frozenset({2107, 2108})
SECDEF_FARM_OK: Final = frozenset({2158})
# farm status notices carry reqId -1 in practice, but never mean a request failed
FARM_STATUS: Final = FARM_BROKEN | FARM_OK | FARM_INACTIVE | SECDEF_FARM_OK
# 2100..2199 are informational notices (logged at INFO, not kept as last_error)
NOTICE_RANGE: Final = range(2100, 2200)


def is_notice(code: int) -> bool:
    return code in NOTICE_RANGE


class HistoricalDataError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"historical data error {code}: {message}")
        self.code = code


class ClientIdInUse(Exception):
    pass
