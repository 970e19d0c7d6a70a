"""The SNS alert contract: JSON message + message attributes kind, symbol, severity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AlertKind = Literal["ifd_signal", "confidence_cross", "gateway_stale", "drift"]
Severity = Literal["info", "warning", "critical"]


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    symbol: str
    severity: Severity = "info"
    subject: str = Field(max_length=99)  # SNS e-mail subjects must be < 100 chars
    payload: dict[str, Any]
    dedupe_key: str  # identity: the same key is never published twice
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def message_attributes(self) -> dict[str, dict[str, str]]:
        return {
            "kind": {"DataType": "String", "StringValue": self.kind},
            "symbol": {"DataType": "String", "StringValue": self.symbol},
            "severity": {"DataType": "String", "StringValue": self.severity},
        }

    def message_json(self) -> str:
        return self.model_dump_json()
