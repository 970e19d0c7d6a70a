"""The gateway heartbeat: one item in the state table, written by gateway_host every N s.

Item (state table, pk "heartbeat", sk "gateway"):
    pk, sk, last_quote_at, last_mbo_at (ISO-8601 or absent), updated_at (ISO-8601),
    updated_ts (epoch s), ib_state, databento_state, connections (map name -> state),
    pacing (map: requests_in_window, limit, ...), backfill_budget_used (number),
    spend (map: the Databento cost ledger's day, streaming/backfill usd and budgets),
    healthy (bool), final (bool: written at shutdown), expires_at (epoch s TTL).

The monitor reads it for gateway_stale alerts: `age_seconds()` of updated_at, and
`quote_age_seconds()` / `mbo_age_seconds()` for the data itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEARTBEAT_PK = "heartbeat"
HEARTBEAT_SK = "gateway"
DEFAULT_TTL_SECONDS = 24 * 3600


class GatewayHeartbeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    updated_at: datetime
    last_quote_at: datetime | None = None
    last_mbo_at: datetime | None = None
    ib_state: str = "disabled"
    databento_state: str = "disabled"
    connections: dict[str, str] = Field(default_factory=dict)
    pacing: dict[str, float | int | str] = Field(default_factory=dict)
    backfill_budget_used: float = 0.0
    # the day's Databento spend vs budget (gateway_host.databento.spend facts); {} = none
    spend: dict[str, float | int | str | bool] = Field(default_factory=dict)
    healthy: bool = False
    final: bool = False

    def age_seconds(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or datetime.now(UTC)) - self.updated_at).total_seconds())

    def quote_age_seconds(self, now: datetime | None = None) -> float | None:
        if self.last_quote_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.last_quote_at).total_seconds())

    def mbo_age_seconds(self, now: datetime | None = None) -> float | None:
        if self.last_mbo_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.last_mbo_at).total_seconds())

    def to_item(self, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> dict[str, Any]:
        """DynamoDB item (resource/Table form: numbers as Decimal, no None values)."""
        ts = int(self.updated_at.timestamp())
        item: dict[str, Any] = {
            "pk": HEARTBEAT_PK,
            "sk": HEARTBEAT_SK,
            "updated_at": self.updated_at.isoformat(),
            "updated_ts": ts,
            "ib_state": self.ib_state,
            "databento_state": self.databento_state,
            "connections": dict(self.connections),
            "pacing": {k: _num(v) for k, v in self.pacing.items()},
            "backfill_budget_used": _num(self.backfill_budget_used),
            "spend": {k: _num(v) for k, v in self.spend.items()},
            "healthy": self.healthy,
            "final": self.final,
            "expires_at": ts + ttl_seconds,
        }
        if self.last_quote_at is not None:
            item["last_quote_at"] = self.last_quote_at.isoformat()
        if self.last_mbo_at is not None:
            item["last_mbo_at"] = self.last_mbo_at.isoformat()
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> GatewayHeartbeat:
        """Accepts the to_item() form with numbers as Decimal, int or float."""
        pacing = item.get("pacing") or {}
        return cls(
            updated_at=item["updated_at"],
            last_quote_at=item.get("last_quote_at"),
            last_mbo_at=item.get("last_mbo_at"),
            ib_state=str(item.get("ib_state", "unknown")),
            databento_state=str(item.get("databento_state", "unknown")),
            connections={str(k): str(v) for k, v in (item.get("connections") or {}).items()},
            pacing={str(k): _plain(v) for k, v in pacing.items()},
            backfill_budget_used=float(item.get("backfill_budget_used", 0) or 0),
            spend={str(k): _spend_value(v) for k, v in (item.get("spend") or {}).items()},
            healthy=bool(item.get("healthy", False)),
            final=bool(item.get("final", False)),
        )


def _num(v: Any) -> Any:
    if isinstance(v, bool | str):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    return v


def _spend_value(v: Any) -> float | int | str | bool:
    return v if isinstance(v, bool) else _plain(v)


def _plain(v: Any) -> float | int | str:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float | str):
        return v
    return str(v)
