"""The local stand-in for API Gateway: HTTP request -> API Gateway REST (v1 proxy) event ->
functions.predict.handler.handler(event, context) in-process -> HTTP response.

Like API Gateway with an API key on every method, a request without the right
`x-api-key` header gets 403 {"message": "Forbidden"} before the function runs (GET /health
stays open for probes). Invocations run one at a time (a lock), as in one warm Lambda
container, on the connection's own thread (no hand-off: each thread has its own event loop
for Mangum). Bodies over 10 MB are refused with 413, API Gateway's payload limit.

A burst is queued, never refused: the listen backlog holds LISTEN_BACKLOG pending
connections (Python's default of 5 reset 13-35 of 50 concurrent clients), every accepted
connection gets its own thread, and waits for the function like API Gateway's queued
requests; a request that waits longer than API Gateway's 29 s integration timeout is
answered 504.
With `limits` (magic8.api_limits.METHOD_LIMITS; on in `make run`, MAGIC8_THROTTLE=off
turns it off; off by default for tests and benchmarks that drive load), each API key gets
a token bucket per limited method, like the usage plan's per-method throttles: over it,
429 {"message": "Too Many Requests"} with Retry-After (seconds until the next token).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from magic8.api_limits import METHOD_LIMITS, MethodLimit

if TYPE_CHECKING:  # no moto import for users of apigw_event / LambdaContext
    from magic8_dev.local.context import LocalContext

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
API_GATEWAY_TIMEOUT_S = 29.0
LISTEN_BACKLOG = 512
OPEN_PATHS = frozenset({"/health"})
STAGE = "local"

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LambdaContext:
    """The attributes Powertools and Mangum read from Lambda's context object."""

    function_name: str = "magic8-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:magic8-predict"
    log_group_name: str = "/aws/lambda/magic8-predict"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


_request_ids = itertools.count(1)


