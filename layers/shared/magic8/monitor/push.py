"""Push to WebSocket clients: who gets which message, and what the messages look like.

Clients subscribe to symbols ({"action": "subscribe", "symbols": ["SPX"]}); each sweep's
confidence updates and each IFD signal go only to connections subscribed to its symbol.
Connections live in a ConnectionStore; delivery goes through a ConnectionPoster (API
Gateway's Management API in AWS, the local WebSocket server on the embedded default).
A gone connection is deleted and the rest are still served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from magic8.domain.trades import Symbol

# IFD signals are about NQ options; a client subscribes to them with this symbol too.
IFD_SYMBOLS: frozenset[str] = frozenset({"NQ"})
SUBSCRIBABLE: frozenset[str] = frozenset(s.value for s in Symbol) | IFD_SYMBOLS
MAX_SUBSCRIPTIONS = 16


class Connection(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_id: str
    symbols: frozenset[str] = frozenset()
    connected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ConnectionStore(Protocol):
    def add(self, connection: Connection) -> None: ...

    def set_symbols(self, connection_id: str, symbols: Iterable[str]) -> None: ...

    def remove(self, connection_id: str) -> None: ...

    def list_all(self) -> list[Connection]: ...


class ConnectionPoster(Protocol):
    def post(self, connection_id: str, data: bytes) -> bool:
        """Deliver one message; False if the connection is gone (it will be removed)."""
        ...


class ConfidenceUpdate(BaseModel):
    """One watched trade's score from one sweep."""

    model_config = ConfigDict(frozen=True)

    type: Literal["confidence"] = "confidence"
    sweep_at: datetime
    entry_id: str
    symbol: str
    strategy: str
    strikes: list[float]
    win_probability: float
    threshold: float
    prediction: str
    previous_probability: float | None = None
    crossed: Literal["above", "below"] | None = None
    moved: bool = False
    model_type: str | None = None
    data_source: str | None = None


class IfdSignalMessage(BaseModel):
    """An IFD signal as pushed to clients subscribed to its underlying (and to "NQ")."""

    model_config = ConfigDict(frozen=True)

    type: Literal["ifd_signal"] = "ifd_signal"
    symbol: str
    signal: dict[str, Any]


def ifd_signal_message(signal: Mapping[str, Any]) -> IfdSignalMessage:
    """Shape an IFD signal (the stored/alerted dict) for push; symbol = its root ("NQ")."""
    underlying = str(signal.get("underlying") or signal.get("symbol") or "NQ")
    root = "NQ" if underlying.upper().startswith("NQ") else underlying.upper()
    return IfdSignalMessage(symbol=root, signal=dict(signal))


PushMessage = ConfidenceUpdate | IfdSignalMessage


def normalise_symbols(symbols: Iterable[Any]) -> list[str]:
    """Validated, upper-cased, de-duplicated subscription symbols (ValueError names the bad one)."""
    out: list[str] = []
    for raw in symbols:
        if not isinstance(raw, str):
            raise ValueError(f"symbols: expected strings, got {type(raw).__name__}")
        s = raw.strip().upper()
        if s not in SUBSCRIBABLE:
            raise ValueError(f"symbols: unknown symbol {raw!r}; one of {sorted(SUBSCRIBABLE)}")
        if s not in out:
            out.append(s)
    if len(out) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"symbols: at most {MAX_SUBSCRIPTIONS}")
    return out


def route(
    messages: Sequence[PushMessage], connections: Sequence[Connection]
) -> dict[str, list[PushMessage]]:
    """connection id -> the messages for symbols it subscribed to (in message order)."""
    by_symbol: dict[str, list[str]] = {}
    for c in connections:
        for s in c.symbols:
            by_symbol.setdefault(s, []).append(c.connection_id)
    out: dict[str, list[PushMessage]] = {}
    for m in messages:
        for cid in by_symbol.get(m.symbol, ()):
            out.setdefault(cid, []).append(m)
    return out


def encode(messages: Sequence[PushMessage]) -> bytes:
    """One frame per connection per push: {"type": "batch", "messages": [...]} or one message."""
    if len(messages) == 1:
        return messages[0].model_dump_json().encode()
    payload = {"type": "batch", "messages": [json.loads(m.model_dump_json()) for m in messages]}
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class PushResult:
    connections: int = 0
    delivered: int = 0
    messages: int = 0
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class SubscriptionPush:
    """Deliver messages to the subscribed connections; delete the gone ones."""

    def __init__(self, store: ConnectionStore, poster: ConnectionPoster) -> None:
        self.store = store
        self.poster = poster

    def push(self, messages: Sequence[PushMessage]) -> PushResult:
        result = PushResult(messages=len(messages))
        if not messages:
            return result
        connections = self.store.list_all()
        result.connections = len(connections)
        for cid, msgs in route(messages, connections).items():
            try:
                ok = self.poster.post(cid, encode(msgs))
            except Exception:
                result.failed.append(cid)
                continue
            if ok:
                result.delivered += 1
            else:
                result.gone.append(cid)
                self.store.remove(cid)
        return result


class InMemoryConnectionStore:
    def __init__(self) -> None:
        self._conns: dict[str, Connection] = {}

    def add(self, connection: Connection) -> None:
        self._conns[connection.connection_id] = connection

    def set_symbols(self, connection_id: str, symbols: Iterable[str]) -> None:
        old = self._conns.get(connection_id) or Connection(connection_id=connection_id)
        self._conns[connection_id] = old.model_copy(update={"symbols": frozenset(symbols)})

    def remove(self, connection_id: str) -> None:
        self._conns.pop(connection_id, None)

    def list_all(self) -> list[Connection]:
        return list(self._conns.values())
