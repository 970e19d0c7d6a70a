"""A ThreadingHTTPServer on a local port, served from its own thread: the local stand-ins
and the fault proxy are each one of these around their own request handler."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ServedHttp:
    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        name: str,
        host: str = "127.0.0.1",
        join_requests: bool = False,
    ) -> None:
        self.server = ThreadingHTTPServer((host, 0), handler)
        # join_requests: non-daemon request threads, so stop() (server_close) joins them
        # and none outlives it
        self.server.daemon_threads = not join_requests
        self.thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
