"""`make run`'s start-up checks (no stack is started)."""

from __future__ import annotations

import argparse
import socket

import pytest

from magic8_dev.local import runner


def test_a_second_run_on_a_busy_port_says_which_port_is_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        args = parser.parse_args(["--port", str(port), "--log-file", ""])
        assert runner.run(args) == 2
    err = capsys.readouterr().err
    assert f"port {port} (API" in err and "another `make run`" in err
