"""FlowIngest: the one ingestion path shared by the live session and DBN replay.

Live (`databento.Live` callbacks) delivers one record object at a time; replay reads
whole record arrays from DBN files. Both end here:

- definitions (arrays or InstrumentDefMsg objects) → the InstrumentMap,
- MBO (arrays, or live MBOMsg objects buffered as raw bytes and viewed as one numpy array
  per batch) → PressureAggregator → closed windows → `on_windows` sink,
- symbol mappings → symbols for instruments without a definition,
- everything else (statistics, OHLCV, MBP, trades, system/error messages, unknown record
  types) is counted and skipped; nothing raises into the feed.

Counts per record type: `seen` (arrived), `used` (fed the instrument map or the
aggregator), `skipped` (ignored).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from databento_dbn import MBOMsg

from magic8.domain.flow import PressureWindow
from magic8.flow import guard
from magic8.flow.aggregator import PressureAggregator, Source
from magic8.flow.bars import FuturesBarFeed
from magic8.flow.instruments import InstrumentMap, instrument_from_record

MBO_DTYPE = np.dtype(MBOMsg._dtypes)
WindowSink = Callable[[list[PressureWindow]], None]
GapSink = Callable[[int, int, str], None]  # (gap_start_ns, gap_end_ns, reason)

MBO_TYPE = "MBOMsg"
OHLCV_TYPE = "OHLCVMsg"
DEFINITION_TYPES = frozenset({"InstrumentDefMsg", "InstrumentDefMsgV1", "InstrumentDefMsgV2"})
MAPPING_TYPES = frozenset({"SymbolMappingMsg", "SymbolMappingMsgV1"})


class SequenceGapDetector:
    """Forward sequence jumps per channel → suspected gaps (vectorized per batch).

    CME sequence numbers are per channel; a subscription to some instruments of a channel
    sees jumps that are not losses, and snapshots reset them. So this is off unless a
    threshold is configured (max_jump); backward moves count as resets, never as gaps.
    """

    def __init__(self, max_jump: int | None = None) -> None:
        self.max_jump = max_jump
        self._last: dict[int, tuple[int, int]] = {}  # channel -> (sequence, ts_event)
        self.resets = 0

    def check(self, records: np.ndarray) -> list[tuple[int, int]]:
        if self.max_jump is None or len(records) == 0:
            return []
        gaps: list[tuple[int, int]] = []
        channels = records["channel_id"]
        unique = np.unique(channels).tolist()
        for ch in unique:
            sub = records[channels == ch] if len(unique) > 1 else records
            seq = sub["sequence"].astype(np.int64)
            ts = sub["ts_event"].astype(np.int64)
            prev = self._last.get(ch)
            if prev is not None:
                seq = np.r_[prev[0], seq]
                ts = np.r_[prev[1], ts]
            d = np.diff(seq)
            self.resets += int(np.count_nonzero(d < 0))
            for i in np.flatnonzero(d > self.max_jump).tolist():
                gaps.append((int(ts[i]), int(ts[i + 1])))
            self._last[ch] = (int(seq[-1]), int(ts[-1]))
        return gaps


class FlowIngest:
    def __init__(
        self,
        aggregator: PressureAggregator | None = None,
        on_windows: WindowSink | None = None,
        on_gap: GapSink | None = None,
        sequence_gap_threshold: int | None = None,
        batch_records: int = 4096,
        futures: FuturesBarFeed | None = None,
    ) -> None:
        self.aggregator = aggregator or PressureAggregator()
        # NQ futures front month: OHLCV records -> 5-minute bars (None: counted, skipped)
        self.futures = futures
        self.instruments: InstrumentMap = self.aggregator.instruments
        self.on_windows = on_windows or (lambda _w: None)
        self.on_gap = on_gap
        self.gaps = SequenceGapDetector(sequence_gap_threshold)
        self.batch_records = batch_records
        self.seen: Counter[str] = Counter()
        self.used: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        # implausible records dropped by magic8.flow.guard, by reason (time, instrument,
        # price, size); the current file's declared time range when replaying
        self.rejected: Counter[str] = Counter()
        self.declared: tuple[int, int] | None = None
        self.windows_emitted = 0
        self.backfill_records = 0
        self.last_mbo_ts_ns = 0
        self.errors: list[str] = []
        self._buffer = bytearray()
        self._buffered = 0
        self._lock = threading.RLock()

    # -- arrays (replay, backfill, batched live) ---------------------------------------

    def on_metadata(self, metadata: Any) -> None:
        self.instruments.add_metadata_mappings(metadata)
        self.declared = guard.declared_range(metadata)

    def on_definitions(self, array: np.ndarray, type_name: str = "InstrumentDefMsg") -> None:
        with self._lock:
            self.seen[type_name] += len(array)
            self.used[type_name] += self.instruments.add_definitions(array)

    def on_mbo(self, array: np.ndarray, source: Source | None = None, dedupe: bool = False) -> None:
        """One MBO record array through the aggregator (the hot path).

        dedupe=True (a backfill merge): the live records still buffered are aggregated
        first, so the merge dedupes against them; live copies that arrive after the merge
        are dropped by the aggregator against the backfill's keys.
        """
        if len(array) == 0:
            return
        with self._lock:
            if dedupe:
                self.flush_buffer()
            guard.check_structure(array)
            screened = guard.screen_mbo(array, self.instruments, self.declared)
            if screened.rejected:
                self.rejected.update(screened.rejected)
                self.seen[MBO_TYPE] += len(array) - len(screened.kept)
                array = screened.kept
                if len(array) == 0:
                    return
            n = len(array)
            if dedupe:  # historical records merged into the feed: counted apart
                self.backfill_records += n
            else:
                self.seen[MBO_TYPE] += n
                self.used[MBO_TYPE] += n
            if not dedupe:
                self.last_mbo_ts_ns = max(self.last_mbo_ts_ns, int(array["ts_event"][-1]))
                if self.on_gap is not None:
                    for start, end in self.gaps.check(array):
                        self.on_gap(start, end, "sequence")
            self._emit(self.aggregator.ingest(array, source=source, dedupe=dedupe))
            if self.futures is not None and not dedupe:
                self.futures.release_until(self.last_mbo_ts_ns)

    def on_ohlcv(self, array: np.ndarray, type_name: str = OHLCV_TYPE) -> None:
        """A replayed OHLCV array of the futures front month: queued, released by the MBO
        clock (one clock for bars and windows); without a futures feed, counted and skipped."""
        if self.futures is None:
            self.on_skipped(type_name, len(array))
            return
        with self._lock:
            self.seen[type_name] += len(array)
            self.used[type_name] += len(array)
            self.futures.on_ohlcv(array, hold=True)

    def on_skipped(self, type_name: str, count: int) -> None:
        with self._lock:
            self.seen[type_name] += count
            self.skipped[type_name] += count

    # -- single records (live callback, mixed DBN files) -------------------------------

    def on_record(self, record: Any) -> None:
        """One databento record object. Never raises: a bad record is counted and skipped."""
        name = type(record).__name__
        try:
            if name == MBO_TYPE:
                with self._lock:
                    self._buffer += bytes(record)
                    self._buffered += 1
                    if self._buffered >= self.batch_records:
                        self.flush_buffer()
                return
            if name in DEFINITION_TYPES:
                with self._lock:
                    self.seen[name] += 1
                    self.instruments.add(instrument_from_record(record))
                    self.used[name] += 1
                return
            if name == OHLCV_TYPE and self.futures is not None:
                with self._lock:
                    self.seen[name] += 1
                    self.futures.on_record(record)
                    self.used[name] += 1
                return
            if name in MAPPING_TYPES:
                with self._lock:
                    self.seen[name] += 1
                    symbol = str(getattr(record, "stype_out_symbol", "") or "")
                    if not symbol.isdigit():
                        self.instruments.add_symbol(record.instrument_id, symbol)
                    self.used[name] += 1
                return
            self.on_skipped(name, 1)
        except Exception as exc:  # a malformed record must not take the feed down
            with self._lock:
                self.seen[name] += 1
                self.skipped[name] += 1
                self.errors.append(f"{name}: {exc}")
                del self.errors[:-20]

    def flush_buffer(self, source: Source | None = None) -> None:
        """View the buffered live MBO records as one array and aggregate them."""
        with self._lock:
            if not self._buffered:
                return
            array = np.frombuffer(bytes(self._buffer), dtype=MBO_DTYPE)
            self._buffer = bytearray()
            self._buffered = 0
            try:
                self.on_mbo(array, source=source)
            except guard.CorruptDbn as exc:  # live bytes that are not MBO: dropped, counted
                self.rejected["corrupt"] += len(array)
                self.errors.append(f"{MBO_TYPE}: {exc}")
                del self.errors[:-20]

    def advance(self, now_ns: int) -> None:
        with self._lock:
            self.flush_buffer()
            self._emit(self.aggregator.advance(now_ns))
            if self.futures is not None:
                self.futures.release_until(now_ns)

    @property
    def lock(self) -> threading.RLock:
        """The ingest lock (re-entrant): callers that must order their own state with
        hold/release (gap accounting) take it around both."""
        return self._lock

    def hold(self, from_ns: int) -> None:
        """Keep windows ending after from_ns open (a gap waits for its backfill)."""
        with self._lock:
            self.aggregator.hold(from_ns)

    def release(self) -> None:
        with self._lock:
            self._emit(self.aggregator.release())

    def flush(self) -> None:
        """Aggregate what is buffered and close every open window."""
        with self._lock:
            self.flush_buffer()
            self._emit(self.aggregator.flush())
            if self.futures is not None:
                self.futures.flush()

    def _emit(self, windows: list[PressureWindow]) -> None:
        if windows:
            self.windows_emitted += len(windows)
            self.on_windows(windows)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "seen": dict(self.seen),
            "used": dict(self.used),
            "skipped": dict(self.skipped),
            "rejected": dict(self.rejected),
        }
