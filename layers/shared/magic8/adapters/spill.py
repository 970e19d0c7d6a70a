"""SpillQueue: an on-disk FIFO of (key, data, enqueued_at) records, in segment files.

The Kinesis producer keeps at most `max_buffered` records in memory; what arrives beyond
that is appended here and read back, oldest first, as memory drains. Files:

    <dir>/<seq>.spill   seq an integer (may be negative), read in ascending order

Each record is a little-endian header (key length u16, data length u32, enqueued_at f64)
followed by the key (UTF-8) and the data. New records go to the newest segment (a new one
every `segment_bytes`); a segment read to its end is deleted. At shutdown `push_front`
writes records that must go *before* everything on disk (the producer's unsent in-memory
records plus the unread tail of the segment being read) to a segment with a lower number,
so a restart replays them first. Single-threaded: only the producer's owner thread calls it.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("magic8.spill")

_HEADER = struct.Struct("<HId")
SUFFIX = ".spill"

SpillRecord = tuple[str, bytes, float]


def _read_records(fh: BinaryIO) -> Iterator[SpillRecord]:
    while True:
        head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return  # end (or a torn header from a crash mid-write: ignored)
        klen, dlen, t = _HEADER.unpack(head)
        body = fh.read(klen + dlen)
        if len(body) < klen + dlen:
            return
        yield body[:klen].decode(), body[klen:], t


class SpillQueue:
    def __init__(self, directory: str | Path, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.count = 0
        self.bytes = 0
        self.oldest_at: float | None = None  # enqueued_at of the next record to read
        self._segments: list[int] = []
        for p in self.dir.glob(f"*{SUFFIX}"):
            try:
                self._segments.append(int(p.stem))
            except ValueError:
                continue
        self._segments.sort()
        for seq in self._segments:  # records left by a previous run: replayed first
            with self._path(seq).open("rb") as fh:
                for _key, data, t in _read_records(fh):
                    self.count += 1
                    self.bytes += len(data)
                    if self.oldest_at is None:
                        self.oldest_at = t
        if self.count:
            log.warning("spill: %d records from a previous run in %s", self.count, self.dir)
        self._writer: BinaryIO | None = None
        self._writer_seq: int | None = None
        self._reader: BinaryIO | None = None
        self._reader_seq: int | None = None

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:+012d}{SUFFIX}"

    # -- write -------------------------------------------------------------------------

    def append(self, key: str, data: bytes, enqueued_at: float) -> None:
        if self._writer is None or self._writer.tell() >= self.segment_bytes:
            self._roll()
        assert self._writer is not None
        k = key.encode()
        self._writer.write(_HEADER.pack(len(k), len(data), enqueued_at) + k + data)
        if self.count == 0:
            self.oldest_at = enqueued_at
        self.count += 1
        self.bytes += len(data)

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        seq = (self._segments[-1] + 1) if self._segments else 0
        self._segments.append(seq)
        self._writer = self._path(seq).open("ab")
        self._writer_seq = seq

    # -- read --------------------------------------------------------------------------

    def pop(self, n: int) -> list[SpillRecord]:
        """Up to n records, oldest first (removed from the queue)."""
        out: list[SpillRecord] = []
        while len(out) < n and self.count:
            if self._reader is None:
                if not self._segments:
                    self.count = 0
                    break
                seq = self._segments[0]
                if seq == self._writer_seq and self._writer is not None:
                    self._writer.flush()
                self._reader = self._path(seq).open("rb")
                self._reader_seq = seq
            rec = self._read_one(self._reader)
            if rec is None:
                self._finish_segment()
                continue
            out.append(rec)
            self.count -= 1
            self.bytes -= len(rec[1])
        if not self.count and self._reader is not None:
            self._finish_segment()  # read to the end: nothing on disk is pending
        self._peek_oldest()
        return out

    def _read_one(self, fh: BinaryIO) -> SpillRecord | None:
        if fh is self._reader and self._reader_seq == self._writer_seq and self._writer:
            self._writer.flush()
        for rec in _read_records(fh):
            return rec
        return None

    def _drop_reader_segment(self) -> None:
        """Close and delete the segment being read (and its writer when it is the same)."""
        assert self._reader is not None and self._reader_seq is not None
        self._reader.close()
        self._reader = None
        seq, self._reader_seq = self._reader_seq, None
        if seq == self._writer_seq and self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_seq = None
        self._segments.remove(seq)
        self._path(seq).unlink(missing_ok=True)

    def _finish_segment(self) -> None:
        self._drop_reader_segment()
        if not self._segments:
            self.count = 0  # torn tail records (crash) are not counted again

    def _peek_oldest(self) -> None:
        if not self.count:
            self.oldest_at = None
            return
        if self._reader is not None:
            pos = self._reader.tell()
            rec = self._read_one(self._reader)
            self._reader.seek(pos)
            if rec is not None:
                self.oldest_at = rec[2]
                return
        # the next segment's first record
        for seq in self._segments:
            if seq == self._reader_seq:
                continue
            if seq == self._writer_seq and self._writer is not None:
                self._writer.flush()
            with self._path(seq).open("rb") as fh:
                rec = self._read_one(fh)
            if rec is not None:
                self.oldest_at = rec[2]
                return

    # -- shutdown ----------------------------------------------------------------------

    def push_front(self, records: Iterable[SpillRecord]) -> int:
        """Persist `records` ahead of everything on disk; close the files. Returns count."""
        records = list(records)
        tail: list[SpillRecord] = []
        if self._reader is not None and self._reader_seq is not None:
            if self._reader_seq == self._writer_seq and self._writer is not None:
                self._writer.flush()
            tail = list(_read_records(self._reader))
            self._drop_reader_segment()
            self.count -= len(tail)
        front = records + tail
        if front:
            seq = (self._segments[0] - 1) if self._segments else 0
            tmp = self.dir / f".front{os.getpid()}.tmp"
            with tmp.open("wb") as fh:
                for key, data, t in front:
                    k = key.encode()
                    fh.write(_HEADER.pack(len(k), len(data), t) + k + data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self._path(seq))  # atomic: all of them or none
            self._segments.insert(0, seq)
            self.count += len(front)
        self.close()
        return len(records)

    def close(self) -> None:
        for fh in (self._writer, self._reader):
            if fh is not None:
                fh.close()
        self._writer = self._reader = None
        self._writer_seq = self._reader_seq = None
