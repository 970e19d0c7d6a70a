"""Replay DBN files through the live ingestion path (FlowIngest).

Accepts files and folders (searched recursively for *.dbn / *.dbn.zst, sorted, so
`day-YYYY-MM-DD/` folders replay in date order; within a folder definition files come
before market data). Homogeneous files are read as record arrays in chunks; mixed files
(recorded live sessions) go record by record through `FlowIngest.on_record`, exactly as
live callbacks do. With `speed` set, records are paced by ts_event (speed 60 = one session
minute per wall second; long idle stretches such as overnight are capped at
`max_idle_seconds` of wall time); without it, as fast as possible.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import databento as db
import numpy as np
from databento.common.constants import SCHEMA_STRUCT_MAP
from databento_dbn import Schema

from magic8.flow import guard
from magic8.flow.aggregator import Source
from magic8.flow.ingest import FlowIngest

DBN_SUFFIXES = (".dbn", ".dbn.zst")
CHUNK_RECORDS = 1 << 16


def is_dbn(path: Path) -> bool:
    return path.is_file() and path.name.endswith(DBN_SUFFIXES)


def _file_order(path: Path) -> tuple[str, int, str]:
    # definitions first within a folder, then futures bars (queued, released by the MBO
    # clock), then market data
    rank = 0 if "definition" in path.name else 1 if "ohlcv" in path.name else 2
    return (str(path.parent), rank, path.name)


def dbn_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files to replay, in order: folders sorted recursively, definitions first."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted((f for f in p.rglob("*") if is_dbn(f)), key=_file_order))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such DBN file or folder: {p}")
    return out


@dataclass
class Pacer:
    """Sleeps so that session time advances at `speed` times wall time."""

    speed: float | None = None
    max_idle_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    stop: Callable[[], bool] = lambda: False
    _anchor_wall: float | None = field(default=None, init=False)
    _anchor_ts: int = field(default=0, init=False)

    @property
    def enabled(self) -> bool:
        return bool(self.speed) and (self.speed or 0) > 0

    def wait_until(self, ts_ns: int) -> None:
        if not self.enabled or self.speed is None:
            return
        now = self.clock()
        if self._anchor_wall is None:
            self._anchor_wall, self._anchor_ts = now, ts_ns
            return
        due = self._anchor_wall + (ts_ns - self._anchor_ts) / 1e9 / self.speed
        if due - now > self.max_idle_seconds:  # overnight / weekend: don't sit idle
            self._anchor_wall, self._anchor_ts = now + self.max_idle_seconds, ts_ns
            due = self._anchor_wall
        while not self.stop():
            delay = due - self.clock()
            if delay <= 0:
                break
            self.sleep(min(delay, 0.25))

    def slices(self, ts: np.ndarray) -> Iterator[tuple[int, int]]:
        """Index ranges of a chunk such that each slice spans ≤ 50 ms of wall time."""
        n = len(ts)
        if not self.enabled or self.speed is None or n == 0:
            yield 0, n
            return
        step = int(0.05 * self.speed * 1e9)
        start = 0
        while start < n:
            end = int(np.searchsorted(ts, int(ts[start]) + max(step, 1), side="left"))
            end = max(end, start + 1)
            yield start, end
            start = end


@dataclass
class ReplayResult:
    files: int = 0
    records: int = 0
    per_file: dict[str, int] = field(default_factory=dict)
    # files that could not be decoded (not DBN, corrupt header, ...): reported, skipped
    failed: dict[str, str] = field(default_factory=dict)


def _schema_type_name(schema: Any) -> str:
    try:
        return SCHEMA_STRUCT_MAP[Schema(str(schema))].__name__
    except (KeyError, ValueError):
        return str(schema)


def _verify(path: Path, chunk_records: int) -> int:
    """Read a whole file without emitting anything; the number of records, or CorruptDbn
    saying how much was read before the first error (a truncated file, a corrupt frame,
    bytes that are not the records the header declares)."""
    n = 0
    nbytes = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            store = db.DBNStore.from_file(path)
            schema = store.schema
            if schema is None:
                for _record in store:
                    n += 1
            else:
                for chunk in store.to_ndarray(count=chunk_records):
                    if schema == Schema.MBO:
                        guard.check_structure(chunk, offset=n)
                    n += len(chunk)
                    nbytes += chunk.nbytes
        except guard.CorruptDbn as exc:
            raise guard.CorruptDbn(f"corrupt after {n} records ({nbytes} bytes): {exc}") from None
        except Exception as exc:
            raise guard.CorruptDbn(
                f"unreadable after {n} records ({nbytes} bytes): {type(exc).__name__}: {exc}"
            ) from None
    for w in caught:
        text = str(w.message)
        if "truncated" in text or "incomplete" in text:
            raise guard.CorruptDbn(f"truncated after {n} complete records ({nbytes} bytes)")
    return n


def replay_file(
    path: Path,
    ingest: FlowIngest,
    pacer: Pacer | None = None,
    source: Source = "replay",
    chunk_records: int = CHUNK_RECORDS,
) -> int:
    """Feed one DBN file to `ingest`; returns the number of records read. The file is
    read to its end first: a truncated or corrupt file raises CorruptDbn (saying how much
    was read) and nothing of it reaches the ingest."""
    pacer = pacer or Pacer()
    _verify(path, chunk_records)
    store = db.DBNStore.from_file(path)
    ingest.on_metadata(store.metadata)
    schema = store.schema
    if schema is None:  # mixed record types: the live per-record path
        n = 0
        for record in store:
            if pacer.stop():
                break
            pacer.wait_until(int(getattr(record, "ts_event", 0) or 0))
            ingest.on_record(record)
            n += 1
        ingest.flush_buffer(source=source)
        return n
    if schema == Schema.DEFINITION:
        array = store.to_ndarray()
        ingest.on_definitions(array, _schema_type_name(schema))
        return len(array)
    if schema == Schema.MBO:
        n = 0
        for chunk in store.to_ndarray(count=chunk_records):
            if len(chunk) == 0:
                continue
            ts = chunk["ts_event"]
            for a, b in pacer.slices(ts):
                if pacer.stop():
                    return n
                pacer.wait_until(int(ts[a]))
                ingest.on_mbo(chunk[a:b], source=source)
            n += len(chunk)
        return n
    if str(schema).startswith("ohlcv"):  # the futures front month's bars
        n = 0
        for chunk in store.to_ndarray(count=chunk_records):
            ingest.on_ohlcv(chunk, _schema_type_name(schema))
            n += len(chunk)
        return n
    # a schema the gateway does not use: count it, skip it
    n = sum(len(c) for c in store.to_ndarray(count=chunk_records))
    ingest.on_skipped(_schema_type_name(schema), n)
    return n


def replay(
    paths: Iterable[str | Path],
    ingest: FlowIngest,
    speed: float | None = None,
    source: Source = "replay",
    flush: bool = True,
    pacer: Pacer | None = None,
) -> ReplayResult:
    """Replay files/folders in order through `ingest`; flush open windows at the end."""
    pacer = pacer or Pacer(speed=speed)
    result = ReplayResult()
    for path in dbn_files(paths):
        if pacer.stop():
            break
        try:
            n = replay_file(path, ingest, pacer=pacer, source=source)
        except Exception as exc:  # a bad file must not end the session: report, go on
            message = f"{path}: {type(exc).__name__}: {exc}"
            result.failed[str(path)] = message
            ingest.errors.append(message)
            continue
        result.files += 1
        result.records += n
        result.per_file[str(path)] = n
    if flush:
        ingest.flush()
    return result
