"""Local monitor: the EventBridge timer for the monitor handler + the WebSocket API.

moto fires no schedules and serves no WebSocket APIs, so this component plays both:

- every 5 minutes (30 s in demo mode) it calls functions.monitor.handler.handler with a
  real EventBridge scheduled-event shape, then sends functions.predict.handler.handler its
  cache-warm event (magic8.domain.warming.WARM_EVENT, an EventBridge rule in AWS);
- it serves ws://127.0.0.1:<port>/ like an API Gateway WebSocket API: each client
  connection, message and close becomes a $connect / subscribe / unsubscribe / ping /
  $default / $disconnect event for functions.websocket.handler.handler (a $connect
  answered non-200, e.g. 429 at the connection cap, fails the upgrade with that status and
  body, as API Gateway does; a client silent for the idle timeout, 10 minutes as in API
  Gateway, is closed with 1001 "Going away"); and it serves the Management API
  (POST/GET/DELETE /@connections/{id}) on a second loopback port, so the handlers push
  through the same boto3 adapter they use in AWS (MAGIC8_WS_ENDPOINT points here).

In demo mode an empty watchlist gets a few SPX/NDX trades so `make run` prints
confidence lines from the first sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from magic8.monitor.websocket_routes import IDLE_TIMEOUT_S, ROUTE_KEYS
from magic8_dev.local.context import LocalContext

NAME = "monitor"
INTERVAL_S = 300.0
DEMO_INTERVAL_S = 30.0
FIRST_FIRE_S = 3.0
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/magic8-monitor-sweep"
WS_ENDPOINT_ENV = "MAGIC8_WS_ENDPOINT"
STAGE = "local"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def scheduled_event(now: datetime | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """An EventBridge scheduled event exactly as Lambda receives it."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [RULE_ARN],
        "detail": {},
    }


def _epoch_ms() -> int:
    return int(time.time() * 1000)


