"""The local dashboard server: static assets, generated config.js, /api proxy adding the key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from magic8_dev.dashboard import STATIC_DIR, config_payload, render_config_js
from magic8_dev.local.dashboard_component import DashboardComponent, DashboardServer


class _Upstream(BaseHTTPRequestHandler):
    """Echoes what reached the API: method, path, query, x-api-key, body."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        data = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "key": self.headers.get("x-api-key"),
                "body": body,
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _echo
    do_POST = _echo
    do_DELETE = _echo


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return t


@pytest.fixture()
def upstream() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    _serve(srv)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def dashboard(upstream: str) -> Iterator[DashboardServer]:
    srv = DashboardServer(
        ("127.0.0.1", 0), STATIC_DIR, api_url=upstream, api_key="secret", ws_url="ws://x/ws"
    )
    _serve(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_serves_the_page_and_its_assets(dashboard: DashboardServer) -> None:
    with httpx.Client(base_url=dashboard.url) as c:
        index = c.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        for asset in ("app.js", "nq.js", "style.css"):
            assert f'"{asset}"' in index.text
        assert c.get("/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/style.css").status_code == 200
        assert "https://" not in index.text  # no CDN: the machine may be offline


def test_config_points_at_the_proxy_and_never_carries_the_key(
    dashboard: DashboardServer,
) -> None:
    cfg = httpx.get(dashboard.url + "/config.json").json()
    assert cfg["apiBase"] == "/api" and cfg["wsUrl"] == "ws://x/ws" and cfg["apiKey"] == ""
    text = httpx.get(dashboard.url + "/config.js").text
    assert text.startswith("window.MAGIC8_CONFIG = ")
    cfg = json.loads(text.removeprefix("window.MAGIC8_CONFIG = ").rstrip(";\n"))
    assert cfg["apiBase"] == "/api"
    assert cfg["wsUrl"] == "ws://x/ws"
    assert cfg["apiKey"] == ""
    assert "secret" not in text


def test_proxy_adds_the_api_key_and_forwards_method_path_query_body(
    dashboard: DashboardServer,
) -> None:
    with httpx.Client(base_url=dashboard.url) as c:
        got = c.get("/api/signals?since=2025-09-15T00:00:00Z&underlying=NQ").json()
        assert got == {
            "method": "GET",
            "path": "/signals?since=2025-09-15T00:00:00Z&underlying=NQ",
            "key": "secret",
            "body": "",
        }
        # a key sent by the browser is replaced, never forwarded
        spoof = c.get("/api/health/detailed", headers={"x-api-key": "evil"}).json()
        assert spoof["key"] == "secret"
        # writes carry the caller's own key, never the server's
        posted = c.post("/api/watchlist", json={"symbol": "SPX"}, headers={"x-api-key": "mine"})
        assert posted.status_code == 201
        assert json.loads(posted.json()["body"]) == {"symbol": "SPX"}
        assert posted.json()["key"] == "mine"
        deleted = c.delete("/api/watchlist/abc", headers={"x-api-key": "mine"}).json()
        assert deleted["method"] == "DELETE" and deleted["key"] == "mine"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/watchlist"),
        ("DELETE", "/api/watchlist/abc"),
        ("POST", "/api/predict/batch"),
        ("GET", "/api/predict"),
        ("GET", "/api/market/SPX"),
        ("POST", "/api/outcomes"),
    ],
)
def test_without_a_key_only_the_dashboards_reads_get_through(
    dashboard: DashboardServer, method: str, path: str
) -> None:
    with httpx.Client(base_url=dashboard.url) as c:
        r = c.request(method, path, json={"symbol": "SPX"} if method == "POST" else None)
        assert r.status_code == 403
        for read in (
            "/api/signals",
            "/api/nq/bars",
            "/api/watchlist",
            "/api/confidence/history/SPX/Butterfly",
        ):
            assert c.get(read).json()["key"] == "secret"


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example:8001", "10.0.0.5", ""])
def test_only_loopback_host_headers_are_served(dashboard: DashboardServer, host: str) -> None:
    with httpx.Client(base_url=dashboard.url) as c:
        for path in ("/", "/config.json", "/api/signals"):
            assert c.get(path, headers={"host": host}).status_code == 403
        for ok in ("localhost", "127.0.0.1:8001", "[::1]:8001"):
            assert c.get("/api/signals", headers={"host": ok}).status_code == 200


