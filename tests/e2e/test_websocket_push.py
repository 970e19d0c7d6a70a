"""ACCEPTANCE: a WebSocket client subscribed to SPX receives the next sweep's SPX updates
and nothing for other symbols; a subscription limited to a strategy gets that strategy
only; after unsubscribe nothing arrives; ping is answered with pong.

The local stack (moto server + the monitor timer component, which also plays API
Gateway's WebSocket API) runs the real handlers: functions/websocket/handler.py for
$connect / subscribe / unsubscribe / ping / $default / $disconnect,
functions/monitor/handler.py for the sweep with the real prediction service and the
trained model in models/, pushing through the Management API adapter
(post_to_connection) to the local server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from magic8.domain.market import Bar, MarketSnapshot
from magic8.monitor.watchlist import WatchlistEntry
from magic8.settings import DEFAULT_MODEL_DIR, AwsSettings
from magic8_dev.local.monitor_timer import MonitorTimerComponent
from magic8_dev.local.runner import LocalStack
from tests.e2e.stacks import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-websocket")]


def quiet_monitor() -> MonitorTimerComponent:
    """The monitor component with its timer out of the way: the test fires the sweeps."""
    return MonitorTimerComponent(interval_s=3600, first_fire_s=3600, print_updates=False)


def _snapshot(symbol: str, last: float, now: datetime) -> MarketSnapshot:
    start = int(now.timestamp()) // 300 * 300 - 40 * 300
    bars = tuple(
        Bar(ts=start + i * 300, open=last, high=last * 1.001, low=last * 0.999, close=last)
        for i in range(40)
    )
    return MarketSnapshot(symbol=symbol, last=last, bars=bars, updated_at=now, source="replay")


def _entry(symbol: str, strategy: str, strikes: list[float], center: float) -> WatchlistEntry:
    return WatchlistEntry.model_validate(
        {
            "symbol": symbol,
            "strategy": strategy,
            "strikes": strikes,
            "premium": 2.5,
            "predicted_price": center,
            "action": "BUY",
            "expiry": datetime.now(UTC) + timedelta(hours=2),
        }
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalStack, MonitorTimerComponent]]:
    if not (DEFAULT_MODEL_DIR / "manifest.json").exists():
        pytest.fail("models/manifest.json missing: run `magic8 train` first")
    with running_stack(
        demo=False, components=("tests.e2e.test_websocket_push:quiet_monitor",)
    ) as local:
        from magic8.adapters.market_dynamo import DynamoMarketRepository
        from magic8.adapters.watchlist_dynamo import DynamoWatchlistStore

        settings = AwsSettings()
        now = datetime.now(UTC)
        market = DynamoMarketRepository(settings.market_table)
        for sym, last in (("SPX", 5855.0), ("NDX", 20500.0), ("QQQ", 500.0), ("VIX", 16.0)):
            market.put_snapshot(_snapshot(sym, last, now))
        watch = DynamoWatchlistStore(settings.state_table)
        for e in (
            _entry("SPX", "Butterfly", [5805, 5855, 5905], 5855),
            _entry("SPX", "Vertical", [5850, 5860], 5855),
            _entry("NDX", "Butterfly", [20400, 20500, 20600], 20500),
            _entry("QQQ", "Vertical", [499, 501], 500),
        ):
            watch.add(e)
        component = local.components[0]
        assert isinstance(component, MonitorTimerComponent)
        yield local, component


def _frames(ws: ClientConnection, timeout: float, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Messages (batch frames unpacked): wait up to `timeout` for the first frame, then
    keep reading until nothing more arrives for `quiet` seconds."""
    out: list[dict[str, Any]] = []
    wait = timeout
    while True:
        try:
            raw = ws.recv(timeout=wait)
        except TimeoutError:
            return out
        msg = json.loads(raw)
        out.extend(msg["messages"] if msg.get("type") == "batch" else [msg])
        wait = quiet


def _subscribe(url: str, symbols: list[str]) -> ClientConnection:
    ws = connect(url, open_timeout=10)
    ws.send(json.dumps({"action": "subscribe", "symbols": symbols}))
    ack = json.loads(ws.recv(timeout=10))
    assert ack == {"type": "subscribed", "symbols": sorted(symbols), "strategies": {}}
    return ws


