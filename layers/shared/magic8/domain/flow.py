"""The Kinesis `flow` record: one closed (or early-emitted) 5-minute pressure window.

Versioned JSON. Producers (gateway_host) write it; the ifd function parses it with
`PressureWindow.model_validate_json`. Version 2 adds the sum of squared trade sizes per
side (`ask_size_sq`, `bid_size_sq`: the variance of the net aggressor volume under balanced
flow, whatever the trade-size mix) and `emitted_at` (when an early window was cut);
version 1 records, which lack them, are still accepted (the analysis then bounds the
variance by known volume x largest trade). Partition key: the option's instrument id, so one
strike's windows stay ordered within a shard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from magic8.domain import validation

WINDOW_SECONDS = 300
FLOW_SCHEMA_VERSION: Literal[2] = 2

NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0, le=validation.MAX_SEQUENCE)]


class PressureWindow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1, 2] = FLOW_SCHEMA_VERSION
    instrument_id: NonNegInt
    underlying: Annotated[str, Field(min_length=1, max_length=32)]  # e.g. "NQZ5"
    symbol: Annotated[str, Field(max_length=64)] = ""  # raw option symbol, e.g. "NQZ5 C20100"
    expiration: Annotated[str, Field(max_length=32)] | None = None  # ISO date
    strike: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # None for futures
    option_type: Literal["C", "P"] | None = None
    window_start: datetime
    window_end: datetime
    bid_volume: NonNeg  # seller-aggressor volume (hit the bid)
    ask_volume: NonNeg  # buyer-aggressor volume (lifted the ask)
    unknown_volume: NonNeg = 0.0
    total_trades: NonNegInt
    avg_trade_size: NonNeg
    largest_trade: NonNeg
    notional_premium: NonNeg  # sum(price * size * multiplier)
    pressure_ratio: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]  # (ask-bid)/(ask+bid)
    dominant_side: Literal["BUY", "SELL", "NEUTRAL"]
    source: Literal["live", "replay", "backfill"] = "live"
    final: bool = True  # False for an early-emitted (still open) window
    first_sequence: NonNegInt = 0
    last_sequence: NonNegInt = 0
    # schema 2: sum of squared trade sizes of buyer- / seller-aggressor trades
    ask_size_sq: NonNeg | None = None
    bid_size_sq: NonNeg | None = None
    # schema 2: event time an early (final=False) window was cut at; None for final windows
    emitted_at: datetime | None = None

    @field_validator(
        "strike", "bid_volume", "ask_volume", "unknown_volume", "total_trades", mode="before"
    )
    @classmethod
    def _numbers_not_bools(cls, v: object) -> object:
        return validation.no_bool(v, "number")

    @field_validator("window_start", "window_end")
    @classmethod
    def _utc(cls, v: datetime, info: ValidationInfo) -> datetime:
        """Naive times are UTC (so naive and aware records compare); unrepresentable or
        implausible times are malformed records."""
        return validation.as_utc(validation.plausible_time(v, str(info.field_name)))

    @model_validator(mode="after")
    def _consistent(self) -> PressureWindow:
        validation.check_window(
            self.underlying,
            self.strike,
            self.window_start,
            self.window_end,
            {
                "bid_volume": self.bid_volume,
                "ask_volume": self.ask_volume,
                "unknown_volume": self.unknown_volume,
            },
            self.largest_trade,
            self.avg_trade_size,
            self.total_trades,
            self.notional_premium,
        )
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.last_sequence < self.first_sequence:
            raise ValueError("last_sequence must be >= first_sequence")
        if self.schema_version == 1 and (
            self.ask_size_sq is not None or self.bid_size_sq is not None or self.emitted_at
        ):
            raise ValueError("schema_version 1 records carry no size_sq / emitted_at")
        return self

    @property
    def as_of(self) -> datetime:
        """When the window's content was known: its end, or an early window's cut time."""
        if not self.final and self.emitted_at is not None:
            return min(self.emitted_at, self.window_end)
        return self.window_end

    @property
    def total_volume(self) -> float:
        return self.bid_volume + self.ask_volume + self.unknown_volume

    @property
    def window_key(self) -> str:
        """Identity of the window (idempotency key for its signal)."""
        return f"{self.instrument_id}:{int(self.window_start.timestamp())}"

    def partition_key(self) -> str:
        return str(self.instrument_id)


def pressure_ratio(ask_volume: float, bid_volume: float) -> float:
    total = ask_volume + bid_volume
    return 0.0 if total <= 0 else (ask_volume - bid_volume) / total


def dominant_side(ratio: float, dead_band: float = 0.1) -> Literal["BUY", "SELL", "NEUTRAL"]:
    if ratio > dead_band:
        return "BUY"
    if ratio < -dead_band:
        return "SELL"
    return "NEUTRAL"