def test_unknown_paths_and_traversal_are_404(dashboard: DashboardServer) -> None:
    with httpx.Client(base_url=dashboard.url) as c:
        assert c.get("/nope.js").status_code == 404
        assert c.get("/../__init__.py").status_code == 404
        assert c.get("/%2e%2e/__init__.py").status_code == 404
        assert c.post("/index.html").status_code == 405


def test_proxy_reports_an_unreachable_api_as_502(tmp_path: Path) -> None:
    srv = DashboardServer(("127.0.0.1", 0), STATIC_DIR, api_url="http://127.0.0.1:9", api_key="k")
    _serve(srv)
    try:
        r = httpx.get(srv.url + "/api/health")
        assert r.status_code == 502
        assert "API unreachable" in r.json()["detail"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_component_publishes_its_url_and_reads_facts_late(
    upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magic8_dev.local.context import LocalContext

    monkeypatch.setenv("MAGIC8_DASHBOARD_PORT", "0")
    ctx: Any = LocalContext(aws=None, resources=None, api_key="k")  # type: ignore[arg-type]
    comp = DashboardComponent()
    comp.start(ctx)
    try:
        url = ctx.facts["dashboard_url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        # api_url / ws_url published after the dashboard started are picked up per request
        ctx.facts["api_url"] = upstream
        ctx.facts["ws_url"] = "ws://127.0.0.1:1/ws"
        assert httpx.get(url + "api/signals").json()["key"] == "k"
        assert httpx.get(url + "config.json").json()["wsUrl"] == "ws://127.0.0.1:1/ws"
        assert "requests" in comp.status()
    finally:
        comp.stop()
    assert comp.status() == "stopped"


def test_config_helpers_for_the_aws_deployment() -> None:
    cfg = config_payload(api_base="https://api.example.com/prod/", ws_url="wss://ws.example.com")
    assert cfg["apiBase"] == "https://api.example.com/prod"
    js = render_config_js({**cfg, "underlying": "</script><script>alert(1)"})
    assert "</script>" not in js
    assert js.startswith("window.MAGIC8_CONFIG = {")


def test_replayed_session_dates_tell_the_page_where_signals_are(tmp_path: Path) -> None:
    from magic8_dev.dashboard import replay_signals_range

    session = tmp_path / "session"
    for day in ("day-2025-09-15", "day-2025-09-24", "not-a-day", "day-garbage"):
        (session / day).mkdir(parents=True)
    assert replay_signals_range([session]) == (
        "2025-09-15T00:00:00+00:00",
        "2025-09-26T00:00:00+00:00",
    )
    assert replay_signals_range([tmp_path / "missing"]) is None
    srv = DashboardServer(("127.0.0.1", 0), STATIC_DIR, api_url="http://127.0.0.1:9")
    try:
        assert "signalsFrom" not in srv.config()
        from magic8_dev.local.context import LocalContext

        ctx: Any = LocalContext(aws=None, resources=None)  # type: ignore[arg-type]
        ctx.facts["flow_replay"] = str(session)
        srv.context = ctx
        cfg = srv.config()
        assert cfg["signalsFrom"] == "2025-09-15T00:00:00+00:00"
        assert cfg["signalsTo"] == "2025-09-26T00:00:00+00:00"
    finally:
        srv.server_close()


def test_api_docs_work_offline_through_the_proxy() -> None:
    """/docs is a self-contained page (no CDN) reading /api/openapi.json, which the proxy
    fetches from the real app with the key added."""
    from functions.predict.deps import build_handler
    from functions.predict.settings import ApiSettings
    from magic8_dev.local.api_front import ApiFront

    front = ApiFront("127.0.0.1", 0, "k", build_handler(ApiSettings())).start()
    srv = DashboardServer(("127.0.0.1", 0), STATIC_DIR, api_url=front.url, api_key="k")
    _serve(srv)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            page = c.get("/docs")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "https://" not in page.text and "/api/openapi.json" in page.text
            spec = c.get("/api/openapi.json")
            assert spec.status_code == 200
            paths = spec.json()["paths"]
            assert {"/predict/batch", "/recommend", "/outcomes"} <= set(paths)
    finally:
        srv.shutdown()
        srv.server_close()
        front.stop()