def test_spx_subscriber_gets_the_next_sweeps_spx_updates_only(
    stack: tuple[LocalStack, MonitorTimerComponent],
) -> None:
    local, monitor = stack
    assert local.ctx is not None
    url = local.ctx.facts["ws_url"]
    spx = _subscribe(url, ["SPX"])
    ndx = _subscribe(url, ["NDX", "RUT"])
    try:
        summary = monitor.fire_now()
        assert summary["errors"] == [] and summary["entries"] == 4
        spx_ids = {u["entry_id"] for u in summary["updates"] if u["symbol"] == "SPX"}
        ndx_ids = {u["entry_id"] for u in summary["updates"] if u["symbol"] == "NDX"}
        assert len(spx_ids) == 2 and len(ndx_ids) == 1

        got = _frames(spx, timeout=3)
        assert {m["type"] for m in got} == {"confidence"}
        assert {m["symbol"] for m in got} == {"SPX"}
        assert {m["entry_id"] for m in got} == spx_ids
        assert all(0.0 <= m["win_probability"] <= 1.0 for m in got)

        other = _frames(ndx, timeout=1)
        assert {m["symbol"] for m in other} == {"NDX"} and len(other) == 1

        # and the following sweep again reaches the SPX client with SPX only
        monitor.fire_now()
        again = _frames(spx, timeout=3)
        assert {m["entry_id"] for m in again} == spx_ids
    finally:
        spx.close()
        ndx.close()


def test_bad_subscription_is_refused_with_the_field_named(
    stack: tuple[LocalStack, MonitorTimerComponent],
) -> None:
    local, _ = stack
    assert local.ctx is not None
    with connect(local.ctx.facts["ws_url"], open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["field"] == "symbols" and "AAPL" in err["message"]
        # an unknown action reaches $default, which names the actions (not "Forbidden")
        ws.send(json.dumps({"action": "dance"}))
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["field"] == "action"
        assert "subscribe, unsubscribe, ping" in err["message"]


def test_disconnect_removes_the_connection(
    stack: tuple[LocalStack, MonitorTimerComponent],
) -> None:
    from magic8.adapters.connections_dynamo import DynamoConnectionStore

    local, _ = stack
    assert local.ctx is not None
    store = DynamoConnectionStore(AwsSettings().state_table)
    before = {c.connection_id for c in store.list_all()}
    ws = _subscribe(local.ctx.facts["ws_url"], ["QQQ"])
    during = {c.connection_id for c in store.list_all()}
    (new_id,) = during - before
    assert next(c for c in store.list_all() if c.connection_id == new_id).symbols == {"QQQ"}
    ws.close()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while new_id in {c.connection_id for c in store.list_all()}:
        assert datetime.now(UTC) < deadline, "connection not removed on $disconnect"


def test_strategy_filter_unsubscribe_and_ping_through_the_local_api(
    stack: tuple[LocalStack, MonitorTimerComponent],
) -> None:
    local, monitor = stack
    assert local.ctx is not None
    with connect(local.ctx.facts["ws_url"], open_timeout=10) as ws:
        ws.send(
            json.dumps({"action": "subscribe", "symbols": ["SPX"], "strategies": ["Butterfly"]})
        )
        ack = json.loads(ws.recv(timeout=10))
        assert ack == {
            "type": "subscribed",
            "symbols": ["SPX"],
            "strategies": {"SPX": ["Butterfly"]},
        }
        summary = monitor.fire_now()
        flies = {
            u["entry_id"]
            for u in summary["updates"]
            if u["symbol"] == "SPX" and u["strategy"] == "Butterfly"
        }
        assert len(flies) == 1
        got = _frames(ws, timeout=3)
        assert {m["entry_id"] for m in got} == flies  # not the SPX Vertical
        assert {(m["symbol"], m["strategy"]) for m in got} == {("SPX", "Butterfly")}

        ws.send(json.dumps({"action": "ping", "id": "hb-1"}))
        pong = json.loads(ws.recv(timeout=10))
        assert pong["type"] == "pong" and pong["id"] == "hb-1" and pong["idle_timeout_s"] == 600

        ws.send(json.dumps({"action": "unsubscribe", "symbols": ["SPX"]}))
        assert json.loads(ws.recv(timeout=10)) == {
            "type": "unsubscribed",
            "symbols": [],
            "strategies": {},
        }
        monitor.fire_now()
        assert _frames(ws, timeout=1.5) == []
