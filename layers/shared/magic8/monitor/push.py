"""Push to WebSocket clients: who gets which message, and what the messages look like.

Clients subscribe to symbols, optionally limited to strategies
({"action": "subscribe", "symbols": ["SPX"], "strategies": ["Butterfly"]}), and
unsubscribe the same way (`subscribe_to` / `unsubscribe_from`: a subscription is, per
symbol, every strategy or a set of strategies). Each sweep's confidence updates go only
to connections subscribed to their symbol and strategy; an IFD signal (no strategy) to
every connection subscribed to its symbol. Connections live in a ConnectionStore;
delivery goes through a ConnectionPoster (API Gateway's Management API in AWS, the local
WebSocket server on the embedded default). A gone connection is deleted and the rest are
still served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from magic8.domain.trade_shape import canonical_strategy, canonical_symbol
from magic8.domain.trades import Strategy, Symbol

# IFD signals are about NQ options; a client subscribes to them with this symbol too.
IFD_SYMBOLS: frozenset[str] = frozenset({"NQ"})
SUBSCRIBABLE: frozenset[str] = frozenset(s.value for s in Symbol) | IFD_SYMBOLS
STRATEGIES: frozenset[str] = frozenset(s.value for s in Strategy)
MAX_SUBSCRIPTIONS = 16


class Connection(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_id: str
    symbols: frozenset[str] = frozenset()
    # per subscribed symbol, the strategies its messages are limited to; a symbol that is
    # not a key here gets every strategy
    strategies: dict[str, frozenset[str]] = Field(default_factory=dict)
    connected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def wants(self, symbol: str, strategy: str | None) -> bool:
        """Whether a message about (symbol, strategy) goes to this connection; a message
        without a strategy (an IFD signal) goes to every subscriber of its symbol."""
        if symbol not in self.symbols:
            return False
        only = self.strategies.get(symbol)
        return only is None or strategy is None or strategy in only

    def subscription(self) -> dict[str, Any]:
        """{"symbols": [...], "strategies": {symbol: [...]}} (sorted; a symbol absent from
        "strategies" gets every strategy)."""
        return {
            "symbols": sorted(self.symbols),
            "strategies": {k: sorted(v) for k, v in sorted(self.strategies.items())},
        }


class ConnectionStore(Protocol):
    def add(self, connection: Connection) -> None: ...

    def get(self, connection_id: str) -> Connection | None: ...

    def put(self, connection: Connection) -> None:
        """Store the connection as given (its subscription replaced)."""
        ...

    def set_symbols(self, connection_id: str, symbols: Iterable[str]) -> None: ...

    def remove(self, connection_id: str) -> None: ...

    def list_all(self) -> list[Connection]: ...

    def count(self) -> int:
        """How many connections are open (for the connection cap)."""
        ...


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
        s = str(canonical_symbol(raw)).strip().upper()  # aliases: SPXW, $SPX, ...
        if s not in SUBSCRIBABLE:
            raise ValueError(f"symbols: unknown symbol {raw!r}; one of {sorted(SUBSCRIBABLE)}")
        if s not in out:
            out.append(s)
    if len(out) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"symbols: at most {MAX_SUBSCRIPTIONS}")
    return out


def normalise_strategies(strategies: Iterable[Any]) -> list[str]:
    """Validated, de-duplicated strategy names; aliases as everywhere in the API
    ("IronCondor", "fly", ...); ValueError names the bad one."""
    out: list[str] = []
    for raw in strategies:
        if not isinstance(raw, str):
            raise ValueError(f"strategies: expected strings, got {type(raw).__name__}")
        name = canonical_strategy(raw)
        folded = str(name).strip().casefold()
        match = next((s for s in STRATEGIES if s.casefold() == folded), None)
        if match is None:
            raise ValueError(
                f"strategies: unknown strategy {raw[:32]!r}; one of {sorted(STRATEGIES)}"
            )
        if match not in out:
            out.append(match)
    return out


def _tidy(symbols: set[str], only: dict[str, frozenset[str]]) -> dict[str, Any]:
    """The fields of a subscription: a filter naming every strategy is no filter; a
    symbol left with no strategy is unsubscribed."""
    filters: dict[str, frozenset[str]] = {}
    for sym in list(symbols):
        got = only.get(sym)
        if got is None or got >= STRATEGIES:
            continue
        if not got:
            symbols.discard(sym)
            continue
        filters[sym] = got
    if len(symbols) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"symbols: at most {MAX_SUBSCRIPTIONS}")
    return {"symbols": frozenset(symbols), "strategies": filters}


def subscribe_to(
    connection: Connection, symbols: Sequence[str], strategies: Sequence[str] | None = None
) -> Connection:
    """The connection subscribed to `symbols` as well (added to what it had): to every
    strategy, or to `strategies` only (added to the strategies it had for that symbol)."""
    have = set(connection.symbols)
    only = dict(connection.strategies)
    for sym in symbols:
        if strategies is None:
            only.pop(sym, None)  # every strategy
        elif sym not in have:
            only[sym] = frozenset(strategies)
        elif sym in only:
            only[sym] = only[sym] | frozenset(strategies)
        # else: already every strategy
        have.add(sym)
    return connection.model_copy(update=_tidy(have, only))


def unsubscribe_from(
    connection: Connection,
    symbols: Sequence[str] | None = None,
    strategies: Sequence[str] | None = None,
) -> Connection:
    """The connection without `symbols` (all of them when None) for `strategies` (every
    strategy when None): no arguments = unsubscribed from everything."""
    have = set(connection.symbols)
    only = dict(connection.strategies)
    targets = set(have) if symbols is None else have & set(symbols)
    for sym in targets:
        if strategies is None:
            have.discard(sym)
            only.pop(sym, None)
        else:
            only[sym] = only.get(sym, STRATEGIES) - frozenset(strategies)
    return connection.model_copy(update=_tidy(have, only))


def route(
    messages: Sequence[PushMessage], connections: Sequence[Connection]
) -> dict[str, list[PushMessage]]:
    """connection id -> the messages for the symbols (and strategies) it subscribed to, in
    message order."""
    by_symbol: dict[str, list[Connection]] = {}
    for c in connections:
        for s in c.symbols:
            by_symbol.setdefault(s, []).append(c)
    out: dict[str, list[PushMessage]] = {}
    for m in messages:
        strategy = getattr(m, "strategy", None)
        for c in by_symbol.get(m.symbol, ()):
            if c.wants(m.symbol, strategy):
                out.setdefault(c.connection_id, []).append(m)
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

    def get(self, connection_id: str) -> Connection | None:
        return self._conns.get(connection_id)

    def put(self, connection: Connection) -> None:
        self._conns[connection.connection_id] = connection

    def count(self) -> int:
        return len(self._conns)

    def set_symbols(self, connection_id: str, symbols: Iterable[str]) -> None:
        old = self._conns.get(connection_id) or Connection(connection_id=connection_id)
        self._conns[connection_id] = old.model_copy(update={"symbols": frozenset(symbols)})

    def remove(self, connection_id: str) -> None:
        self._conns.pop(connection_id, None)

    def list_all(self) -> list[Connection]:
        return list(self._conns.values())
