"""The dashboard on the local stack: static assets + generated config.json + an /api proxy.

Serves `magic8/dashboard/static` on 127.0.0.1 (port MAGIC8_DASHBOARD_PORT, else the API
port + 1; a free port if that one is taken) and proxies `/api/*` to the local API front:
the page and the API share an origin (no CORS needed) and the key never reaches the
browser. Publishes ctx.facts["dashboard_url"].

What a page on another site cannot do through it (DNS rebinding, cross-site requests):
- only loopback Host headers are served (127.0.0.1, localhost, [::1]); any other gets 403
  before anything else happens, so a rebound name reaches nothing;
- the server adds the API key only to the reads the dashboard itself makes (GET of
  READ_ROUTES); every other method or path is forwarded only with the caller's own
  x-api-key, and refused with 403 without one (a keyless POST /api/watchlist is 403).
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from magic8_dev.dashboard import STATIC_DIR, config_payload, render_config_js, replay_signals_range
from magic8_dev.local.context import LocalContext

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
# Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
MAX_BODY = 1 << 20
PROXY_TIMEOUT_S = 15.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# API paths the dashboard reads (GET/HEAD): the proxy adds the key to these only
READ_ROUTES = (
    "/signals",
    "/nq/bars",
    "/watchlist",
    "/confidence/trends",
    "/health/detailed",
    "/health",
    "/openapi.json",  # the offline /docs page reads the contract through the proxy
)
READ_PREFIXES = ("/confidence/history/",)


def host_allowed(host_header: str | None) -> bool:
    """A loopback Host header (with or without a port)."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8001
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in LOOPBACK_HOSTS


