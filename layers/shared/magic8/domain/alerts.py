"""The SNS alert contract: JSON message + message attributes kind, symbol, severity.

Published with MessageStructure=json: e-mail subscribers get `email_text()` (a few lines a
trader understands), every other protocol (SQS, Lambda) the Alert JSON unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

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

    def email_text(self) -> str:
        """A plain-text body a trader reads in a mail client (the JSON stays for machines)."""
        p = self.payload
        when = self.created_at.astimezone(_ET).strftime("%a %Y-%m-%d %H:%M ET")
        lines = [self.subject, ""]
        if self.kind == "ifd_signal":
            side = "buying" if _f(p.get("ask_volume")) >= _f(p.get("bid_volume")) else "selling"
            kind = "calls" if p.get("option_type") == "C" else "puts"
            lines += [
                f"Institutional {side} of {p.get('underlying', self.symbol)} {kind}"
                f" at strike {p.get('strike')}: {str(p.get('direction', '')).lower()} signal.",
                f"Confidence {_f(p.get('confidence')):.2f} (pattern: {p.get('pattern') or 'n/a'}).",
                f"Window {_hhmm(p.get('window_start'))}-{_hhmm(p.get('window_end'))} ET;"
                f" ask volume {p.get('ask_volume')}, bid volume {p.get('bid_volume')}.",
            ]
        elif self.kind == "confidence_cross":
            entry = p.get("entry") or {}
            prev = p.get("previous_probability")
            lines += [
                f"{entry.get('strategy', 'Trade')} on {self.symbol}: win probability"
                f" {_pct(prev)} -> {_pct(p.get('win_probability'))}"
                f" (threshold {_pct(p.get('threshold'))}).",
                "Why: " + "; ".join(str(r) for r in (p.get("reasons") or [])),
                f"Market data: {p.get('data_source', 'n/a')}; model: {p.get('model_type', 'n/a')}.",
            ]
        elif self.kind == "gateway_stale":
            if p.get("reason") == "no_mbo_data":
                lines.append(
                    "The gateway is connected but no NQ options order-book (MBO) data has"
                    f" arrived for {_secs(p.get('mbo_age_s'))}. Flow signals are paused."
                )
            else:
                age = p.get("age_s")
                lines.append(
                    (
                        "No gateway heartbeat has been seen"
                        if age is None
                        else f"The gateway heartbeat is {_secs(age)} old"
                    )
                    + f" (limit {_secs(p.get('stale_after_s'))}). Market data and flow"
                    " signals may be stale until it recovers."
                )
            lines.append("Ops: see the gateway runbook (README, Ops runbook).")
        elif self.kind == "drift":
            names = [str(d.get("feature")) for d in (p.get("drifted") or [])[:5]]
            lines.append(
                f"Model inputs drifted (PSI above {p.get('threshold')}): "
                + (", ".join(names) or "n/a")
                + ". Predictions may be less reliable."
            )
        lines += ["", f"Severity: {self.severity}. Sent {when}.", f"Reference: {self.dedupe_key}"]
        return "\n".join(lines)

    def sns_message(self) -> str:
        """SNS MessageStructure=json: readable text for e-mail, the JSON for everything else."""
        machine = self.message_json()
        return json.dumps(
            {"default": machine, "email": self.email_text(), "sqs": machine, "lambda": machine}
        )


_ET = ZoneInfo("America/New_York")


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{_f(v) * 100:.0f}%"


def _secs(v: Any) -> str:
    if v is None:
        return "an unknown time (never seen)"
    s = _f(v)
    return f"{s / 60:.0f} min" if s >= 120 else f"{s:.0f} s"


def _hhmm(v: Any) -> str:
    try:
        return datetime.fromisoformat(str(v)).astimezone(_ET).strftime("%H:%M")
    except ValueError:
        return "?"
