"""IFD signals: the stored record, the alert thresholds and the rate-capped dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from magic8.domain.alerts import Alert, Severity
from magic8.domain.flow import PressureWindow
from magic8.domain.ports import AlertPublisher
from magic8.ifd.analysis import Assessment, Direction, strength_label
from magic8.ifd.baselines import trading_day
from magic8.ifd.calibration import load_calibration
from magic8.ifd.ports import AlertRateLimiter

AlertStatus = Literal["none", "sent", "rate_limited", "continuation"]


@dataclass(frozen=True)
class SignalPolicy:
    store_threshold: float = 0.7
    # the fitted threshold (magic8.ifd.calibration: false-alarm budget) unless given
    alert_threshold: float = field(default_factory=lambda: load_calibration().alert_threshold)
    max_alerts_per_hour: int = 50
    # a further alert for the same option and direction within this many minutes of the
    # last one is a continuation: stored, not re-sent
    realert_minutes: int = 30
    critical_threshold: float = 0.95


def strike_text(strike: float) -> str:
    return f"{strike:g}"


def make_signal_id(window_end: datetime, strike: float, option_type: str) -> str:
    """'<window_end ISO UTC>#<strike>#<C|P>': sorts by time within an underlying."""
    return f"{window_end.astimezone(UTC).isoformat()}#{strike_text(strike)}#{option_type}"


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal_id: str
    window_key: str
    underlying: str
    symbol: str = ""
    instrument_id: int
    expiration: str | None = None
    strike: float
    option_type: Literal["C", "P"]
    window_start: datetime
    window_end: datetime
    day: str
    direction: Direction
    confidence: float = Field(ge=0, le=1)
    strength: float = Field(ge=0, le=1)
    strength_label: str = "WEAK"
    factors: dict[str, float] = Field(default_factory=dict)
    details: dict[str, float] = Field(default_factory=dict)
    pattern: str = ""
    ask_volume: float = 0.0
    bid_volume: float = 0.0
    total_volume: float = 0.0
    pressure_ratio: float = 0.0
    notional_premium: float = 0.0
    final: bool = True
    as_of: datetime | None = None  # when the window's content was known (early: cut time)
    cold_start: bool = False
    alerted: bool = False
    alert_status: AlertStatus = "none"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def time(self) -> datetime:
        """When the signal could first be known (scoring and latency use it)."""
        return self.as_of or self.window_end

    @classmethod
    def from_assessment(cls, w: PressureWindow, a: Assessment) -> Signal:
        assert w.strike is not None and w.option_type is not None and a.direction is not None
        return cls(
            signal_id=make_signal_id(w.window_end, w.strike, w.option_type),
            window_key=w.window_key,
            underlying=w.underlying,
            symbol=w.symbol,
            instrument_id=w.instrument_id,
            expiration=w.expiration,
            strike=w.strike,
            option_type=w.option_type,
            window_start=w.window_start,
            window_end=w.window_end,
            day=trading_day(w.window_start),
            direction=a.direction,
            confidence=round(a.confidence, 4),
            strength=round(a.strength, 4),
            strength_label=strength_label(a.strength),
            factors=a.factors(),
            details={k: round(v, 4) for k, v in a.details.items()},
            pattern=a.pattern,
            ask_volume=w.ask_volume,
            bid_volume=w.bid_volume,
            total_volume=w.total_volume,
            pressure_ratio=w.pressure_ratio,
            notional_premium=w.notional_premium,
            final=w.final,
            as_of=w.as_of,
            cold_start=a.capped,
        )

    def with_status(self, status: AlertStatus) -> Signal:
        return self.model_copy(update={"alert_status": status, "alerted": status == "sent"})

    def severity(self, policy: SignalPolicy = SignalPolicy()) -> Severity:
        return "critical" if self.confidence >= policy.critical_threshold else "warning"

    def subject(self) -> str:
        side = "buying" if self.ask_volume >= self.bid_volume else "selling"
        kind = "calls" if self.option_type == "C" else "puts"
        text = (
            f"IFD {self.direction} {self.underlying} {strike_text(self.strike)}{self.option_type}"
            f" conf {self.confidence:.2f}: institutional {side} of {kind}"
        )
        return text[:99]

    def to_alert(self, policy: SignalPolicy = SignalPolicy()) -> Alert:
        payload: dict[str, Any] = self.model_dump(mode="json")
        return Alert(
            kind="ifd_signal",
            symbol=self.underlying,
            severity=self.severity(policy),
            subject=self.subject(),
            payload=payload,
            dedupe_key=self.window_key,
        )

    def summary(self) -> dict[str, Any]:
        """The --signals line: time, underlying, strike, type, direction, confidence, alerted."""
        return {
            "time": self.window_end.astimezone(UTC).isoformat(),
            "window_start": self.window_start.astimezone(UTC).isoformat(),
            "underlying": self.underlying,
            "strike": self.strike,
            "option_type": self.option_type,
            "direction": self.direction,
            "confidence": self.confidence,
            "alerted": self.alerted,
            "alert_status": self.alert_status,
            "final": self.final,
            "as_of": self.time.astimezone(UTC).isoformat(),
            "pattern": self.pattern,
            "factors": self.factors,
        }


def rate_bucket(ts: datetime) -> str:
    """The clock hour (UTC, event time) an alert counts against."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H")


@dataclass(frozen=True)
class DispatchResult:
    status: AlertStatus
    message_id: str | None = None


class AlertDispatcher:
    """Rate cap then publish. Wrap ``dispatch`` in idempotency so a window alerts once."""

    def __init__(
        self,
        publisher: AlertPublisher,
        limiter: AlertRateLimiter,
        policy: SignalPolicy = SignalPolicy(),
    ) -> None:
        self.publisher = publisher
        self.limiter = limiter
        self.policy = policy

    def dispatch(self, signal: Signal) -> DispatchResult:
        bucket = rate_bucket(signal.window_end)
        if not self.limiter.try_acquire(bucket, self.policy.max_alerts_per_hour):
            self.limiter.record_excess(bucket)
            return DispatchResult("rate_limited")
        message_id = self.publisher.publish(signal.with_status("sent").to_alert(self.policy))
        return DispatchResult("sent", message_id)
