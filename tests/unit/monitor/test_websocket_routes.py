"""WebSocket routes and push fan-out: subscribe / unsubscribe by symbol and strategy, the
connection cap, the ping heartbeat, $default (magic8.monitor.websocket_routes, push)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from magic8.monitor.push import (
    STRATEGIES,
    ConfidenceUpdate,
    Connection,
    InMemoryConnectionStore,
    SubscriptionPush,
    ifd_signal_message,
    route,
    subscribe_to,
    unsubscribe_from,
)
from magic8.monitor.websocket_routes import (
    IDLE_TIMEOUT_S,
    ROUTE_KEYS,
    WebSocketDeps,
)
from magic8.monitor.websocket_routes import route as ws_route

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Poster:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def post(self, connection_id: str, data: bytes) -> bool:
        self.sent.append((connection_id, json.loads(data)))
        return True


def deps(cap: int = 100) -> tuple[WebSocketDeps, InMemoryConnectionStore, Poster]:
    store, poster = InMemoryConnectionStore(), Poster()
    return (
        WebSocketDeps(store, lambda ctx: poster, max_connections=cap, clock=lambda: T0),
        store,
        poster,
    )


def event(route_key: str, conn: str = "c1", body: Any = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"requestContext": {"routeKey": route_key, "connectionId": conn}}
    if body is not None:
        ev["body"] = body if isinstance(body, str) else json.dumps(body)
    return ev


def update(symbol: str, strategy: str) -> ConfidenceUpdate:
    return ConfidenceUpdate(
        sweep_at=T0,
        entry_id=f"{symbol}-{strategy}",
        symbol=symbol,
        strategy=strategy,
        strikes=[1.0, 2.0, 3.0],
        win_probability=0.6,
        threshold=0.5,
        prediction="WIN",
    )


# --- subscription algebra --------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "symbols", "strategies"),
    [
        ([("sub", ["SPX"], None)], {"SPX"}, {}),
        ([("sub", ["SPX"], ["Butterfly"])], {"SPX"}, {"SPX": {"Butterfly"}}),
        # subscribe adds: symbols, and strategies to a filtered symbol
        ([("sub", ["SPX"], None), ("sub", ["NDX"], None)], {"SPX", "NDX"}, {}),
        (
            [("sub", ["SPX"], ["Butterfly"]), ("sub", ["SPX"], ["Vertical"])],
            {"SPX"},
            {"SPX": {"Butterfly", "Vertical"}},
        ),
        # a symbol already on every strategy stays on every strategy
        ([("sub", ["SPX"], None), ("sub", ["SPX"], ["Sonar"])], {"SPX"}, {}),
        # ... and subscribing without strategies lifts a filter
        ([("sub", ["SPX"], ["Sonar"]), ("sub", ["SPX"], None)], {"SPX"}, {}),
        # naming every strategy is the same as none
        ([("sub", ["SPX"], sorted(STRATEGIES))], {"SPX"}, {}),
        # unsubscribe a symbol
        ([("sub", ["SPX", "NDX"], None), ("unsub", ["SPX"], None)], {"NDX"}, {}),
        # unsubscribe a strategy from every symbol
        (
            [("sub", ["SPX", "NQ"], None), ("unsub", None, ["Butterfly"])],
            {"SPX", "NQ"},
            {s: STRATEGIES - {"Butterfly"} for s in ("SPX", "NQ")},
        ),
        # unsubscribe a strategy from one symbol
        (
            [("sub", ["SPX", "NDX"], None), ("unsub", ["NDX"], ["Sonar", "Vertical"])],
            {"SPX", "NDX"},
            {"NDX": {"Butterfly", "Iron Condor"}},
        ),
        # a symbol left without strategies is unsubscribed
        ([("sub", ["SPX"], ["Sonar"]), ("unsub", ["SPX"], ["Sonar"])], set(), {}),
        # unsubscribe everything; unknown symbols are a no-op
        ([("sub", ["SPX", "NDX"], ["Sonar"]), ("unsub", None, None)], set(), {}),
        ([("sub", ["SPX"], None), ("unsub", ["RUT"], None)], {"SPX"}, {}),
    ],
)
def test_subscription_algebra(
    steps: list[tuple[str, list[str] | None, list[str] | None]],
    symbols: set[str],
    strategies: dict[str, set[str]],
) -> None:
    conn = Connection(connection_id="c")
    for op, syms, strats in steps:
        if op == "sub":
            assert syms is not None
            conn = subscribe_to(conn, syms, strats)
        else:
            conn = unsubscribe_from(conn, syms, strats)
    assert conn.symbols == symbols
    assert {k: set(v) for k, v in conn.strategies.items()} == strategies


def test_fan_out_by_symbol_and_strategy() -> None:
    spx_fly = subscribe_to(Connection(connection_id="fly"), ["SPX"], ["Butterfly"])
    spx_all = subscribe_to(Connection(connection_id="all"), ["SPX"])
    nq_no_fly = unsubscribe_from(
        subscribe_to(Connection(connection_id="nq"), ["NQ"]), None, ["Butterfly"]
    )
    msgs = [update("SPX", "Butterfly"), update("SPX", "Vertical"), update("NDX", "Butterfly")]
    signal = ifd_signal_message({"underlying": "NQZ5", "strike": 20100})
    got = route([*msgs, signal], [spx_fly, spx_all, nq_no_fly])
    assert [m.entry_id for m in got["fly"]] == ["SPX-Butterfly"]  # type: ignore[union-attr]
    assert [m.entry_id for m in got["all"]] == ["SPX-Butterfly", "SPX-Vertical"]  # type: ignore[union-attr]
    # an IFD signal has no strategy: every subscriber of its symbol gets it
    assert [m.type for m in got["nq"]] == ["ifd_signal"]


def test_subscription_survives_the_store_round_trip() -> None:
    conn = subscribe_to(Connection(connection_id="c"), ["SPX"], ["Butterfly", "Sonar"])
    back = Connection.model_validate_json(conn.model_dump_json())
    assert back == conn and back.wants("SPX", "Sonar") and not back.wants("SPX", "Vertical")
    # a connection stored before strategy filters existed: every strategy
    old = Connection.model_validate_json('{"connection_id": "o", "symbols": ["SPX"]}')
    assert old.wants("SPX", "Vertical")


# --- routes ----------------------------------------------------------------------------


def test_subscribe_and_unsubscribe_by_symbol_and_strategy() -> None:
    d, store, poster = deps()
    assert ws_route(event("$connect"), d)["statusCode"] == 200
    out = ws_route(
        event(
            "subscribe",
            body={"action": "subscribe", "symbols": ["spxw", "NDX"], "strategies": ["IronCondor"]},
        ),
        d,
    )
    ack = {
        "type": "subscribed",
        "symbols": ["NDX", "SPX"],
        "strategies": {"NDX": ["Iron Condor"], "SPX": ["Iron Condor"]},
    }
    assert out["statusCode"] == 200 and json.loads(out["body"]) == ack
    assert poster.sent[-1] == ("c1", ack)
    out = ws_route(event("unsubscribe", body={"action": "unsubscribe", "symbols": ["NDX"]}), d)
    assert json.loads(out["body"]) == {
        "type": "unsubscribed",
        "symbols": ["SPX"],
        "strategies": {"SPX": ["Iron Condor"]},
    }
    pushed = SubscriptionPush(store, poster).push(
        [update("SPX", "Iron Condor"), update("SPX", "Sonar"), update("NDX", "Iron Condor")]
    )
    assert pushed.delivered == 1 and poster.sent[-1][1]["entry_id"] == "SPX-Iron Condor"
    # $default carrying an action (the local runtime, or a route not matched) is dispatched
    out = ws_route(event("$default", body={"action": "unsubscribe"}), d)
    assert json.loads(out["body"])["symbols"] == []
    assert store.get("c1") is not None and store.get("c1").symbols == frozenset()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("route_key", "body", "field", "text"),
    [
        ("subscribe", {"action": "subscribe"}, "symbols", "non-empty list"),
        ("subscribe", {"action": "subscribe", "symbols": ["AAPL"]}, "symbols", "AAPL"),
        (
            "subscribe",
            {"action": "subscribe", "symbols": ["SPX"], "strategies": ["Straddle"]},
            "strategies",
            "Straddle",
        ),
        (
            "subscribe",
            {"action": "subscribe", "symbols": ["SPX"], "strategies": []},
            "strategies",
            "non-empty",
        ),
        (
            "unsubscribe",
            {"action": "unsubscribe", "strategies": "Sonar"},
            "strategies",
            "non-empty",
        ),
        ("subscribe", "{not json", "body", "JSON"),
        ("$default", {"action": "dance"}, "action", "subscribe, unsubscribe, ping"),
        ("$default", "plain text", "action", "expected one of"),
    ],
)
def test_bad_messages_name_the_field(route_key: str, body: Any, field: str, text: str) -> None:
    d, store, poster = deps()
    ws_route(event("$connect"), d)
    out = ws_route(event(route_key, body=body), d)
    err = json.loads(out["body"])
    assert out["statusCode"] == 400 and err["type"] == "error"
    assert err["field"] == field and text in err["message"]
    assert poster.sent[-1] == ("c1", err)
    assert store.get("c1") == Connection(
        connection_id="c1", connected_at=store.get("c1").connected_at
    )  # type: ignore[union-attr]


def test_ping_is_answered_with_pong_and_the_idle_timeout() -> None:
    d, store, poster = deps()
    ws_route(event("$connect"), d)
    before = store.get("c1")
    out = ws_route(event("ping", body={"action": "ping", "id": 7}), d)
    pong = json.loads(out["body"])
    assert pong == {
        "type": "pong",
        "at": T0.isoformat(),
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "ping_every_s": 300,
        "id": 7,
    }
    assert poster.sent == [("c1", pong)] and store.get("c1") == before  # nothing stored
    assert "ping" in ROUTE_KEYS and "unsubscribe" in ROUTE_KEYS


def test_connection_cap_refuses_with_429_and_a_clear_error() -> None:
    d, store, _ = deps(cap=2)
    assert ws_route(event("$connect", "a"), d)["statusCode"] == 200
    assert ws_route(event("$connect", "b"), d)["statusCode"] == 200
    out = ws_route(event("$connect", "c"), d)
    body = json.loads(out["body"])
    assert out["statusCode"] == 429 and body["code"] == "connection_limit"
    assert "at most 2" in body["message"] and body["max_connections"] == 2
    assert store.count() == 2 and store.get("c") is None
    ws_route(event("$disconnect", "a"), d)  # a slot frees up
    assert ws_route(event("$connect", "c"), d)["statusCode"] == 200


def test_no_cap_and_an_uncountable_store_let_clients_in() -> None:
    d, _store, _ = deps(cap=0)
    for i in range(5):
        assert ws_route(event("$connect", f"x{i}"), d)["statusCode"] == 200

    class Broken(InMemoryConnectionStore):
        def count(self) -> int:
            raise ConnectionError("dynamodb down")

    d2 = WebSocketDeps(Broken(), lambda ctx: None, max_connections=1)
    assert ws_route(event("$connect", "y"), d2)["statusCode"] == 200
