"""Heartbeat writer: the GatewayHeartbeat item in the state table every `interval_s`.

The monitor reads it (magic8.domain.heartbeat.GatewayHeartbeat.from_item) for
gateway_stale alerts. A final heartbeat (final=True) is written at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from magic8.adapters.aws import LazyDynamoTable
from magic8.domain.heartbeat import DEFAULT_TTL_SECONDS, GatewayHeartbeat

log = logging.getLogger("magic8.gateway.heartbeat")

Collect = Callable[[bool], GatewayHeartbeat]  # final -> heartbeat


class HeartbeatWriter(LazyDynamoTable):
    def __init__(
        self,
        table_name: str,
        collect: Collect,
        interval_s: float = 10.0,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        table: Any = None,
    ) -> None:
        super().__init__(table_name, table)
        self.collect, self.interval_s, self.ttl_seconds = collect, interval_s, ttl_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.writes = 0
        self.errors = 0
        self.last: GatewayHeartbeat | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def stop(self, final: bool = True) -> None:
        if self._task is not None:
            # let a write in flight finish (cancelling the await would not stop its thread,
            # which could then overwrite the final heartbeat); cancel only if it hangs
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if final:
            await self.write_once(final=True)

    async def write_once(self, final: bool = False) -> bool:
        beat = self.collect(final)
        try:
            await asyncio.to_thread(self.table.put_item, Item=beat.to_item(self.ttl_seconds))
        except Exception as exc:  # throttled after retries / endpoint down: try next tick
            self.errors += 1
            log.warning("heartbeat write failed: %s", exc)
            return False
        self.writes += 1
        self.last = beat
        return True

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await self.write_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