class LocalWebSocketApi:
    """API Gateway's WebSocket API on loopback: clients on one port, @connections on another."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", idle_timeout_s: float = IDLE_TIMEOUT_S
    ) -> None:
        self.handler = handler
        self.host = host
        self.idle_timeout_s = idle_timeout_s
        self._connecting: dict[ServerConnection, str] = {}
        self.port = 0
        self.management_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._clients: dict[str, ServerConnection] = {}
        self._ready = threading.Event()
        self.pushed = 0
        self.events = 0

    # --- URLs ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # --- API Gateway events -------------------------------------------------------------

    def _event(
        self, conn_id: str, route_key: str, event_type: str, body: str | None = None
    ) -> dict[str, Any]:
        now = _epoch_ms()
        ctx = {
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": STAGE,
            "connectedAt": now,
            "requestTimeEpoch": now,
            "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestId": uuid.uuid4().hex,
            "extendedRequestId": uuid.uuid4().hex,
            "identity": {"sourceIp": self.host},
            "domainName": f"{self.host}:{self.port}",
            "connectionId": conn_id,
            "apiId": "local",
        }
        event: dict[str, Any] = {"requestContext": ctx, "isBase64Encoded": False}
        if body is not None:
            event["body"] = body
        if event_type == "CONNECT":
            event["headers"] = {"Host": f"{self.host}:{self.port}"}
        return event

    async def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events += 1
        loop = asyncio.get_running_loop()
        # Handlers do blocking I/O (DynamoDB, and posting back through @connections).
        return await loop.run_in_executor(None, self.handler, event, None)

    @staticmethod
    def _route_key(body: str) -> str:
        """Route selection expression $request.body.action over the deployed routes
        (ROUTE_KEYS); anything else goes to $default."""
        try:
            action = json.loads(body).get("action")
        except (json.JSONDecodeError, AttributeError):
            action = None
        return action if action in ROUTE_KEYS else "$default"

    async def _connect(self, ws: ServerConnection, request: Request) -> Response | None:
        """$connect before the upgrade: a non-200 answer fails the handshake with its
        status and body (as API Gateway does)."""
        conn_id = secrets.token_urlsafe(12)
        result = await self._invoke(self._event(conn_id, "$connect", "CONNECT"))
        status = int(result.get("statusCode", 500))
        if status != 200:
            try:
                code = HTTPStatus(status)
            except ValueError:
                code = HTTPStatus.INTERNAL_SERVER_ERROR
            return ws.respond(code, str(result.get("body") or ""))
        self._connecting[ws] = conn_id
        return None

    async def _client(self, ws: ServerConnection) -> None:
        conn_id = self._connecting.pop(ws, None)
        if conn_id is None:  # pragma: no cover - every upgrade went through _connect
            await ws.close(code=1008, reason="connect refused")
            return
        self._clients[conn_id] = ws
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), self.idle_timeout_s)
                except TimeoutError:
                    await ws.close(code=1001, reason="Going away")  # idle, as API Gateway
                    break
                text = message if isinstance(message, str) else message.decode()
                route_key = self._route_key(text)
                await self._invoke(self._event(conn_id, route_key, "MESSAGE", text))
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(conn_id, None)
            with contextlib.suppress(Exception):
                await self._invoke(self._event(conn_id, "$disconnect", "DISCONNECT"))

    # --- Management API -----------------------------------------------------------------

    def post(self, conn_id: str, data: bytes) -> bool:
        """Send one frame to a connected client (thread-safe); False if gone."""
        ws = self._clients.get(conn_id)
        if ws is None or self._loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(ws.send(data.decode()), self._loop)
        try:
            future.result(timeout=5)
        except Exception:
            return False
        self.pushed += 1
        return True

    def disconnect(self, conn_id: str) -> bool:
        ws = self._clients.get(conn_id)
        if ws is None or self._loop is None:
            return False
        asyncio.run_coroutine_threadsafe(ws.close(), self._loop).result(timeout=5)
        return True

    def _management_handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class ManagementApi(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _conn_id(self) -> str | None:
                path = unquote(self.path.split("?", 1)[0])
                prefix = "/@connections/"
                return path[len(prefix) :] if path.startswith(prefix) else None

            def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 410:
                    self.send_header("x-amzn-ErrorType", "GoneException")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                conn_id = self._conn_id()
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if conn_id is None:
                    self._reply(404, {"message": "Not Found"})
                elif api.post(conn_id, data):
                    self._reply(200)
                else:
                    self._reply(410, {"message": f"connection {conn_id} is gone"})

            def do_GET(self) -> None:
                conn_id = self._conn_id()
                if conn_id and conn_id in api._clients:
                    self._reply(200, {"ConnectedAt": datetime.now(UTC).isoformat()})
                else:
                    self._reply(410, {"message": "gone"})

            def do_DELETE(self) -> None:
                conn_id = self._conn_id()
                if conn_id and api.disconnect(conn_id):
                    self._reply(204)
                else:
                    self._reply(410, {"message": "gone"})

        return ManagementApi

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> LocalWebSocketApi:
        self._http = ThreadingHTTPServer((self.host, 0), self._management_handler())
        self._http.daemon_threads = True
        self.management_port = int(self._http.server_address[1])
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="ws-management", daemon=True
        )
        self._http_thread.start()
        self._thread = threading.Thread(target=self._run_loop, name="ws-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("local WebSocket server did not start")
        return self

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._server = await serve(self._client, self.host, 0, process_request=self._connect)
            sock = next(iter(self._server.sockets))
            self.port = int(sock.getsockname()[1])
            self._ready.set()
            await self._server.wait_closed()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                await server.wait_closed()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        if self._thread:
            self._thread.join(timeout=5)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


def demo_entries(prices: dict[str, float]) -> list[Any]:
    """A few watched trades around the current SPX / NDX prices, one per strategy."""
    from magic8.monitor.watchlist import WatchlistEntry

    out = []
    for symbol, step in (("SPX", 5.0), ("NDX", 25.0)):
        last = prices.get(symbol)
        if not last:
            continue
        c = round(last / step) * step
        w = 10 * step
        trades: list[tuple[str, list[float], float, str]] = [
            ("Butterfly", [c - w, c, c + w], round(w * 0.25, 2), "BUY"),
            ("Iron Condor", [c - 2 * w, c - w, c + w, c + 2 * w], round(w * 0.3, 2), "SELL"),
            ("Vertical", [c - w, c], round(w * 0.4, 2), "SELL"),
        ]
        if symbol == "SPX":
            trades.append(("Sonar", [c - 3 * w, c - 2 * w, c + 2 * w, c + 3 * w], 2.1, "SELL"))
        for strategy, strikes, premium, action in trades:
            out.append(
                WatchlistEntry.model_validate(
                    {
                        "symbol": symbol,
                        "strategy": strategy,
                        "strikes": strikes,
                        "premium": premium,
                        "predicted_price": c,
                        "action": action,
                        "label": "demo",
                    }
                )
            )
    return out


def _market_prices(symbols: list[str]) -> dict[str, float]:
    """Current prices from the market table (the seeded / gateway snapshots)."""
    try:
        from magic8.adapters.market_dynamo import DynamoMarketRepository
        from magic8.settings import AwsSettings

        repo = DynamoMarketRepository(AwsSettings().market_table)
        return {s: snap.last for s, snap in repo.get_snapshots(symbols).items()}
    except Exception:
        return {}


FALLBACK_PRICES = {"SPX": 5850.0, "NDX": 20500.0}


class MonitorTimerComponent:
    name = NAME

    def __init__(
        self,
        interval_s: float | None = None,
        print_updates: bool = True,
        first_fire_s: float = FIRST_FIRE_S,
        warm_cache: bool = True,
    ) -> None:
        self._interval = interval_s
        # with each timer sweep, send the predict function its warm event (the local stack
        # serves the in-process predict handler)
        self.warm_cache = warm_cache
        self.last_warm: dict[str, Any] | None = None
        self.first_fire_s = first_fire_s
        self.print_updates = print_updates
        self.ws: LocalWebSocketApi | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sweeps = 0
        self.last: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.seeded = 0
        self.interval_s = INTERVAL_S

    # --- handlers (imported on use; caches cleared so they read this stack's env) ----

    @staticmethod
    def _reset_handlers() -> None:
        import functions.monitor.handler as monitor
        import functions.websocket.handler as websocket

        monitor.reset()
        websocket.reset()

    @staticmethod
    def _ws_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        from functions.websocket.handler import handler

        return handler(event, context)

    def start(self, ctx: LocalContext) -> None:
        self.interval_s = self._interval or (DEMO_INTERVAL_S if ctx.demo else INTERVAL_S)
        self.ws = LocalWebSocketApi(self._ws_handler, host="127.0.0.1").start()
        os.environ[WS_ENDPOINT_ENV] = self.ws.management_url
        self._reset_handlers()
        ctx.facts["ws_url"] = self.ws.url
        ctx.facts["ws_management_url"] = self.ws.management_url
        if ctx.demo:
            try:
                self.seeded = self.seed_demo_watchlist()
            except Exception as exc:
                self.last_error = f"demo watchlist: {exc}"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="monitor-timer", daemon=True)
        self._thread.start()

    def seed_demo_watchlist(self) -> int:
        from magic8.adapters.watchlist_dynamo import DynamoWatchlistStore
        from magic8.settings import AwsSettings

        store = DynamoWatchlistStore(AwsSettings().state_table)
        if store.list_active(datetime.now(UTC)):
            return 0
        prices = {**FALLBACK_PRICES, **_market_prices(["SPX", "NDX"])}
        entries = demo_entries(prices)
        for e in entries:
            store.add(e)
        return len(entries)

    def fire_now(self, now: datetime | None = None) -> dict[str, Any]:
        """One sweep right away (what the timer does), returning the handler's summary."""
        from functions.monitor.handler import handler

        with self._lock:
            try:
                summary = handler(scheduled_event(now), None)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.sweeps += 1
            self.last = summary
            self.last_error = "; ".join(summary.get("errors") or []) or None
        if self.print_updates:
            self._print(summary)
        return summary

    def warm_predict(self) -> dict[str, Any] | None:
        """The predict function's warm event (in AWS an EventBridge rule sends it every 5
        minutes): the in-process predict handler, the one the local API front serves,
        re-predicts its configured and most requested trades (magic8.domain.warming)."""
        if not self.warm_cache:
            return None
        from functions.predict.handler import handler
        from magic8.domain.warming import WARM_EVENT
        from magic8_dev.local.api_front import LambdaContext

        with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines
            result: dict[str, Any] = handler(dict(WARM_EVENT), LambdaContext())
        self.last_warm = result
        return result

    def _run(self) -> None:
        delay = min(self.first_fire_s, self.interval_s)
        while not self._stop.wait(delay):
            with contextlib.suppress(Exception):
                self.fire_now()
            with contextlib.suppress(Exception):
                self.warm_predict()
            delay = self.interval_s

    @staticmethod
    def _print(summary: dict[str, Any]) -> None:
        stamp = time.strftime("%H:%M:%S")
        updates = summary.get("updates") or []
        print(
            f"[{stamp}] monitor sweep: {summary.get('entries', 0)} trades, "
            f"{summary.get('crossings', 0)} crossings, {len(summary.get('alerts', []))} alerts, "
            f"{summary.get('duration_ms', 0):.0f} ms",
            flush=True,
        )
        for u in updates[:10]:
            mark = f"  crossed {u['crossed']}" if u.get("crossed") else ""
            mark += "  moved" if u.get("moved") else ""
            print(
                f"    {u['symbol']:<4} {u['strategy']:<11} {u['strikes']:<27} "
                f"win {u['win_probability']:.3f} (thr {u['threshold']:.2f}) "
                f"{u['prediction']}{mark}",
                flush=True,
            )

    def status(self) -> str:
        clients = self.ws.client_count if self.ws else 0
        every = f"every {self.interval_s:g}s"
        if self.last is None:
            head = f"{every}, no sweep yet"
        else:
            last = self.last
            head = (
                f"{every}, {self.sweeps} sweeps; last {last.get('entries', 0)} trades, "
                f"{last.get('crossings', 0)} crossings, {last.get('duration_ms', 0):.0f} ms"
            )
        ws = f"; ws {self.ws.url if self.ws else '-'} ({clients} clients)"
        err = f"; error: {self.last_error}" if self.last_error else ""
        return head + ws + err

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self.ws:
            self.ws.stop()
        os.environ.pop(WS_ENDPOINT_ENV, None)
