"""The local WebSocket API (magic8_dev.local.monitor_timer.LocalWebSocketApi) with the real
websocket handler and the connections table on moto: the connection cap fails the upgrade
with 429 and a body saying why, and an idle client is closed like API Gateway does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import functions.websocket.handler as ws_handler
from magic8.adapters.connections_dynamo import DynamoConnectionStore
from magic8.settings import AwsSettings
from magic8_dev.local.monitor_timer import LocalWebSocketApi
from magic8_dev.local.provision import LocalResources

pytestmark = pytest.mark.xdist_group("moto-monitor")


@pytest.fixture()
def local_ws(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalWebSocketApi]:
    monkeypatch.setenv("MAGIC8_WS_MAX_CONNECTIONS", "2")
    api = LocalWebSocketApi(lambda e, c: ws_handler.handler(e, c), idle_timeout_s=1.0).start()
    monkeypatch.setenv("MAGIC8_WS_ENDPOINT", api.management_url)
    ws_handler.reset()
    try:
        yield api
    finally:
        api.stop()
        ws_handler.reset()


def test_connection_cap_refuses_the_upgrade_with_429(local_ws: LocalWebSocketApi) -> None:
    store = DynamoConnectionStore(AwsSettings().state_table)
    with connect(local_ws.url, open_timeout=10) as a, connect(local_ws.url, open_timeout=10):
        assert store.count() == 2
        with pytest.raises(InvalidStatus) as refused:
            connect(local_ws.url, open_timeout=10)
        response = refused.value.response
        assert response.status_code == 429
        body = json.loads(response.body or b"{}")
        assert body["code"] == "connection_limit" and "at most 2" in body["message"]
        a.send(json.dumps({"action": "ping"}))
        assert json.loads(a.recv(timeout=5))["type"] == "pong"  # the others are served


def test_an_idle_connection_is_closed_and_removed(local_ws: LocalWebSocketApi) -> None:
    store = DynamoConnectionStore(AwsSettings().state_table)
    with connect(local_ws.url, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "symbols": ["SPX"]}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)  # nothing sent for idle_timeout_s (1 s here, 600 in AWS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    # $disconnect removed it (give the handler a moment)
    import time

    deadline = time.monotonic() + 5
    while store.count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.count() == 0


def test_the_local_timer_sends_the_predict_function_its_warm_event(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locally the monitor timer plays the EventBridge warm rule too: the in-process
    predict handler (the one the local API front serves) warms its cache."""
    import json as _json

    import functions.predict.handler as predict_handler
    from magic8_dev.local.monitor_timer import MonitorTimerComponent
    from magic8_dev.ml.seed import seed_market
    from tests.factories import BUTTERFLY

    seed_market(aws_resources.settings)
    monkeypatch.setenv("MAGIC8_WARM_TRADES", _json.dumps([BUTTERFLY]))
    predict_handler.reset()
    try:
        assert MonitorTimerComponent(warm_cache=False).warm_predict() is None
        result = MonitorTimerComponent().warm_predict()
        assert result is not None and result["configured"] == 1 and result["errors"] == []
    finally:
        predict_handler.reset()
