"""DynamoBudgetLedger: the Databento backfill budget per UTC day in the state table.

Item (pk "budget#databento", sk "YYYY-MM-DD", used: N USD). `try_spend` is one conditional
UpdateItem (ADD used, only if the result stays within the limit), so concurrent gateways
can never overspend together.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from magic8.adapters.aws import LazyDynamoTable
from magic8.adapters.dynamo_state import conditional_update
from magic8.flow.backfill import BUDGET_PK


class DynamoBudgetLedger(LazyDynamoTable):
    def __init__(self, table_name: str, table: Any = None, ttl_days: int = 40) -> None:
        super().__init__(table_name, table)
        self.ttl_days = ttl_days

    def try_spend(self, day: str, amount: float, limit: float) -> bool:
        amt = Decimal(repr(round(float(amount), 6)))
        headroom = Decimal(repr(round(float(limit) - float(amount), 6)))
        if headroom < 0:
            return False
        return conditional_update(
            self.table,
            Key={"pk": BUDGET_PK, "sk": day},
            UpdateExpression="ADD used :amt SET expires_at = :exp, budget = :limit",
            ConditionExpression="attribute_not_exists(used) OR used <= :headroom",
            ExpressionAttributeValues={
                ":amt": amt,
                ":headroom": headroom,
                ":limit": Decimal(repr(float(limit))),
                ":exp": int(time.time()) + self.ttl_days * 86400,
            },
        )

    def used(self, day: str) -> float:
        item = self.table.get_item(Key={"pk": BUDGET_PK, "sk": day}).get("Item")
        return float(item.get("used", 0)) if item else 0.0
