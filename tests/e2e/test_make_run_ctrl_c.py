"""`magic8 run` (what `make run` starts) stopped the way a terminal's Ctrl-C stops it.

A terminal sends SIGINT to the whole foreground process group: the runner *and* the AWS
emulator it started. The emulator has to outlive the signal while the components stop
(the gateway's final heartbeat and window flush, the API, the monitor all talk to it);
otherwise every component waits on a dead endpoint and is abandoned at the stop budget.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from magic8_dev.local.moto_server import free_port
from tests.progress import wait_for

pytestmark = pytest.mark.xdist_group("make_run")


def _listening(port: int) -> bool:
    # a connect, not port_is_free's bind: a closed server's TIME_WAIT sockets can refuse a bind
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _windows_sent(text: str) -> int:
    found = re.findall(r"([\d,]+)/[\d,]+ windows sent", text)
    return int(found[-1].replace(",", "")) if found else 0


def test_ctrl_c_stops_every_component_within_the_budget(tmp_path: Path) -> None:
    api_port = free_port()
    out_path = tmp_path / "console.txt"
    env = {**os.environ, "MAGIC8_DASHBOARD_PORT": str(free_port())}
    env.pop("AWS_ENDPOINT_URL", None)  # its own emulator, as on a developer's machine
    args = ["run", "--port", str(api_port), "--status-every", "1"]
    args += ["--log-file", str(tmp_path / "magic8.log")]
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "magic8_dev.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )
    try:
        # the gateway replay is delivering windows: every component is at work
        wait_for(
            lambda: _windows_sent(out_path.read_text()) > 0 or proc.poll() is not None,
            lambda: len(out_path.read_text()),
            "make run's gateway sending windows",
            describe=lambda: out_path.read_text()[-3000:],
        )
        text = out_path.read_text()
        assert proc.poll() is None, text[-3000:]
        aws = re.search(r"AWS\s+http://127\.0\.0\.1:(\d+)", text)
        assert aws, text[-3000:]
        aws_port = int(aws.group(1))
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out_path.read_text()
    assert rc == 0, text[-3000:]
    stopped = re.search(r"magic8: stopped in ([\d.]+) s(.*)\.", text)
    assert stopped, text[-3000:]
    assert "abandoned" not in stopped.group(2), stopped.group(0)  # all stopped in the budget
    assert "Traceback" not in text
    # nothing keeps listening: not the API, not the emulator
    deadline = time.monotonic() + 10
    while (_listening(api_port) or _listening(aws_port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(api_port) and not _listening(aws_port)
