"""AWS unreachable under the predict API (issue 16): every route answers, none with a 500.

The AWS endpoint is a black hole (a local port that accepts connections and never
answers: the worst case, every call waits for its timeout) or refused (nothing listens).
Routes that need their store answer 503 with Retry-After and a JSON body; /predict and the
risk calculator answer (flagged degraded); /health/detailed answers within 2 s and says
"unreachable", not "stale". Every request ends well inside API Gateway's 29 s.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from functions.predict import monitor_routes, signals_routes
from functions.predict.deps import build_handler
from magic8.adapters.aws import reset_clients
from magic8_dev.local.api_front import LambdaContext, apigw_event
from magic8_dev.local.provision import LocalResources
from magic8_dev.resilience.table import ResilienceRow, budget, record
from tests.factories import BUTTERFLY, IRON_CONDOR

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-outages")]

API_GATEWAY_TIMEOUT_S = 29.0


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["black-holed", "refused"])
def outage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # black-holed: a relay that is down from the start (accepts, never answers)
    hole = SwitchableRelay(0, down=True) if request.param == "black-holed" else None
    port = hole.port if hole else _unused_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def forget() -> None:
        reset_clients()
        monitor_routes._default_deps.cache_clear()
        signals_routes._default_store.cache_clear()

    forget()
    yield str(request.param)
    forget()
    if hole:
        hole.close()


TRADE = json.dumps(BUTTERFLY)
WATCH = json.dumps({**IRON_CONDOR, "label": "outage"})
OUTCOME = json.dumps(
    {"won": True, "symbol": "SPX", "strategy": "Butterfly", "win_probability": 0.6}
)

# (method, path, body, acceptable statuses) — a 503 must carry Retry-After and JSON
ROUTES: list[tuple[str, str, str | None, set[int]]] = [
    ("GET", "/health", None, {200}),
    ("GET", "/health/detailed", None, {200}),
    ("POST", "/predict", TRADE, {200}),
    ("POST", "/predict/batch", json.dumps({"requests": [BUTTERFLY, IRON_CONDOR]}), {200}),
    ("POST", "/calculate_risk_reward", TRADE, {200}),
    ("GET", "/market/SPX", None, {503}),
    ("GET", "/confidence/history/SPX/Butterfly", None, {503}),
    ("GET", "/confidence/trends", None, {503}),
    ("GET", "/signals", None, {503}),
    ("GET", "/watchlist", None, {503}),
    ("POST", "/watchlist", WATCH, {503}),
    ("GET", "/watchlist/abc", None, {503}),
    ("DELETE", "/watchlist/abc", None, {503}),
    ("POST", "/outcomes", OUTCOME, {503}),
    ("GET", "/accuracy", None, {503}),
]
QUICK = {"/health/detailed", "/predict", "/signals", "/watchlist"}


def _call(handler: Any, method: str, path: str, body: str | None) -> tuple[int, dict, Any, float]:
    headers = {"content-type": "application/json", "x-api-key": "k"}
    t0 = time.perf_counter()
    resp = handler(apigw_event(method, path, body, headers), LambdaContext())
    elapsed = time.perf_counter() - t0
    text = resp.get("body") or ""
    payload = json.loads(text) if text else None
    return int(resp["statusCode"]), resp.get("headers") or {}, payload, elapsed


def test_every_route_answers_without_a_500_when_aws_is_unreachable(outage: str) -> None:
    handler = build_handler()
    routes = [r for r in ROUTES if budget() == "full" or r[1] in QUICK]
    observed: list[str] = []
    bad: list[str] = []
    slowest = 0.0
    for method, path, body, ok in routes:
        status, headers, payload, elapsed = _call(handler, method, path, body)
        slowest = max(slowest, elapsed)
        observed.append(f"{method} {path} -> {status} in {elapsed:.1f}s")
        if status not in ok or (status >= 500 and status != 503):
            bad.append(f"{method} {path}: {status} {payload}")
        keyed = {k.lower() for k in headers}
        if status == 503 and ("retry-after" not in keyed or not isinstance(payload, dict)):
            bad.append(f"{method} {path}: 503 without Retry-After/JSON")
        if elapsed > API_GATEWAY_TIMEOUT_S / 2:
            bad.append(f"{method} {path}: {elapsed:.1f}s, budget {API_GATEWAY_TIMEOUT_S / 2}s")
        if path == "/health/detailed":
            assert payload["status"] == "degraded", payload
            assert payload["market_table"]["reachable"] is False
            assert payload["history"]["reachable"] is False
            assert payload["gateway"]["reachable"] is False
            assert not any("stale" in p for p in payload["problems"]), payload["problems"]
            if elapsed > 2.0:
                bad.append(f"/health/detailed took {elapsed:.2f}s (promised 2 s)")
        if path == "/predict":
            assert payload["data_source"] in ("unavailable", "stale"), payload
    record(
        ResilienceRow(
            scenario=f"AWS {outage}: every API route ({len(routes)}), no 5xx but 503",
            injected=len(routes),
            survived=not bad,
            records_in=len(routes),
            records_out=len(routes) - len(bad),
            note=f"slowest {slowest:.1f}s",
        )
    )
    assert not bad, "\n".join(bad + observed)


class SwitchableRelay:
    """A TCP relay to the moto server that can black-hole: while down it accepts and never
    answers (bytes on existing connections are swallowed too); up again, it relays. Every
    thread it starts is joined in close()."""

    def __init__(self, upstream_port: int, down: bool = False) -> None:
        self.upstream_port = upstream_port
        self.down = down
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._socks.append(conn)
            if self.down:
                continue  # held, never answered
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._socks.append(up)
            self._start(self._pump, conn, up)
            self._start(self._pump, up, conn)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if self.down:
                continue  # black hole: swallowed
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        for s in self._socks:
            s.close()
        self.sock.close()


def test_black_holed_then_back_recovers_within_5_s(
    aws_resources: LocalResources, moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS black-holed mid-run, then back: no 5xx but 503 while it is away, store-backed
    routes answer 200 again within 5 s of its return (~50 s; in make test too)."""
    from urllib.parse import urlparse

    relay = SwitchableRelay(int(urlparse(moto_server.endpoint_url).port or 0))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{relay.port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_clients()
    monitor_routes._default_deps.cache_clear()
    signals_routes._default_store.cache_clear()
    try:
        handler = build_handler()
        probes = [("GET", "/signals"), ("GET", "/watchlist"), ("GET", "/confidence/trends")]
        before = [_call(handler, m, p, None)[0] for m, p in probes]
        relay.down = True
        during = [_call(handler, m, p, None)[:4:3] for m, p in probes]
        during.append(_call(handler, "POST", "/predict", TRADE)[:4:3])
        relay.down = False
        t0 = time.perf_counter()
        recovered_after = None
        while time.perf_counter() - t0 < 15:
            if all(_call(handler, m, p, None)[0] == 200 for m, p in probes):
                recovered_after = time.perf_counter() - t0
                break
        record(
            ResilienceRow(
                scenario="AWS black-holed then back: 503 while away, recovery",
                injected=len(during),
                survived=recovered_after is not None and recovered_after <= 5.0,
                records_in=len(probes),
                records_out=len(probes) if recovered_after is not None else 0,
                note=f"during {[s for s, _ in during]}; recovered after {recovered_after}",
            )
        )
        assert before == [200, 200, 200]
        assert [s for s, _ in during] == [503, 503, 503, 200], during
        assert all(e < API_GATEWAY_TIMEOUT_S / 2 for _, e in during), during
        assert recovered_after is not None and recovered_after <= 5.0, recovered_after
    finally:
        reset_clients()
        monitor_routes._default_deps.cache_clear()
        signals_routes._default_store.cache_clear()
        relay.close()
