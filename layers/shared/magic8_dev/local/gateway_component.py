"""GatewayReplayComponent: the Databento half of the gateway host, on the local stack.

Replays the shipped sample session (magic8_dev/data/sessions/sample: generated NQ options
definitions + MBO, real DBN files) through the gateway's DatabentoSession, accelerated
and looping, into the Kinesis `flow` stream on moto, where the Kinesis poller hands the
windows to the ifd handler. The records keep their real session timestamps (September
2025); status() shows the session time reached.

gateway_host is loaded by name (importlib), as the local runner does for handlers:
`magic8` never imports gateway_host at module level.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magic8.domain.heartbeat import GatewayHeartbeat
from magic8.settings import AwsSettings
from magic8_dev.local.context import LocalContext

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL_S = 5.0

SAMPLE_SESSION = Path(__file__).resolve().parents[1] / "data" / "sessions" / "sample"
DEMO_SPEED = 2400.0  # one 6.5-hour session day in about 10 s
REAL_SPEED = 1.0
LOCAL_MAX_BUFFERED = 5_000  # windows in memory (producer) and in the session's outbox
LOCAL_FLUSH_TIMEOUT_S = 3.0


class GatewayReplayComponent:
    name = "gateway"

    def __init__(
        self,
        paths: tuple[str, ...] | None = None,
        speed: float | None = None,
        loop: bool = True,
    ) -> None:
        self.paths = paths or (str(SAMPLE_SESSION),)
        self.speed = speed
        self.loop = loop
        self.session: Any = None
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._seen_records = 0
        self._last_mbo_wall: datetime | None = None
        self.heartbeats = 0

    def start(self, ctx: LocalContext) -> None:
        from magic8.adapters.kinesis_flow import KinesisFlowProducer

        module = importlib.import_module("gateway_host.databento.session")
        speed = self.speed if self.speed is not None else (DEMO_SPEED if ctx.demo else REAL_SPEED)
        config = module.DatabentoConfig(
            mode="replay",
            replay_paths=self.paths,
            speed=speed,
            loop_replay=self.loop,
            max_idle_seconds=0.2,
            outbox_max_windows=LOCAL_MAX_BUFFERED,
        )
        # bounded: when moto cannot keep up, the replay waits (backpressure); Ctrl-C gives
        # the sender LOCAL_FLUSH_TIMEOUT_S to deliver what is buffered (make run stops <= 5 s)
        producer = KinesisFlowProducer(
            AwsSettings().flow_stream,
            max_buffered=LOCAL_MAX_BUFFERED,
            flush_timeout_s=LOCAL_FLUSH_TIMEOUT_S,
        )
        self.session = module.DatabentoSession(config, producer=producer)
        self.session.start()
        ctx.facts["flow_replay"] = ", ".join(self.paths)
        self._beat_thread = threading.Thread(
            target=self._heartbeat_loop, name="gateway-heartbeat", daemon=True
        )
        self._beat_thread.start()

    def heartbeat(self, final: bool = False) -> GatewayHeartbeat:
        """The heartbeat the real gateway host writes, from the replaying session's health.

        IB is not part of the local stack (snapshots are seeded), so its state is "disabled";
        last_mbo_at is the wall time the replay last delivered MBO records."""
        h = self.session.health()
        now = datetime.now(UTC)
        if h.get("records_seen", 0) > self._seen_records:
            self._seen_records = h["records_seen"]
            self._last_mbo_wall = now
        return GatewayHeartbeat(
            updated_at=now,
            last_mbo_at=self._last_mbo_wall,
            ib_state="disabled",
            databento_state=f"{h.get('state', 'unknown')} ({h.get('mode', 'replay')})",
            connections={"ib": "disabled (seeded snapshots)", "databento": str(h.get("state"))},
            backfill_budget_used=float(h.get("backfill_budget_used", 0.0) or 0.0),
            healthy=bool(h.get("healthy", True)) and not final,
            final=final,
        )

    def _write_heartbeat(self, final: bool = False) -> None:
        from magic8.adapters.aws import resource

        table = resource("dynamodb").Table(AwsSettings().state_table)
        table.put_item(Item=self.heartbeat(final).to_item())
        self.heartbeats += 1

    def _heartbeat_loop(self) -> None:
        while not self._beat_stop.is_set():
            try:
                self._write_heartbeat()
            except Exception as exc:  # the next beat retries; the replay goes on
                log.warning("gateway heartbeat write failed: %s", exc)
            self._beat_stop.wait(HEARTBEAT_INTERVAL_S)

    def status(self) -> str:
        if self.session is None:
            return "not started"
        h = self.session.health()
        reached = (h.get("last_mbo_at") or "-")[:16].replace("T", " ")
        return (
            f"{h['state']} {h['mode']} loop {h['loops'] + 1}: {h['records_seen']:,} records, "
            f"{h['windows_sent']:,}/{h['windows_emitted']:,} windows sent"
            f" (backlog {h.get('kinesis', {}).get('pending', 0):,}), "
            f"session time {reached} UTC"
            + (f" (error: {h['last_error']})" if h.get("last_error") else "")
            + f"; {self.heartbeats} heartbeats"
        )

    def stop(self) -> None:
        if self.session is None:
            return
        self._beat_stop.set()
        if self._beat_thread is not None:
            self._beat_thread.join(timeout=5)
        self.session.stop()
        self.session.flush()
        with contextlib.suppress(Exception):
            self._write_heartbeat(final=True)
