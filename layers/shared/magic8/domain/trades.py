"""The trade a client asks about (the DiscordTrading / earlier-predictor contract)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from magic8.domain import trade_shape, validation


class Strategy(StrEnum):
    BUTTERFLY = "Butterfly"
    IRON_CONDOR = "Iron Condor"
    VERTICAL = "Vertical"
    SONAR = "Sonar"


class Symbol(StrEnum):
    SPX = "SPX"
    SPY = "SPY"
    XSP = "XSP"
    NDX = "NDX"
    QQQ = "QQQ"
    RUT = "RUT"


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


# Strikes each strategy needs. Sonar is Magic8's iron-condor-shaped trade (four strikes).
STRIKE_COUNT: dict[Strategy, int] = {
    Strategy.BUTTERFLY: 3,
    Strategy.IRON_CONDOR: 4,
    Strategy.VERTICAL: 2,
    Strategy.SONAR: 4,
}

MAX_PRICE = 1_000_000.0
FinitePositive = Annotated[float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)]
FiniteNonNegative = Annotated[float, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]


_FOLDED: dict[type[StrEnum], dict[str, StrEnum]] = {}


def _case_insensitive(enum_cls: type[StrEnum], value: object) -> object:
    """The member whose value matches `value` ignoring case, surrounding blanks and
    underscores-for-spaces; anything else is returned unchanged (the enum rejects it)."""
    if isinstance(value, str):
        table = _FOLDED.get(enum_cls)
        if table is None:
            table = _FOLDED[enum_cls] = {m.value.casefold(): m for m in reversed(enum_cls)}
        return table.get(value.strip().replace("_", " ").casefold(), value)
    return value


class TradeRequest(BaseModel):
    """One proposed trade. Strikes may come in any order; they are kept as sent.

    strikes and action may be left out (or null): the strategy's standard Magic8 strikes
    around predicted_price and its default action are used, and `assumed` names them.
    Names go through the alias tables of magic8.domain.trade_shape (IronCondor, Put Spread,
    SPXW, $SPX, long/short ...)."""

    model_config = ConfigDict(extra="ignore", str_max_length=64, frozen=True)

    strategy: Strategy
    symbol: Symbol
    premium: FiniteNonNegative
    predicted_price: FinitePositive
    strikes: Annotated[
        list[FinitePositive], Field(min_length=2, max_length=4, default_factory=list)
    ]
    action: Action = Action.BUY
    quantity: Annotated[int, Field(ge=1, le=10_000)] = 1
    risk: (
        Annotated[float, Field(ge=-MAX_PRICE * 100, le=MAX_PRICE * 100, allow_inf_nan=False)] | None
    ) = None
    reward: (
        Annotated[float, Field(ge=-MAX_PRICE * 100, le=MAX_PRICE * 100, allow_inf_nan=False)] | None
    ) = None
    short_term: Annotated[float, Field(ge=-MAX_PRICE, le=MAX_PRICE, allow_inf_nan=False)] | None = (
        None
    )
    long_term: Annotated[float, Field(ge=-MAX_PRICE, le=MAX_PRICE, allow_inf_nan=False)] | None = (
        None
    )
    option_type: Annotated[str, Field(pattern=r"^(?i:call|put|c|p)$")] | None = None
    timestamp: datetime | None = None

    _assumed: tuple[str, ...] = PrivateAttr(default=())
    # (max profit, max loss) per share, computed once per trade by
    # risk_reward.trade_extremes (the impossible-premium check and the EV threshold)
    _extremes: tuple[float, float] | None = PrivateAttr(default=None)
    _identity: str | None = PrivateAttr(default=None)
    # (market state, feature key, prediction key) last computed for this trade (cache.py)
    _keys: tuple[object, object, object] | None = PrivateAttr(default=None)
    # hot paths read private attributes through __pydantic_private__ (a dict):
    # BaseModel.__getattr__ for one takes ~10 Python calls, 20-30x the dict read

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: object) -> object:
        return trade_shape.normalise_request(data)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: object) -> object:
        return _case_insensitive(Strategy, trade_shape.canonical_strategy(v))

    @field_validator(
        "premium", "predicted_price", "strikes", "quantity", "risk", "reward", mode="before"
    )
    @classmethod
    def _numbers_not_bools(cls, v: object, info: ValidationInfo) -> object:
        return validation.no_bool(v, str(info.field_name))

    @field_validator("timestamp")
    @classmethod
    def _plausible_timestamp(cls, v: datetime | None) -> datetime | None:
        return None if v is None else validation.plausible_time(v, "timestamp")

    @field_validator("symbol", "action", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("timestamp", mode="after")
    @classmethod
    def _eastern(cls, v: datetime | None) -> datetime | None:
        return trade_shape.eastern_if_naive(v)  # Magic8's times are US/Eastern

    @model_validator(mode="after")
    def _standard_defaults(self) -> TradeRequest:
        """Fill what the request left out (object.__setattr__: the model is frozen)."""
        assumed = []
        if "action" not in self.model_fields_set:
            object.__setattr__(self, "action", Action(trade_shape.default_action(self.strategy)))
            assumed.append("action")
        if "strikes" not in self.model_fields_set:
            strikes = trade_shape.standard_strikes(
                self.strategy, self.symbol, self.predicted_price, self.option_type, self.action
            )
            object.__setattr__(self, "strikes", strikes)
            assumed.insert(0, "strikes")
        if trade_shape.zone_was_assumed(self.timestamp):
            assumed.append("timezone")
        if assumed:
            self._assumed = tuple(assumed)
        return self

    @property
    def assumed(self) -> tuple[str, ...]:
        """What the service filled in: "strikes", "action", "timezone" (a timestamp
        without a zone, read as US/Eastern); empty if nothing."""
        assumed: tuple[str, ...] = self.__pydantic_private__["_assumed"]  # type: ignore[index]
        return assumed

    @property
    def identity(self) -> str:
        """The trade within its symbol x strategy history series (action, kind, strikes)."""
        private = self.__pydantic_private__
        ident: str | None = private["_identity"]  # type: ignore[index]
        if ident is None:
            ident = private["_identity"] = trade_shape.trade_identity(  # type: ignore[index]
                self.strategy, self.action, self.strikes, self.option_type
            )
        return ident

    @model_validator(mode="after")
    def _strikes_fit_strategy(self) -> TradeRequest:
        need = STRIKE_COUNT[self.strategy]
        if len(self.strikes) != need:
            raise ValueError(
                f"strikes: {self.strategy.value} needs {need} strikes, got {len(self.strikes)}"
            )
        if len(set(self.strikes)) != len(self.strikes) and self.strategy != Strategy.BUTTERFLY:
            raise ValueError("strikes: strikes must be distinct")
        if self.strategy == Strategy.BUTTERFLY and len(set(self.strikes)) != 3:
            raise ValueError("strikes: butterfly strikes must be three distinct prices")
        # strikes and predicted price plausible for the symbol (the premium-vs-width rule is
        # the impossible-premium check of issue 15; /calculate_risk_reward refuses a sure profit)
        validation.check_trade(
            self.symbol.value, self.strikes, self.predicted_price, None, self.strategy.value
        )
        return self

    @property
    def sorted_strikes(self) -> list[float]:
        return sorted(self.strikes)

    @property
    def is_put(self) -> bool | None:
        if self.option_type is None:
            return None
        return self.option_type.lower().startswith("p")

    def cache_key(self) -> tuple[object, ...]:
        """Everything a prediction for this trade depends on, besides market state."""
        return (
            self.strategy.value,
            self.symbol.value,
            self.premium,
            self.predicted_price,
            tuple(self.strikes),
            self.action.value,
            self.quantity,
            self.risk,
            self.reward,
            self.short_term,
            self.long_term,
            (self.option_type or "").lower()[:1],
            self.timestamp.isoformat() if self.timestamp else None,
        )
