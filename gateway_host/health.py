"""HTTP /health for the ECS container health check (asyncio streams, no framework).

GET /health -> 200 {"healthy": true, ...} when every enabled session is healthy, else 503.
Anything else -> 404. One request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("magic8.gateway.health")

Status = Callable[[], tuple[bool, dict[str, Any]]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    def __init__(self, status: Status, host: str = "0.0.0.0", port: int = 8080) -> None:
        self.status = status
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health server on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while True:  # drain headers
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b"\n", b""):
                    break
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            path = path.split("?", 1)[0]
            body: dict[str, Any]
            if path != "/health":
                code, body = 404, {"error": "not found", "path": path[:100]}
            elif method not in ("GET", "HEAD"):
                code, body = 405, {"error": "method not allowed"}
            else:
                healthy, facts = self.status()
                code, body = (200 if healthy else 503), {"healthy": healthy, **facts}
            payload = json.dumps(body, default=str).encode()
            head = (
                f"HTTP/1.1 {code} {_REASONS[code]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head + (b"" if method == "HEAD" else payload))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("health request failed")
        finally:
            writer.close()
