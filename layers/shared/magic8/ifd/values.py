"""The IFD value types: what the ports store and return (recent windows, per-option state,
signals) and the small rules that belong to them. Ports and adapters import these; the
scoring (analysis), the detector and the dispatcher import them too, never the reverse."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from magic8.domain.alerts import Alert, Severity
from magic8.domain.flow import PressureWindow
from magic8.ifd.baselines import Baseline, trading_day
from magic8.ifd.calibration import load_calibration

if TYPE_CHECKING:
    from magic8.ifd.analysis import Assessment

Direction = Literal["LONG", "SHORT"]


def _sq_bound(known: float, largest: float) -> float:
    """Variance bound for a record without sizes squared (schema 1): each known trade is at
    most ``largest``, so sum(size**2) <= known * largest."""
    return known * max(largest, 1.0)


def effective_blocks(known: float, variance: float) -> float:
    """Effective number of equal trades: known**2 / sum size**2 (n for n equal sizes)."""
    return known**2 / variance if variance > 0 else 0.0


@dataclass(frozen=True)
class WindowLite:
    """The part of a window the analysis needs about history and peers (storable)."""

    strike: float
    option_type: str  # "C" | "P"
    ws: int  # window start, epoch seconds
    ask: float
    bid: float
    unknown: float = 0.0
    trades: int = 0
    avg_size: float = 1.0
    sq: float = -1.0  # sum of squared sizes of known-side trades (< 0: unknown)
    vz: float = 0.0  # volume z against the option's own baseline (0: not known)

    @classmethod
    def of(cls, w: PressureWindow, vz: float = 0.0) -> WindowLite:
        known = w.ask_volume + w.bid_volume
        if w.ask_size_sq is not None and w.bid_size_sq is not None:
            sq = w.ask_size_sq + w.bid_size_sq
        else:
            sq = _sq_bound(known, max(w.largest_trade, w.avg_trade_size))
        return cls(
            strike=float(w.strike or 0.0),
            option_type=w.option_type or "",
            ws=int(w.window_start.timestamp()),
            ask=w.ask_volume,
            bid=w.bid_volume,
            unknown=w.unknown_volume,
            trades=w.total_trades,
            avg_size=w.avg_trade_size,
            sq=sq,
            vz=vz,
        )

    @cached_property
    def known(self) -> float:
        return self.ask + self.bid

    @cached_property
    def volume(self) -> float:
        return self.ask + self.bid + self.unknown

    @cached_property
    def ratio(self) -> float:
        k = self.known
        return 0.0 if k <= 0 else (self.ask - self.bid) / k

    @cached_property
    def variance(self) -> float:
        """Variance of ask - bid under balanced flow: sum of squared known trade sizes."""
        if self.sq >= 0:
            return max(self.sq, self.known) if self.known > 0 else 0.0
        return self.known * max(self.avg_size, 1.0)

    @cached_property
    def blocks(self) -> float:
        return effective_blocks(self.known, self.variance)

    @cached_property
    def sign(self) -> int:
        """Directional sign: +1 LONG, -1 SHORT, 0 none (calls bought / puts sold = LONG)."""
        r = self.ratio
        if r == 0:
            return 0
        s = 1 if r > 0 else -1
        return s if self.option_type == "C" else -s

    @cached_property
    def directional_net(self) -> float:
        """Net volume in the LONG direction (calls: ask - bid; puts: bid - ask)."""
        net = self.ask - self.bid
        return net if self.option_type == "C" else -net

    @cached_property
    def z(self) -> float:
        return self.imbalance_z()

    def signed_z(self) -> float:
        """(ask - bid) / sqrt(sum of squared sizes): ~N(0, 1) under balanced flow."""
        v = self.variance
        return 0.0 if v <= 0 else (self.ask - self.bid) / math.sqrt(v)

    def imbalance_z(self) -> float:
        return abs(self.signed_z())

    def to_list(self) -> list[float]:
        return [
            self.strike,
            self.ws,
            self.ask,
            self.bid,
            self.unknown,
            self.trades,
            self.avg_size,
            self.sq,
            round(self.vz, 4),
        ]

    @classmethod
    def from_list(cls, option_type: str, v: Sequence[float]) -> WindowLite:
        """Stored lists: 7 values (before size variance was kept), 8 or 9."""
        return cls(
            strike=float(v[0]),
            option_type=option_type,
            ws=int(v[1]),
            ask=float(v[2]),
            bid=float(v[3]),
            unknown=float(v[4]),
            trades=int(v[5]),
            avg_size=float(v[6]),
            sq=float(v[7]) if len(v) > 7 else -1.0,
            vz=float(v[8]) if len(v) > 8 else 0.0,
        )


def strength_label(strength: float) -> str:
    if strength >= 0.66:
        return "STRONG"
    if strength >= 0.33:
        return "MODERATE"
    return "WEAK"


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


@dataclass(frozen=True)
class DispatchResult:
    status: AlertStatus
    message_id: str | None = None


RECENT_WINDOWS = 8


@dataclass
class OptionState:
    underlying: str
    option_type: str  # "C" | "P"
    strike: float
    baseline: Baseline = field(default_factory=Baseline)
    recent: list[WindowLite] = field(default_factory=list)
    last_ws: int | None = None  # window_start (epoch s) of the last final window applied
    last_alert_ws: int | None = None
    last_alert_direction: str | None = None
    # the latest window that continued the last alert (same direction, no gap longer than
    # the re-alert interval): one alert per episode, however long it lasts
    last_chain_ws: int | None = None

    def apply(self, w: PressureWindow, bucket_minutes: int, keep: int = RECENT_WINDOWS) -> None:
        """Fold a final window in: baseline aggregate, recent list, high-water mark."""
        self.baseline.add_window(w, bucket_minutes)
        lite = WindowLite.of(w)
        kept = [r for r in self.recent if r.ws != lite.ws][-(keep - 1) :]
        self.recent = [*kept, lite]
        self.last_ws = lite.ws if self.last_ws is None else max(self.last_ws, lite.ws)

    def recorded(self, ws: int) -> WindowLite | None:
        return next((r for r in self.recent if r.ws == ws), None)

    def to_item(self) -> dict[str, Any]:
        return {
            "underlying": self.underlying,
            "option_type": self.option_type,
            "strike": self.strike,
            "baseline": self.baseline.to_json(),
            "recent": json.dumps([r.to_list() for r in self.recent], separators=(",", ":")),
            "last_ws": self.last_ws,
            "last_alert_ws": self.last_alert_ws,
            "last_alert_direction": self.last_alert_direction,
            "last_chain_ws": self.last_chain_ws,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OptionState:
        option_type = str(item["option_type"])
        return cls(
            underlying=str(item["underlying"]),
            option_type=option_type,
            strike=float(item["strike"]),
            baseline=Baseline.from_json(item.get("baseline")),
            recent=[
                WindowLite.from_list(option_type, v) for v in json.loads(item.get("recent") or "[]")
            ],
            last_ws=_opt_int(item.get("last_ws")),
            last_alert_ws=_opt_int(item.get("last_alert_ws")),
            last_alert_direction=item.get("last_alert_direction"),
            last_chain_ws=_opt_int(item.get("last_chain_ws")),
        )


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)
