"""The local AWS endpoint: moto on 127.0.0.1 in a process of its own, a real HTTP AWS
endpoint boto3 talks to (magic8_dev.local.moto_process: per-service serialisation, TTL
expiry, bounded Kinesis shards). Its own process: the emulator's CPU never holds the
API's GIL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

START_TIMEOUT_S = 60.0


class PortTaken(RuntimeError):
    """The port asked for is in use."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedAws:
    """Starts moto on loopback (never 0.0.0.0) in a child process and points boto3 at it
    via env. The child exits with its parent (it watches a pipe) or on stop()."""

    def __init__(
        self, port: int | None = None, region: str = "us-east-1", log_path: Path | None = None
    ) -> None:
        if port and not port_is_free(port):
            raise PortTaken(f"AWS emulator port {port} is taken (127.0.0.1:{port})")
        self.port = port or free_port()
        self.region = region
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> EmbeddedAws:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            err = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        else:
            err = subprocess.DEVNULL  # type: ignore[assignment]
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # layers/shared: magic8_dev importable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "magic8_dev.local.moto_process", "--port", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            # a session of its own: a terminal's Ctrl-C goes to the whole foreground process
            # group, and the emulator must outlive it while the components stop (they write a
            # final heartbeat, flush windows); stop() ends it, and a parent that dies closes
            # its stdin, on which it exits
            start_new_session=True,
        )
        if err is not subprocess.DEVNULL:
            err.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise PortTaken(
                    f"the AWS emulator could not start on 127.0.0.1:{self.port} "
                    f"(exit {self._proc.returncode}; port taken?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"moto did not start within {START_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
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

    def stop(self, timeout: float = 3.0) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdin is not None:
            proc.stdin.close()
