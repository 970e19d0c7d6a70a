"""The gateway host process: IB against the fake TWS, Databento disabled, moto DynamoDB.

/health 200 with states, heartbeat item written, SIGTERM -> clean exit 0 after flushing
(final heartbeat), and the configured secret never appears in any log line.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest

from gateway_host.main import Gateway
from gateway_host.settings import GatewaySettings
from magic8.adapters.aws import resource
from magic8.domain.heartbeat import HEARTBEAT_PK, HEARTBEAT_SK, GatewayHeartbeat
from magic8_dev.local.provision import LocalResources
from tests.fakes.fake_tws import FakeTws, ThreadedFakeTws
from tests.integration.test_ib_session import item_updated, market_repository, read_items
from tests.progress import wait_for
from tests.streams import kinesis_records as read_stream

pytestmark = pytest.mark.xdist_group("ib_gateway")

SECRET = "db-SECRET-c0ffee-5ca1ab1e-never-log-me"
REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DAY = REPO_ROOT / "layers/shared/magic8_dev/data/sessions/sample/day-2025-09-16"
# Until magic8.adapters.market_dynamo (the prediction side's adapter) exists, run the same
# main() with the documented-form repository the IbSession tests use.
_SHIM = (
    "import sys, gateway_host.main as m\n"
    "from tests.integration.test_ib_session import _DocumentedFormRepository as R\n"
    "m.default_market_repository = lambda s: R(s.market_table)\n"
    "sys.exit(m.main())\n"
)
MAIN_CMD = (
    ["-m", "gateway_host.main"]
    if importlib.util.find_spec("magic8.adapters.market_dynamo") is not None
    else ["-c", _SHIM]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def heartbeat_item(state_table: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        resource("dynamodb")
        .Table(state_table)
        .get_item(Key={"pk": HEARTBEAT_PK, "sk": HEARTBEAT_SK})
        .get("Item")
    )
    return item


def gateway_env(tws_port: int, health_port: int) -> dict[str, str]:
    return {
        "MAGIC8_IB_PORT": str(tws_port),
        "MAGIC8_IB_CLIENT_ID": "31",
        "MAGIC8_OUTSIDE_HOURS": "true",
        "MAGIC8_HEALTH_HOST": "127.0.0.1",
        "MAGIC8_HEALTH_PORT": str(health_port),
        "MAGIC8_HEARTBEAT_INTERVAL_S": "0.3",
        "MAGIC8_SNAPSHOT_INTERVAL_S": "0.2",
        "MAGIC8_IB_BACKOFF_INITIAL_S": "0.05",
        "MAGIC8_IB_BACKOFF_MAX_S": "0.5",
        "MAGIC8_DATABENTO_ENABLED": "false",
        "MAGIC8_DATABENTO_API_KEY": SECRET,
        "MAGIC8_LOG_LEVEL": "DEBUG",
    }


async def http_get(port: int, path: str = "/health") -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


def test_gateway_health_heartbeat_and_clean_shutdown_in_process(
    aws_resources: LocalResources,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("ib_async", "magic8", "gateway_host"):
        caplog.set_level(logging.DEBUG, logger=name)
    state_table = aws_resources.settings.state_table
    market_table = aws_resources.settings.market_table

    async def scenario() -> dict[str, Any]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        for k, v in gateway_env(tws.port, 0).items():
            monkeypatch.setenv(k, v)
        settings = GatewaySettings()
        assert settings.databento_api_key is not None
        gw = Gateway(settings, market_repository=market_repository(market_table))
        await gw.start()
        out: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + 10
            while True:
                resp = await http_get(gw.health.port)
                if resp.status_code == 200 and resp.json()["ib"]["state"] == "connected":
                    break
                assert time.monotonic() < deadline, resp.text
                await asyncio.sleep(0.1)
            out["health"] = resp.json()
            out["404"] = (await http_get(gw.health.port, "/nope")).status_code
            await asyncio.sleep(0.8)
            out["beat"] = await asyncio.to_thread(heartbeat_item, state_table)
        finally:
            await gw.shutdown()
            await tws.stop()
        out["final"] = await asyncio.to_thread(heartbeat_item, state_table)
        out["snapshots"] = await asyncio.to_thread(read_items, market_table)
        return out

    out = asyncio.run(scenario())
    health = out["health"]
    assert health["healthy"] is True
    assert health["ib"]["state"] == "connected"
    assert health["databento"]["state"] == "disabled"
    assert out["404"] == 404
    beat = GatewayHeartbeat.from_item(out["beat"])
    assert beat.ib_state == "connected" and beat.healthy and not beat.final
    assert beat.last_quote_at is not None and beat.quote_age_seconds() is not None
    assert beat.pacing["limit"] == 60 and int(beat.pacing["upstream_total"]) == 7
    assert beat.age_seconds() < 10
    final = GatewayHeartbeat.from_item(out["final"])
    assert final.final and not final.healthy and final.ib_state == "stopped"
    assert len(out["snapshots"]) == 7
    # secrets never appear in logs (ib_async at DEBUG logs every message it sends)
    assert caplog.records, "expected log output"
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


@pytest.mark.parametrize("required", [False, True], ids=["ib-optional", "ib-required"])
def test_health_when_ib_is_unreachable(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch, required: bool
) -> None:
    """IB unreachable: reported as degraded; 503 only with MAGIC8_IB_REQUIRED_FOR_HEALTH."""

    async def scenario() -> httpx.Response:
        for k, v in gateway_env(free_port(), 0).items():  # nothing listens there
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("MAGIC8_IB_REQUIRED_FOR_HEALTH", str(required).lower())
        gw = Gateway(
            GatewaySettings(),
            market_repository=market_repository(aws_resources.settings.market_table),
        )
        await gw.start()
        try:
            await asyncio.sleep(0.3)
            return await http_get(gw.health.port)
        finally:
            await gw.shutdown()

    resp = asyncio.run(scenario())
    assert resp.status_code == (503 if required else 200)
    body = resp.json()
    assert body["healthy"] is not required and body["degraded"] == ["ib"]
    assert body["ib"]["healthy"] is False and body["ib"]["state"] in ("backoff", "connecting")
    assert "connect" in body["ib"]["last_error"]


def test_settings_mask_secrets() -> None:
    settings = GatewaySettings(databento_api_key=SECRET)  # type: ignore[arg-type]
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in settings.model_dump_json()
    assert settings.databento_api_key is not None
    assert settings.databento_api_key.get_secret_value() == SECRET


def start_gateway_process(
    env: dict[str, str], log_path: Path
) -> tuple[TextIO, subprocess.Popen[str]]:
    """`python -m gateway_host.main` with its output in a file, not a pipe: DEBUG output
    must never block the child."""
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, *MAIN_CMD],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return log_file, proc


def kinesis_records(stream: str) -> list[dict[str, Any]]:
    from magic8.adapters.aws import client

    return [json.loads(r["Data"]) for r in read_stream(client("kinesis"), stream)]


def test_main_process_sigterm_flushes_and_exits_0(
    aws_resources: LocalResources, tmp_path: Path
) -> None:
    """`python -m gateway_host.main` as ECS runs it; SIGTERM -> final heartbeat, exit 0."""
    state_table = aws_resources.settings.state_table
    market_table = aws_resources.settings.market_table
    tws = ThreadedFakeTws(tick_interval=0.05)
    tws_port = tws.start()
    health_port = free_port()
    env = {
        **os.environ,
        **gateway_env(tws_port, health_port),
        # the Databento half in replay mode over one day of the shipped sample session
        "MAGIC8_DATABENTO_ENABLED": "true",
        "MAGIC8_DATABENTO_MODE": "replay",
        "MAGIC8_DATABENTO_REPLAY_PATH": str(SAMPLE_DAY),
        # ECS gives 30 s (hence the 25 s default); on a CI machine running other suites'
        # emulators beside it the flush can take longer: what is asserted is that it
        # completes and exits 0, not how fast a loaded machine does it
        "MAGIC8_SHUTDOWN_TIMEOUT_S": "100",
    }
    log_path = tmp_path / "gateway.log"
    log_file, proc = start_gateway_process(env, log_path)
    try:
        # cold imports (databento pulls pandas + pyarrow) are slow on a busy machine
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"http://127.0.0.1:{health_port}/health", timeout=2)
                status = resp.status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        if status != 200:
            proc.kill()
            raise AssertionError(f"/health never 200 ({status}): {log_path.read_text()[-3000:]}")
        health = resp.json()

        def ready() -> bool:
            nonlocal health
            health = httpx.get(f"http://127.0.0.1:{health_port}/health", timeout=2).json()
            beat = heartbeat_item(state_table)
            # the heartbeat is written every 0.3 s: it can trail /health by one beat
            return (
                len(read_items(market_table)) >= 7
                and beat is not None
                and health["databento"]["state"] == "done"
                and GatewayHeartbeat.from_item(beat).databento_state == "done"
            )

        # snapshots, a live heartbeat and the finished replay before the stop (a busy
        # machine replays slower: the wait fails only when the replay stops moving)
        wait_for(
            ready,
            # progress: the replay's windows, or the IB half's snapshots still arriving
            lambda: (health["databento"].get("windows_emitted"), len(read_items(market_table))),
            "the replay to finish",
            stall_s=60,
            describe=lambda: json.dumps(health)[:2000],
            poll_s=0.2,
        )
        live_beat = GatewayHeartbeat.from_item(heartbeat_item(state_table) or {})
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"still running 120 s after SIGTERM: {log_path.read_text()[-3000:]}"
            ) from exc
    finally:
        if proc.poll() is None:
            proc.kill()
        log_file.close()
        tws.stop()
    output = log_path.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert health["ib"]["state"] == "connected"
    final = GatewayHeartbeat.from_item(heartbeat_item(state_table) or {})
    assert final.final and final.ib_state == "stopped"
    assert live_beat.databento_state == "done" and live_beat.last_mbo_at is not None
    # every window the replay emitted reached Kinesis, the last ones through the SIGTERM flush
    emitted = health["databento"]["windows_emitted"]
    records = kinesis_records(aws_resources.settings.flow_stream)
    assert emitted > 0 and len(records) == emitted
    assert all(r["schema_version"] == 2 and r["source"] == "replay" for r in records)
    assert "gateway stopped cleanly" in output
    assert SECRET not in output
    json.dumps(health)  # the health body is plain JSON


class _QuietFeed:
    """Duck-typed Databento session facts (the real one is exercised above)."""

    def __init__(self, state: str, healthy: bool) -> None:
        self.facts = {"state": state, "healthy": healthy, "last_mbo_at": None}

    def health(self) -> dict[str, Any]:
        return dict(self.facts)


@pytest.mark.parametrize(
    ("state", "feed_healthy", "when", "expected"),
    [
        ("streaming", True, datetime(2026, 11, 23, 15, 0, tzinfo=UTC), True),
        # quiet feed while CME Globex is closed (Saturday; daily halt 17:30 ET): not a fault
        ("streaming", False, datetime(2026, 11, 21, 15, 0, tzinfo=UTC), True),
        ("streaming", False, datetime(2026, 11, 23, 22, 30, tzinfo=UTC), True),
        # quiet feed while Globex is open: unhealthy so ECS replaces the task
        ("streaming", False, datetime(2026, 11, 23, 15, 0, tzinfo=UTC), False),
        ("error", False, datetime(2026, 11, 21, 15, 0, tzinfo=UTC), False),
    ],
)
def test_databento_health_in_the_container_status(
    state: str, feed_healthy: bool, when: datetime, expected: bool
) -> None:
    settings = GatewaySettings(ib_enabled=False, databento_enabled=True)
    gw = Gateway(
        settings, databento_factory=lambda s: _QuietFeed(state, feed_healthy), clock=lambda: when
    )
    healthy, facts = gw.status()
    assert healthy is expected
    assert facts["databento"]["state"] == state and facts["ib"]["state"] == "disabled"


def test_sigterm_mid_stream_stops_intake_flushes_and_exits_within_30s(
    aws_resources: LocalResources, tmp_path: Path
) -> None:
    """SIGTERM while the replay is streaming: exit 0 in <= 30 s, no traceback, no window lost."""
    health_port = free_port()
    env = {
        **os.environ,
        **gateway_env(0, health_port),
        "MAGIC8_IB_ENABLED": "false",
        "MAGIC8_LOG_LEVEL": "INFO",
        "MAGIC8_DATABENTO_ENABLED": "true",
        "MAGIC8_DATABENTO_MODE": "replay",
        "MAGIC8_DATABENTO_REPLAY_PATH": str(SAMPLE_DAY),
        # 6.5 session hours in ~80 s: the signal lands mid-stream
        "MAGIC8_DATABENTO_REPLAY_SPEED": "300",
        "MAGIC8_FLOW_MAX_BUFFERED": "500",
    }
    log_path = tmp_path / "gateway.log"
    log_file, proc = start_gateway_process(env, log_path)
    try:
        deadline = time.monotonic() + 90
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{health_port}/health", timeout=2).json()
            except (httpx.TransportError, ValueError):
                health = {}
            if health.get("databento", {}).get("windows_emitted", 0) > 0:
                break
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        assert health["databento"]["state"] == "replaying", health
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        proc.wait(timeout=40)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
        log_file.close()
    output = log_path.read_text()
    assert proc.returncode == 0, output[-3000:]
    print(f"SIGTERM mid-stream: stopped in {took:.2f} s, {len(output.splitlines())} log lines")
    assert took <= 30, f"stopped in {took:.1f} s"
    assert "Traceback" not in output and "KeyError" not in output, output[-3000:]
    line = next(ln for ln in output.splitlines() if "databento: flushed:" in ln)
    counts = dict(part.split("=") for part in line.split("flushed:")[1].split())
    emitted, sent = int(counts["emitted"]), int(counts["sent"])
    records = kinesis_records(aws_resources.settings.flow_stream)
    assert emitted > 0 and sent == emitted and counts["pending"] == "0"
    assert len(records) == emitted, "every window emitted before the stop reached Kinesis"
    final = GatewayHeartbeat.from_item(heartbeat_item(aws_resources.settings.state_table) or {})
    assert final.final
    assert "gateway stopped cleanly" in output


def test_gateway_survives_an_hour_without_ib(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IB Gateway unavailable for a simulated hour (1 s of wall time = 20 simulated minutes):
    the gateway keeps serving /health 200 (degraded: ib) so ECS never replaces the task, the
    session retries with capped backoff, the snapshots age until the prediction service
    flags them stale, and when IB is back the session reconnects and snapshots are fresh."""
    from magic8.domain.service import ServiceConfig  # stale_after_s: the flagging rule

    compression = 1200.0  # simulated seconds per wall second
    t0_wall, t0_sim = time.monotonic(), datetime(2026, 11, 23, 15, 0, tzinfo=UTC)

    def sim_now() -> datetime:
        from datetime import timedelta

        return t0_sim + timedelta(seconds=(time.monotonic() - t0_wall) * compression)

    market_table = aws_resources.settings.market_table
    repo = market_repository(market_table)

    async def scenario() -> dict[str, Any]:
        tws = FakeTws(tick_interval=0.05)
        port = await tws.start()
        for k, v in gateway_env(port, 0).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("MAGIC8_METRICS_ENABLED", "false")
        gw = Gateway(GatewaySettings(), market_repository=repo, clock=sim_now)
        assert gw.ib is not None  # its snapshots' updated_at run on the simulated clock
        await gw.start()
        out: dict[str, Any] = {"codes": []}
        try:
            await until_async(lambda: gw.ib is not None and gw.ib.snapshots_written >= 7, 15)
            connects = gw.ib.connects
            await tws.stop()  # IB Gateway gone (restart, 2FA wait, IBKR maintenance)
            went = sim_now()
            while (sim_now() - went).total_seconds() < 3600:
                resp = await http_get(gw.health.port)
                out["codes"].append(resp.status_code)
                out["during"] = resp.json()
                await asyncio.sleep(0.1)
            out["attempts"] = gw.ib.connects - connects
            out["reconnect_state"] = gw.ib.state
            out["stale_item"] = read_items(market_table)
            out["stale_at"] = sim_now()
            await tws.start(port=port)  # IB is back on the same port
            await until_async(lambda: gw.ib is not None and gw.ib.state == "connected", 15)
            written = gw.ib.snapshots_written
            await until_async(lambda: gw.ib is not None and gw.ib.snapshots_written > written, 15)
            out["fresh_item"] = read_items(market_table)
            out["fresh_at"] = sim_now()
            out["after"] = (await http_get(gw.health.port)).json()
        finally:
            await gw.shutdown()
            await tws.stop()
        return out

    out = asyncio.run(scenario())
    assert set(out["codes"]) == {200}, "IB down never failed the container check"
    assert out["during"]["degraded"] == ["ib"] and out["during"]["ib"]["healthy"] is False
    assert out["reconnect_state"] in ("backoff", "connecting")
    assert out["attempts"] == 0  # nothing to connect to: no session, no churn
    stale_after = ServiceConfig().stale_after_s
    for item in out["stale_item"].values():
        assert (out["stale_at"] - item_updated(item)).total_seconds() > stale_after
    fresh = [
        (out["fresh_at"] - item_updated(item)).total_seconds()
        for item in out["fresh_item"].values()
    ]
    assert min(fresh) < stale_after, "snapshots fresh again after IB came back"
    assert out["after"]["ib"]["state"] == "connected" and out["after"]["degraded"] == []


async def until_async(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
