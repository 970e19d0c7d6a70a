"""An embedded moto server on 127.0.0.1: a real HTTP AWS endpoint boto3 talks to."""

from __future__ import annotations

import logging
import os
import socket

import requests
from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedAws:
    """Starts moto on loopback (never 0.0.0.0) and points boto3 at it via env."""

    def __init__(self, port: int | None = None, region: str = "us-east-1") -> None:
        self.port = port or free_port()
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedAws:
        # werkzeug logs every request at INFO; that drowns test output and `make run`.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self.export_env()
        return self

    def export_env(self) -> None:
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        os.environ.setdefault("AWS_REGION", self.region)

    def reset(self) -> None:
        """Wipe all state (moto's reset API)."""
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=5)

    def stop(self) -> None:
        self._server.stop()
