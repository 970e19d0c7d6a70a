"""A fake Databento live subscription gateway speaking the real wire protocol.

An unmodified `databento.Live(key=..., gateway="127.0.0.1", port=fake.port)` connects to
it. The protocol (databento/live/gateway.py, protocol.py, common/cram.py):

1. server → `lsg_version=<v>\\n`, then `cram=<challenge>\\n`
2. client → `auth=<sha256(f"{cram}|{key}")>-<last 5 chars of key>|dataset=...|encoding=dbn|
   ts_out=0|compression=none|...|client=...\\n`
3. server → `success=1|session_id=<id>\\n` (or `success=0|error=...\\n` and close)
4. client → `schema=...|stype_in=...|symbols=...|snapshot=0|id=N|is_last=1\\n` (one or more),
   then `start_session=0\\n`
5. server → a DBN stream: the Metadata header, then records (definitions first for a
   definition subscription, then MBO).

Faults: `disconnect_after=N` resets the TCP connection (SO_LINGER 0 → RST, which the client
sees as an error and reconnects) after N MBO records on the first connection; the records
`[N, N + gap_records)` are never sent (they happened while the client was away), the next
connection starts at N + gap_records with Metadata.start = that record's ts_event.
`disconnects=[(n1, gap1), (n2, gap2), ...]` does the same on the 1st, 2nd, ... streaming
connection (n counted from where that connection started). After the last record the
server closes gracefully (FIN), which ends the client's session.

Slow reader: the gateway writes as fast as the client reads (asyncio drain = TCP
backpressure, nothing is dropped: the live gateway's `warn` slow-reader behaviour, the
only one for MBO and definitions). With `slow_reader_warning_s` set, a write that waits
longer than that for the client counts as "client behind" and the gateway sends a
SystemMsg with code SLOW_READER_WARNING (at most every `slow_reader_warning_interval_s`),
as the real gateway does; `slow_reader_warnings` and `drain_blocked_s` record it.
`send_buffer_bytes` shrinks the socket send buffer and asyncio's write limit, so the
gateway feels a slow client after a few records instead of after megabytes of buffering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import databento as db
import databento_dbn as dbn
import numpy as np


def cram_response(challenge: str, key: str) -> str:
    return f"{hashlib.sha256(f'{challenge}|{key}'.encode()).hexdigest()}-{key[-5:]}"


def _parse(line: str) -> dict[str, str]:
    return {k: v for k, _, v in (t.partition("=") for t in line.strip().split("|"))}


@dataclass
class ConnectionLog:
    auth: dict[str, str] = field(default_factory=dict)
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    started: bool = False
    authenticated: bool = False
    mbo_sent: int = 0
    reset: bool = False


class FakeDatabentoGateway:
    def __init__(
        self,
        definition_file: str | Path | None,
        mbo_file: str | Path,
        api_key: str,
        disconnect_after: int | None = None,
        gap_records: int = 0,
        chunk_records: int = 64,
        chunk_delay_s: float = 0.001,
        close_at_end: bool = True,
        disconnects: Sequence[tuple[int, int]] = (),
        slow_reader_warning_s: float | None = None,
        slow_reader_warning_interval_s: float = 0.25,
        send_buffer_bytes: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.definitions: list[bytes] = []
        if definition_file is not None:
            self.definitions = [bytes(r) for r in db.DBNStore.from_file(definition_file)]
        store = db.DBNStore.from_file(mbo_file)
        self.mbo: np.ndarray = store.to_ndarray()
        self.dataset = store.metadata.dataset
        self.disconnect_after = disconnect_after
        self.gap_records = gap_records
        # (records to send, records the client misses) per streaming connection, in order
        self.schedule: list[tuple[int, int]] = list(disconnects)
        if not self.schedule and disconnect_after is not None:
            self.schedule = [(disconnect_after, gap_records)]
        self.slow_reader_warning_s = slow_reader_warning_s
        self.slow_reader_warning_interval_s = slow_reader_warning_interval_s
        self.slow_reader_warnings = 0
        # a small socket send buffer + asyncio write limit: a slow client is felt at once
        self.send_buffer_bytes = send_buffer_bytes
        self.drain_blocked_s = 0.0
        self.records_skipped = 0  # records never sent because of a scheduled disconnect
        self.chunk_records = chunk_records
        self.chunk_delay_s = chunk_delay_s
        self.close_at_end = close_at_end
        self.connections: list[ConnectionLog] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._next_index = 0
        self._streams = 0
        self.finished = threading.Event()  # the last record has been written

    # -- lifecycle (own thread + loop, so a blocking client can run in the test thread) --

    def start(self) -> FakeDatabentoGateway:
        self._thread = threading.Thread(target=self._run, name="fake-databento", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake databento gateway did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def _close() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeDatabentoGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol ----------------------------------------------------------------------

    def _metadata(self, start_ns: int) -> bytes:
        meta = dbn.Metadata(
            dataset=self.dataset,
            start=start_ns,
            stype_in=None,
            stype_out=dbn.SType.INSTRUMENT_ID,  # type: ignore[arg-type]
            schema=None,  # a live session with several schemas
            symbols=[],
        )
        return bytes(meta.encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log = ConnectionLog()
        self.connections.append(log)
        if self.send_buffer_bytes:
            sock: Any = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            writer.transport.set_write_buffer_limits(high=self.send_buffer_bytes)
        try:
            challenge = secrets.token_hex(16)
            writer.write(b"lsg_version=0.0.0-magic8-fake\n")
            writer.write(f"cram={challenge}\n".encode())
            await writer.drain()
            log.auth = _parse((await reader.readline()).decode())
            if log.auth.get("auth") != cram_response(challenge, self.api_key):
                writer.write(b"success=0|error=Authentication failed.\n")
                await writer.drain()
                writer.close()
                return
            if log.auth.get("dataset") != self.dataset:
                writer.write(
                    f"success=0|error=Unknown dataset {log.auth.get('dataset')}\n".encode()
                )
                await writer.drain()
                writer.close()
                return
            log.authenticated = True
            session_id = str(len(self.connections))
            writer.write(f"success=1|session_id={session_id}\n".encode())
            await writer.drain()
            while True:
                line = (await reader.readline()).decode()
                if not line:
                    return
                msg = _parse(line)
                if "start_session" in msg:
                    log.started = True
                    break
                log.subscriptions.append(msg)
            await self._stream(log, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    async def _stream(
        self, log: ConnectionLog, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        schemas = [s.get("schema") for s in log.subscriptions]
        start_index = self._next_index
        if start_index >= len(self.mbo):
            start_index = len(self.mbo) - 1
        start_ns = int(self.mbo["ts_event"][start_index])
        writer.write(self._metadata(start_ns))
        if "definition" in schemas:
            for rec in self.definitions:
                writer.write(rec)
        await writer.drain()
        if "mbo" not in schemas:
            return
        plan = self.schedule[self._streams] if self._streams < len(self.schedule) else None
        self._streams += 1
        end = len(self.mbo)
        if plan is not None:
            end = min(start_index + plan[0], len(self.mbo))
        i = start_index
        loop = asyncio.get_running_loop()
        last_warning = -1e18
        while i < end:
            j = min(i + self.chunk_records, end)
            writer.write(self.mbo[i:j].tobytes())
            log.mbo_sent += j - i
            i = j
            t0 = time.monotonic()
            await writer.drain()
            blocked = time.monotonic() - t0
            self.drain_blocked_s += blocked
            threshold = self.slow_reader_warning_s
            if threshold is not None and blocked >= threshold:
                now = loop.time()
                if now - last_warning >= self.slow_reader_warning_interval_s:
                    last_warning = now
                    self.slow_reader_warnings += 1
                    warning = dbn.SystemMsg(
                        ts_event=int(self.mbo["ts_event"][j - 1]),
                        msg="Slow reader: session is behind real time",
                        code=dbn.SystemCode.SLOW_READER_WARNING,
                    )
                    writer.write(bytes(warning))
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        if plan is not None and end < len(self.mbo):
            # the client is away for plan[1] records; then drop the connection hard
            skipped = min(plan[1], len(self.mbo) - end - 1)
            self.records_skipped += skipped
            self._next_index = end + skipped
            await asyncio.sleep(0.3)  # let the client read what was sent
            sock: Any = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            log.reset = True
            writer.transport.abort()
            return
        self._next_index = end
        self.finished.set()
        if self.close_at_end:
            await asyncio.sleep(0.2)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        else:  # stay connected (a live feed with nothing to say) until the client leaves
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