def dashboard_read(method: str, path: str) -> bool:
    """A request the dashboard page makes (the server's key is added to these only)."""
    if method not in ("GET", "HEAD"):
        return False
    return path in READ_ROUTES or path.startswith(READ_PREFIXES)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        static_dir: Path,
        api_url: str | None = None,
        api_key: str = "",
        ws_url: str | None = None,
        context: LocalContext | None = None,
    ) -> None:
        super().__init__(address, DashboardHandler)
        self.static_dir = static_dir.resolve()
        self._api_url = api_url
        self.api_key = api_key
        self._ws_url = ws_url
        self.context = context
        self.requests_served = 0
        self.proxy_errors = 0
        self.lock = threading.Lock()

    # Facts are read per request: a component started later may publish them.
    @property
    def api_url(self) -> str:
        if self._api_url:
            return self._api_url
        ctx = self.context
        if ctx is None:
            return ""
        return ctx.facts.get("api_url", f"http://{ctx.api_host}:{ctx.api_port}")

    @property
    def ws_url(self) -> str:
        if self._ws_url is not None:
            return self._ws_url
        return self.context.facts.get("ws_url", "") if self.context else ""

    @property
    def signals_range(self) -> tuple[str, str] | None:
        """Where the replayed session's signals are: its days, moved by the whole days the
        replay shifts them (to the last days before today)."""
        replay = self.context.facts.get("flow_replay", "") if self.context else ""
        paths = [Path(p.strip()) for p in replay.split(",") if p.strip()]
        found = replay_signals_range(paths) if paths else None
        if found is None or self.context is None:
            return found
        facts = self.context.facts
        seconds = facts.get("flow_shift_seconds")
        shift = (
            timedelta(seconds=int(seconds))
            if seconds
            else timedelta(days=int(facts.get("flow_shift_days", "0") or 0))
        )
        since, until = (datetime.fromisoformat(t) + shift for t in found)
        return since.isoformat(), min(until, datetime.now(UTC) + timedelta(days=1)).isoformat()

    def config(self) -> dict[str, Any]:
        return config_payload(
            api_base="/api",
            ws_url=self.ws_url,
            api_key_via_proxy=bool(self.api_key),
            signals_range=self.signals_range,
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that navigates away mid-response is not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"
    extra_headers: ClassVar[dict[str, str]] = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    def log_message(self, format: str, *args: object) -> None:  # quiet: one status line instead
        return

    def _count(self, proxy_error: bool = False) -> None:
        with self.server.lock:
            self.server.requests_served += 1
            if proxy_error:
                self.server.proxy_errors += 1

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-cache") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in self.extra_headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_refused(self) -> bool:
        if host_allowed(self.headers.get("Host")):
            return False
        self._count()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)  # the connection stays usable for the next request
        elif length != 0:
            self.close_connection = True
        self._send(403, b'{"detail":"host not allowed"}', "application/json")
        return True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._host_refused():
            return
        path = urlsplit(self.path).path
        if path == "/api" or path.startswith("/api/"):
            self._proxy()
            return
        self._count()
        if path == "/config.json":
            self._send(200, json.dumps(self.server.config()).encode(), CONTENT_TYPES[".json"])
            return
        if path == "/config.js":
            self._send(200, render_config_js(self.server.config()).encode(), CONTENT_TYPES[".js"])
            return
        if path in ("/docs", "/docs/"):
            # the API docs, offline: a self-contained page reading /api/openapi.json
            self._static("/docs.html")
            return
        self._static(path)

    def do_POST(self) -> None:
        self._proxy_or_405()

    def do_DELETE(self) -> None:
        self._proxy_or_405()

    def do_PUT(self) -> None:
        self._proxy_or_405()

    def _proxy_or_405(self) -> None:
        if self._host_refused():
            return
        if urlsplit(self.path).path.startswith("/api/"):
            self._proxy()
        else:
            self._count()
            self._send(405, b'{"detail":"method not allowed"}', "application/json")

    def _static(self, path: str) -> None:
        rel = path.lstrip("/") or "index.html"
        if rel.endswith("/"):
            rel += "index.html"
        root = self.server.static_dir
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        ctype = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
        self._send(200, target.read_bytes(), ctype)

    def _proxy(self) -> None:
        upstream = urlsplit(self.server.api_url)
        if not upstream.hostname:
            self._count(proxy_error=True)
            self._send(503, b'{"detail":"API not running"}', "application/json")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._count()
            self._send(413, b'{"detail":"request body too large"}', "application/json")
            return
        body = self.rfile.read(length) if length else None
        split = urlsplit(self.path)
        path = split.path[len("/api") :] or "/"
        target = upstream.path.rstrip("/") + path + (f"?{split.query}" if split.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if self.server.api_key and dashboard_read(self.command, path):
            # the server's key replaces whatever the browser sent
            headers = {k: v for k, v in headers.items() if k.lower() != "x-api-key"}
            headers["x-api-key"] = self.server.api_key
        elif not self.headers.get("x-api-key"):  # writes and other routes need the key
            self._count()
            self._send(403, b'{"detail":"x-api-key required"}', "application/json")
            return
        conn = http.client.HTTPConnection(
            upstream.hostname, upstream.port or 80, timeout=PROXY_TIMEOUT_S
        )
        try:
            conn.request(self.command, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            self._count(proxy_error=True)
            msg = f'{{"detail":"API unreachable: {type(exc).__name__}"}}'.encode()
            self._send(502, msg, "application/json")
            return
        finally:
            conn.close()
        self._count()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _bind(
    host: str, port: int, static_dir: Path, api_key: str, context: LocalContext | None
) -> DashboardServer:
    try:
        return DashboardServer((host, port), static_dir, api_key=api_key, context=context)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            raise
        return DashboardServer((host, 0), static_dir, api_key=api_key, context=context)


class DashboardComponent:
    """Component "dashboard": the trader dashboard at ctx.facts["dashboard_url"]."""

    name = "dashboard"

    def __init__(self, static_dir: Path = STATIC_DIR) -> None:
        self.static_dir = static_dir
        self.server: DashboardServer | None = None
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self, ctx: LocalContext) -> None:
        env_port = os.environ.get("MAGIC8_DASHBOARD_PORT")
        port = int(env_port) if env_port else ctx.api_port + 1
        self.server = _bind(ctx.api_host, port, self.static_dir, ctx.api_key, ctx)
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="magic8-dashboard",
            daemon=True,
        )
        self._thread.start()
        self._started = time.monotonic()
        ctx.facts["dashboard_url"] = self.server.url + "/"

    def status(self) -> str:
        if self.server is None:
            return "stopped"
        s = self.server
        ws = s.ws_url or "no WebSocket (polling)"
        return (
            f"{s.url}/  {s.requests_served} requests, {s.proxy_errors} proxy errors;"
            f" /api -> {s.api_url or '(no API)'}; live: {ws}"
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.server = None
        self._thread = None
