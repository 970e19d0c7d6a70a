"""The monitor handler end to end on the moto server: watchlist via the API, sweeps via
EventBridge-shaped events, alerts read back from the SNS -> SQS subscription queue.

The prediction service is the real one (real DynamoDB market/history adapters, the real
feature module); only the model is scripted so the test decides when a probability
crosses its threshold (the crossing logic, not XGBoost, is under test here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import functions.predict.monitor_routes as monitor_routes
from functions.monitor.deps import build_deps
from functions.monitor.handler import sweep
from functions.monitor.settings import MonitorSettings
from magic8.adapters.aws import client
from magic8.adapters.dynamo_state import DynamoKeyValueState
from magic8.adapters.history_dynamo import DynamoHistoryRepository
from magic8.domain.features import FEATURE_NAMES
from magic8.domain.heartbeat import HEARTBEAT_PK, HEARTBEAT_SK, GatewayHeartbeat
from magic8.domain.market import Bar, MarketSnapshot
from magic8.domain.model import ModelAnswer
from magic8.domain.service import PredictionService
from magic8.monitor.scheduled import MonitorDeps
from magic8_dev.local.monitor_timer import scheduled_event
from magic8_dev.local.provision import LocalResources

pytestmark = pytest.mark.xdist_group("moto-monitor")

# Tuesday 2026-11-17 15:00 UTC = 10:00 US/Eastern (market hours)
T0 = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)
THRESHOLD = 0.55


class ScriptedModel:
    """Model protocol of PredictionService; probabilities per (symbol, strategy)."""

    feature_names = FEATURE_NAMES

    def __init__(self) -> None:
        self.p: dict[tuple[str, str], float] = {}
        self.rev = 0
        self.rows_seen = 0

    @property
    def version(self) -> str:
        return f"scripted-{self.rev}"

    def set(self, symbol: str, strategy: str, p: float) -> None:
        self.p[(symbol, strategy)] = p
        self.rev += 1  # a new version: the service's prediction cache cannot answer

    def predict(
        self, features: np.ndarray, symbols: Sequence[str], strategies: Sequence[str]
    ) -> list[ModelAnswer]:
        assert features.shape == (len(symbols), len(FEATURE_NAMES))
        self.rows_seen += len(symbols)
        return [
            ModelAnswer(self.p.get((s, t), 0.40), THRESHOLD, "scripted", self.version)
            for s, t in zip(symbols, strategies, strict=True)
        ]


def _snapshot(symbol: str, last: float) -> MarketSnapshot:
    start = int(T0.timestamp()) - 30 * 300
    bars = tuple(
        Bar(ts=start + i * 300, open=last, high=last + 2, low=last - 2, close=last + (i % 3 - 1))
        for i in range(30)
    )
    return MarketSnapshot(symbol=symbol, last=last, bars=bars, updated_at=datetime.now(UTC))


@pytest.fixture()
def api(aws_resources: LocalResources) -> Iterator[TestClient]:
    """The predict API (functions/predict/app.py, which includes the monitor routes) on
    the real DynamoDB adapters (moto)."""
    from functions.predict.app import create_app
    from functions.predict.settings import ApiSettings

    monitor_routes._default_deps.cache_clear()
    yield TestClient(create_app(ApiSettings()))
    monitor_routes._default_deps.cache_clear()


@pytest.fixture()
def rig(aws_resources: LocalResources, api: TestClient) -> dict[str, Any]:
    from magic8.adapters.market_dynamo import DynamoMarketRepository

    settings = MonitorSettings()
    market = DynamoMarketRepository(settings.market_table)
    for sym, last in (("SPX", 5855.0), ("NDX", 20500.0), ("VIX", 16.0)):
        market.put_snapshot(_snapshot(sym, last))
    model = ScriptedModel()
    service = PredictionService(
        market_repo=market,
        model=model,
        history_repo=DynamoHistoryRepository(settings.history_table),
    )
    deps: MonitorDeps = build_deps(settings.model_copy(update={"ws_endpoint": ""}), service)
    return {
        "settings": settings,
        "deps": deps,
        "model": model,
        "api": api,
        "res": aws_resources,
        "state": DynamoKeyValueState(settings.state_table),
    }


def _beat(rig: dict[str, Any], at: datetime) -> None:
    # TTL far out: the test clock (T0) is days behind the wall clock TTL reads use
    item = GatewayHeartbeat(updated_at=at, healthy=True).to_item(ttl_seconds=90 * 86400)
    rig["state"].table.put_item(Item=item)
    assert (item["pk"], item["sk"]) == (HEARTBEAT_PK, HEARTBEAT_SK)


def _run(rig: dict[str, Any], at: datetime) -> dict[str, Any]:
    return sweep(scheduled_event(at), rig["deps"], rig["settings"])


def _drain(rig: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alert delivered to the SNS subscription queue so far (then deleted)."""
    sqs = client("sqs")
    url = rig["res"].alerts_queue_url
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            body = json.loads(m["Body"])
            out.append(
                {
                    "kind": body["MessageAttributes"]["kind"]["Value"],
                    "symbol": body["MessageAttributes"]["symbol"]["Value"],
                    "subject": body.get("Subject"),
                    "alert": json.loads(body["Message"]),
                }
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _watch(api: TestClient, **over: Any) -> dict[str, Any]:
    body = {
        "symbol": "SPX",
        "strategy": "Butterfly",
        "strikes": [5805, 5855, 5905],
        "premium": 24.8,
        "predicted_price": 5855,
        "action": "BUY",
        **over,
    }
    r = api.post("/watchlist", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_watchlist_endpoints_through_the_api(api: TestClient) -> None:
    a = _watch(api)
    b = _watch(api, symbol="NDX", strategy="Vertical", strikes=[20400, 20450], premium=9.0)
    assert a["expiry"] > a["created_at"]
    listed = api.get("/watchlist").json()
    assert listed["count"] == 2 and {e["id"] for e in listed["entries"]} == {a["id"], b["id"]}
    assert [e["id"] for e in api.get("/watchlist?symbol=ndx").json()["entries"]] == [b["id"]]
    assert api.get(f"/watchlist/{a['id']}").json()["strikes"] == [5805, 5855, 5905]
    assert api.delete(f"/watchlist/{a['id']}").status_code == 204
    assert api.delete(f"/watchlist/{a['id']}").status_code == 404
    assert api.get("/watchlist").json()["count"] == 1
    bad = api.post(
        "/watchlist",
        json={"symbol": "SPX", "strategy": "Vertical", "strikes": [1, 2, 3], "premium": 1,
              "predicted_price": 2, "action": "BUY"},
    )  # fmt: skip
    assert bad.status_code == 422 and "strikes" in bad.text
    past = api.post(
        "/watchlist",
        json={"symbol": "SPX", "strategy": "Vertical", "strikes": [5800, 5810], "premium": 1,
              "predicted_price": 5805, "action": "BUY", "expiry": "2020-01-01T00:00:00Z"},
    )  # fmt: skip
    assert past.status_code == 422 and "expiry" in past.text
    # stored in the state table with a TTL at the end of the trading day
    item = client("dynamodb").get_item(
        TableName=MonitorSettings().state_table, Key={"pk": {"S": "watch"}, "sk": {"S": b["id"]}}
    )["Item"]
    expiry = datetime.fromisoformat(b["expiry"].replace("Z", "+00:00"))
    assert int(item["expires_at"]["N"]) == int(expiry.timestamp())


def test_crossing_alerts_fire_once_per_crossing_through_sns_to_sqs(rig: dict[str, Any]) -> None:
    api, model = rig["api"], rig["model"]
    fly = _watch(api)
    condor = _watch(
        api, strategy="Iron Condor", strikes=[5755, 5805, 5905, 5955], premium=3.2, action="SELL"
    )
    now = T0
    _beat(rig, now)
    # the probability path of the SPX butterfly; the condor stays at 0.40 throughout
    path = [0.40, 0.70, 0.72, 0.74, 0.30, 0.32, 0.60]
    per_sweep = []
    for p in path:
        model.set("SPX", "Butterfly", p)
        _beat(rig, now - timedelta(seconds=20))
        summary = _run(rig, now)
        assert summary["entries"] == 2 and summary["errors"] == []
        # at most one market read per sweep for the whole batch (SPX + VIX), 0 when the
        # service's short market cache still holds the snapshots
        assert summary["market_data_fetches"] in (0, 1)
        per_sweep.append([(m["kind"], m["alert"]["payload"]["crossed"]) for m in _drain(rig)])
        now += timedelta(minutes=5)
    # 0.40 -> 0.70 up (and a > 0.10 move: still ONE alert), 0.74 -> 0.30 down, 0.32 -> 0.60 up
    assert per_sweep == [
        [],
        [("confidence_cross", "above")],
        [],
        [],
        [("confidence_cross", "below")],
        [],
        [("confidence_cross", "above")],
    ]
    assert model.rows_seen >= len(path)
    # what the alert carries
    model.set("SPX", "Butterfly", 0.20)
    _beat(rig, now)
    _run(rig, now)
    (msg,) = _drain(rig)
    assert msg["symbol"] == "SPX" and msg["alert"]["payload"]["entry_id"] == fly["id"]
    assert msg["alert"]["payload"]["reasons"] == ["crossed_below", "moved"]
    # the threshold is the butterfly's EV breakeven, not the model's: a 24.8 debit on a
    # 50-wide fly (max profit 25.2, max loss 24.8) breaks even at 24.8 / 50 = 0.496
    assert "crossed below 0.50" in msg["subject"]
    assert condor["id"] not in json.dumps(msg)
    # confidence history was written by the service for the sweeps
    points = DynamoHistoryRepository(rig["settings"].history_table).query("SPX#Butterfly", 0, 2**53)
    assert len(points) >= 1


def test_stale_heartbeat_gives_exactly_one_alert_per_incident(rig: dict[str, Any]) -> None:
    _watch(rig["api"])
    now = T0
    kinds = []
    # fresh, stale x3, fresh, stale x2
    for fresh in (True, False, False, False, True, False, False):
        if fresh:
            _beat(rig, now - timedelta(seconds=30))
        summary = _run(rig, now)
        kinds.append(([m["kind"] for m in _drain(rig)], summary["gateway_stale"]))
        now += timedelta(minutes=5)
    assert kinds == [
        ([], False),
        (["gateway_stale"], True),
        ([], True),
        ([], True),
        ([], False),
        (["gateway_stale"], True),
        ([], True),
    ]


def test_no_stale_alert_outside_market_hours(rig: dict[str, Any]) -> None:
    evening = datetime(2026, 11, 17, 23, 30, tzinfo=UTC)  # 18:30 ET
    _beat(rig, evening - timedelta(hours=2))
    for i in range(3):
        summary = _run(rig, evening + timedelta(minutes=5 * i))
        assert summary["gateway_stale"] is False
    assert _drain(rig) == []


def test_outcomes_and_accuracy_in_dynamodb(rig: dict[str, Any]) -> None:
    api, model = rig["api"], rig["model"]
    entry = _watch(api)
    model.set("SPX", "Butterfly", 0.66)
    _beat(rig, T0)
    _run(rig, T0)
    r = api.post("/outcomes", json={"entry_id": entry["id"], "won": True})
    assert r.status_code == 201, r.text
    assert r.json()["win_probability"] == pytest.approx(0.66)
    api.post(
        "/outcomes",
        json={"symbol": "SPX", "strategy": "Butterfly", "win_probability": 0.3, "won": True},
    )
    report = api.get("/accuracy?windows=1").json()
    group = next(g for g in report["groups"] if g["symbol"] == "SPX")
    assert group["n"] == 2 and group["accuracy"] == 0.5
    assert group["brier"] == pytest.approx(((1 - 0.66) ** 2 + (1 - 0.3) ** 2) / 2)


def test_websocket_api_subscriptions_and_push_through_management_api(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$connect/subscribe/$disconnect through functions/websocket/handler.py, connections in
    DynamoDB, pushes via post_to_connection to the local WebSocket API; a gone connection
    is deleted."""
    from websockets.sync.client import connect

    import functions.websocket.handler as ws_handler
    from magic8.adapters.connections_dynamo import DynamoConnectionStore
    from magic8.adapters.websocket_push import build_subscription_push
    from magic8.monitor.push import ConfidenceUpdate, Connection, ifd_signal_message
    from magic8_dev.local.monitor_timer import LocalWebSocketApi

    api = LocalWebSocketApi(lambda e, c: ws_handler.handler(e, c)).start()
    monkeypatch.setenv("MAGIC8_WS_ENDPOINT", api.management_url)
    ws_handler.reset()
    try:
        table = MonitorSettings().state_table
        store = DynamoConnectionStore(table)
        store.add(Connection(connection_id="vanished", symbols=frozenset({"SPX"})))
        with connect(api.url) as spx, connect(api.url) as nq:
            spx.send(json.dumps({"action": "subscribe", "symbols": ["spx"]}))
            assert json.loads(spx.recv(timeout=5)) == {
                "type": "subscribed",
                "symbols": ["SPX"],
                "strategies": {},
            }
            nq.send(json.dumps({"action": "subscribe", "symbols": ["NQ"]}))
            assert json.loads(nq.recv(timeout=5))["symbols"] == ["NQ"]
            assert len(store.list_all()) == 3
            push = build_subscription_push(table, api.management_url)
            update = ConfidenceUpdate(
                sweep_at=T0,
                entry_id="e1",
                symbol="SPX",
                strategy="Butterfly",
                strikes=[5805, 5855, 5905],
                win_probability=0.61,
                threshold=0.55,
                prediction="WIN",
            )
            signal = ifd_signal_message({"underlying": "NQZ5", "strike": 20100, "confidence": 0.9})
            result = push.push([update, signal])
            assert result.delivered == 2 and result.gone == ["vanished"]
            assert json.loads(spx.recv(timeout=5))["entry_id"] == "e1"
            got = json.loads(nq.recv(timeout=5))
            assert got["type"] == "ifd_signal" and got["signal"]["strike"] == 20100
            with pytest.raises(TimeoutError):
                spx.recv(timeout=0.5)
        # the vanished connection was deleted; the closed ones leave on $disconnect
        import time as _t

        deadline = _t.monotonic() + 5
        while store.list_all() and _t.monotonic() < deadline:
            _t.sleep(0.05)
        assert store.list_all() == []
    finally:
        api.stop()
        ws_handler.reset()
