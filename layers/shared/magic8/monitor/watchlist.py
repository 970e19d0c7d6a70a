"""The watchlist: trades DiscordTrading wants re-scored every sweep until their day ends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import Field, field_validator, model_validator

from magic8.domain import validation
from magic8.domain.trades import TradeRequest
from magic8.monitor.calendar import end_of_trading_day


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime) -> datetime:
    """Naive datetimes are read as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


class WatchlistAdd(TradeRequest):
    """What a client sends to POST /watchlist: a trade (the same fields and rules as
    /predict, by inheritance, so the two cannot drift), optionally an expiry and a label."""

    expiry: datetime | None = None
    label: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("expiry")
    @classmethod
    def _plausible_expiry(cls, v: datetime | None) -> datetime | None:
        return None if v is None else validation.plausible_time(v, "expiry")

    def trade_request(self) -> TradeRequest:
        """The trade alone (what the sweep scores)."""
        return TradeRequest.model_validate(
            self.model_dump(exclude=set(WatchlistAdd.model_fields) - set(TradeRequest.model_fields))
        )


class WatchlistEntry(WatchlistAdd):
    """One watched trade. `expiry` is the end of its trading day (16:00 US/Eastern): TTL."""

    id: Annotated[str, Field(min_length=1, max_length=64)] = Field(default_factory=_new_id)
    created_at: datetime = Field(default_factory=_utcnow)
    expiry: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_expiry(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        created = data.get("created_at") or _utcnow()
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        data["created_at"] = created
        if data.get("expiry") is None and isinstance(created, datetime):
            data["expiry"] = end_of_trading_day(_aware(created))
        return data

    @field_validator("created_at", "expiry")
    @classmethod
    def _aware_times(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v)

    @classmethod
    def from_add(cls, add: WatchlistAdd, now: datetime | None = None) -> WatchlistEntry:
        data: dict[str, Any] = add.model_dump()
        data["created_at"] = now or _utcnow()
        return cls.model_validate(data)

    @property
    def expires_at(self) -> datetime:
        assert self.expiry is not None  # set by the validator
        return self.expiry

    def is_active(self, now: datetime) -> bool:
        return self.expires_at > now

    def ttl_epoch(self) -> int:
        return int(self.expires_at.timestamp())


class WatchlistStore(Protocol):
    """Where watched trades live (the state table in AWS)."""

    def add(self, entry: WatchlistEntry) -> None: ...

    def get(self, entry_id: str) -> WatchlistEntry | None: ...

    def list_active(self, now: datetime) -> list[WatchlistEntry]:
        """Entries whose expiry is after `now` (expired items are filtered on read)."""
        ...

    def remove(self, entry_id: str) -> bool:
        """True if the entry existed."""
        ...


class InMemoryWatchlistStore:
    """A WatchlistStore in a dict (unit tests, benchmarks)."""

    def __init__(self, entries: Sequence[WatchlistEntry] = ()) -> None:
        self._entries: dict[str, WatchlistEntry] = {e.id: e for e in entries}

    def add(self, entry: WatchlistEntry) -> None:
        self._entries[entry.id] = entry

    def get(self, entry_id: str) -> WatchlistEntry | None:
        return self._entries.get(entry_id)

    def list_active(self, now: datetime) -> list[WatchlistEntry]:
        active = [e for e in self._entries.values() if e.is_active(now)]
        return sorted(active, key=lambda e: (e.created_at, e.id))

    def remove(self, entry_id: str) -> bool:
        return self._entries.pop(entry_id, None) is not None