def apigw_event(
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API (v1) proxy-integration event, as Lambda receives it."""
    headers = dict(headers or {})
    raw = body.encode() if isinstance(body, str) else body
    is_b64 = False
    text: str | None = None
    if raw:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(raw).decode("ascii")
            is_b64 = True
    query = query or {}
    now = datetime.now(UTC)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method.upper(),
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": f"local-{next(_request_ids)}",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "protocol": "HTTP/1.1",
            "accountId": "123456789012",
            "apiId": "local",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", headers.get("User-Agent")),
                "apiKey": headers.get("x-api-key"),
            },
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _default_handler() -> LambdaHandler:
    from functions.predict.handler import handler

    return handler


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its answer (a timed-out probe, Ctrl-C on curl) is
        not an error of the API: no traceback on the console (socketserver prints one)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)


class FunctionTimeout(Exception):
    """The invocation waited past API Gateway's integration timeout."""


class RateLimiter:
    """Token buckets per (api key, method, path): `per_minute` tokens refilled evenly,
    bursts up to the same number, as API Gateway's usage-plan throttles."""

    def __init__(
        self, limits: tuple[MethodLimit, ...], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = {(lim.method, lim.path): lim for lim in limits}
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.throttled = 0

    def retry_after(self, key: str, method: str, path: str) -> int | None:
        """None if the request may go now (a token is taken), else seconds to wait."""
        lim = self.limits.get((method, path.rstrip("/") or "/"))
        if lim is None:
            return None
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get((key, lim.method, lim.path), (float(lim.burst), now))
            tokens = min(float(lim.burst), tokens + (now - last) * lim.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key, lim.method, lim.path] = (tokens - 1.0, now)
                return None
            self._buckets[key, lim.method, lim.path] = (tokens, now)
            self.throttled += 1
            return max(1, math.ceil((1.0 - tokens) / lim.rate_per_s))


class ApiFront:
    """The HTTP server itself (usable without a LocalContext, e.g. by the benchmark)."""

    def __init__(
        self,
        host: str,
        port: int,
        api_key: str,
        handler: LambdaHandler | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self._handler = handler
        self.limiter = limiter
        self._lock = threading.Lock()
        self._after: Any = None  # the handler's AfterResponse, False without one
        self._after_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-response")
        self._after_last: Future[int] | None = None
        self._handling = 0  # requests between arrival and their work's hand-over
        self._idle = threading.Condition()
        self._tls = threading.local()
        self.requests = 0
        self.forbidden = 0
        self.errors = 0
        self.last_status: int | None = None
        self._server = _Server((host, port), self._request_handler_class())
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def handler(self) -> LambdaHandler:
        if self._handler is None:
            self._handler = _default_handler()
        if self._after is None:
            # a handler with after-response work (magic8.after_response): this front sends
            # the response itself, so it runs that work after it, as Lambda's extension does
            after = getattr(self._handler, "after_response", None)
            self._after = after.hosted() if after is not None else False
        return self._handler

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the function in this thread, one invocation at a time (one warm container).
        The invocation's after-response tasks are kept for run_after_response()."""
        if getattr(self._tls, "loop", None) is None:
            # Mangum drives the app with asyncio.get_event_loop(): this thread needs one
            self._tls.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._tls.loop)
        handler = self.handler
        if not self._lock.acquire(timeout=API_GATEWAY_TIMEOUT_S):
            raise FunctionTimeout
        try:
            return handler(event, LambdaContext())
        finally:
            if self._after:
                self._tls.after = self._after.take()
            self._lock.release()

    def run_after_response(self) -> None:
        """This thread's last invocation's deferred work, once its response is written.
        On a worker thread of its own, outside the invocation lock: in Lambda the
        environment finishing it is not given the next request, another warm one is; here
        the next request (even on the same keep-alive connection) may run meanwhile, in
        the same process. One invocation's work at a time, in order."""
        tasks = getattr(self._tls, "after", None)
        if not tasks or not self._after:
            return
        self._tls.after = None
        self._after_last = self._after_pool.submit(self._after.run, tasks)

    def wait_after_response(self, timeout_s: float = 30.0) -> None:
        """Until every request answered so far has handed its after-response work over
        and that work has run (FIFO, one worker)."""
        with self._idle:
            self._idle.wait_for(lambda: self._handling == 0, timeout=timeout_s)
        last = self._after_last
        if last is not None:
            last.result(timeout=timeout_s)

    def _begin(self) -> None:
        with self._idle:
            self._handling += 1

    def _end(self) -> None:
        with self._idle:
            self._handling -= 1
            self._idle.notify_all()

    def release_thread(self) -> None:
        """Close this thread's event loop (a connection's thread is about to end)."""
        loop = getattr(self._tls, "loop", None)
        if loop is not None:
            asyncio.set_event_loop(None)
            loop.close()
            self._tls.loop = None

    def start(self) -> ApiFront:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="api-front", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        # the answers' leftover work (history hand-overs) finishes before the stack stops,
        # and the handler runs its own again (a test may call it directly next)
        self._after_pool.shutdown(wait=True)
        if self._after:
            self._after.hosted(False)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "magic8-api-front"
            # headers and body go out in two writes: without TCP_NODELAY, Nagle + the
            # client's delayed ACK add ~40 ms to every keep-alive response
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    front.release_thread()

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                seen = set()
                for name, value in headers:
                    low = name.lower()
                    if low in ("content-length", "connection", "transfer-encoding"):
                        continue
                    seen.add(low)
                    self.send_header(name, value)
                if "content-type" not in seen:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                self._send(status, [], json.dumps(payload).encode())

            def _handle(self) -> None:
                front._begin()
                try:
                    self._handle_one()
                finally:
                    front._end()

            def _handle_one(self) -> None:
                front.requests += 1
                parts = urlsplit(self.path)
                path = parts.path or "/"
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:
                    self.close_connection = True
                    self._json(400, {"message": "Bad Request"})
                    return
                if length > API_GATEWAY_MAX_BODY:
                    self.close_connection = True
                    self._json(413, {"message": "Request too large"})
                    return
                body = self.rfile.read(length) if length else b""
                if path not in OPEN_PATHS and self.headers.get("x-api-key") != front.api_key:
                    front.forbidden += 1
                    front.last_status = 403
                    self._json(403, {"message": "Forbidden"})
                    return
                if front.limiter is not None:
                    wait = front.limiter.retry_after(
                        self.headers.get("x-api-key") or "", self.command, path
                    )
                    if wait is not None:
                        front.last_status = 429
                        self._send(
                            429,
                            [("Retry-After", str(wait))],
                            json.dumps({"message": "Too Many Requests"}).encode(),
                        )
                        return
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    headers[name.lower()] = value
                event = apigw_event(
                    self.command,
                    path,
                    body or None,
                    headers,
                    parse_qs(parts.query, keep_blank_values=True),
                    source_ip=self.client_address[0],
                )
                try:
                    response = front.invoke(event)
                except FunctionTimeout:
                    front.errors += 1
                    front.last_status = 504
                    self._json(504, {"message": "Endpoint request timed out"})
                    return
                except Exception as exc:  # the function crashed: API Gateway says 502
                    front.errors += 1
                    front.last_status = 502
                    self._json(502, {"message": "Internal server error", "error": str(exc)})
                    front.run_after_response()
                    return
                status = int(response.get("statusCode", 502))
                front.last_status = status
                if status >= 500:
                    front.errors += 1
                out_headers: list[tuple[str, str]] = []
                multi = response.get("multiValueHeaders") or {}
                for name, values in multi.items():
                    out_headers.extend((name, str(v)) for v in values)
                for name, value in (response.get("headers") or {}).items():
                    if name not in multi:
                        out_headers.append((name, str(value)))
                self._send(status, out_headers, response_body(response))
                front.run_after_response()

            do_GET = _handle
            do_POST = _handle
            do_PUT = _handle
            do_DELETE = _handle
            do_PATCH = _handle
            do_HEAD = _handle
            do_OPTIONS = _handle

        return Handler


class ApiFrontComponent:
    """Component for `magic8 run`: serves the predict API at ctx.api_host:ctx.api_port."""

    name = "api"

    def __init__(self, handler: LambdaHandler | None = None) -> None:
        self._handler_override = handler
        self.front: ApiFront | None = None
        self._started = 0.0

    def start(self, ctx: LocalContext) -> None:
        throttle = os.environ.get("MAGIC8_THROTTLE", "off").lower() not in ("off", "0", "")
        limiter = RateLimiter(METHOD_LIMITS) if throttle else None
        self.front = ApiFront(
            ctx.api_host, ctx.api_port, ctx.api_key, self._handler_override, limiter
        )
        self.front.start()
        self._started = time.monotonic()
        ctx.facts["api_url"] = self.front.url
        # warm the container: build the app once so the first real request is not a cold
        # start (on a thread of its own: the caller's thread keeps no event loop of ours)
        front = self.front

        def warm() -> None:
            try:
                front.invoke(apigw_event("GET", "/health"))
                front.run_after_response()
            finally:
                front.release_thread()

        t = threading.Thread(target=warm, name="api-front-warm")
        t.start()
        t.join()

    def status(self) -> str:
        f = self.front
        if f is None:
            return "not started"
        return (
            f"{f.url}  requests={f.requests} forbidden={f.forbidden} "
            f"5xx={f.errors} last={f.last_status}"
        )

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
            self.front = None
