"""GatewayReplayComponent: the Databento half of the gateway host, on the local stack.

Replays the shipped sample session (magic8/data/sessions/sample: generated NQ options
definitions + MBO, real DBN files) through the gateway's DatabentoSession, accelerated
and looping, into the Kinesis `flow` stream on moto, where the Kinesis poller hands the
windows to the ifd handler. The records keep their real session timestamps (September
2025); status() shows the session time reached.

gateway_host is loaded by name (importlib), as the local runner does for handlers:
`magic8` never imports gateway_host at module level.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from magic8.local.context import LocalContext
from magic8.settings import AwsSettings

SAMPLE_SESSION = Path(__file__).resolve().parents[1] / "data" / "sessions" / "sample"
DEMO_SPEED = 2400.0  # one 6.5-hour session day in about 10 s
REAL_SPEED = 1.0


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

    def start(self, ctx: LocalContext) -> None:
        from magic8.adapters.kinesis_flow import KinesisFlowProducer

        module = importlib.import_module("gateway_host.databento_session")
        speed = self.speed if self.speed is not None else (DEMO_SPEED if ctx.demo else REAL_SPEED)
        config = module.DatabentoConfig(
            mode="replay",
            replay_paths=self.paths,
            speed=speed,
            loop_replay=self.loop,
            max_idle_seconds=0.2,
        )
        producer = KinesisFlowProducer(AwsSettings().flow_stream)
        self.session = module.DatabentoSession(config, producer=producer)
        self.session.start()
        ctx.facts["flow_replay"] = ", ".join(self.paths)

    def status(self) -> str:
        if self.session is None:
            return "not started"
        h = self.session.health()
        reached = (h.get("last_mbo_at") or "-")[:16].replace("T", " ")
        return (
            f"{h['state']} {h['mode']} loop {h['loops'] + 1}: {h['records_seen']:,} records, "
            f"{h['windows_sent']:,}/{h['windows_emitted']:,} windows sent, "
            f"session time {reached} UTC"
            + (f" (error: {h['last_error']})" if h.get("last_error") else "")
        )

    def stop(self) -> None:
        if self.session is None:
            return
        self.session.stop()
        self.session.flush()
