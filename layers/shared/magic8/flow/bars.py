"""NQ futures price bars: 1-minute OHLCV bars (or trades) -> 5-minute OHLCV bars.

`BarAggregator` is pure: feed it 1-minute bars (Databento `ohlcv-1m`: ts_event is the
minute's open time, prices fixed-point 1e-9) or single trades, in time order, and it
returns the 5-minute bars each input changed: the current bar (complete=False, a live
candle) and, when an input starts a new bar, the previous one with complete=True. A
store upserts them by start time, so a bar is written a few times while it forms and
ends complete. Inputs older than the current bar are counted (`late`) and dropped.

`FuturesBarFeed` sits in FlowIngest: live OHLCV records go through at once; a replayed
file's bars are queued and released as the options (MBO) clock passes each minute's end,
so bars and flow windows reach their stores on one clock (replay pacing included).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from magic8.domain.bars import BAR_MINUTES, DEFAULT_SYMBOL, Bar

log = logging.getLogger("magic8.flow.bars")

NS = 1_000_000_000
PRICE_SCALE = 1e-9  # DBN fixed-point prices
UNDEF_PRICE = 2**63 - 1  # DBN's undefined price
MINUTE_NS = 60 * NS
BarSink = Callable[[list[Bar]], None]


@dataclass
class _Open:
    start_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int


class BarAggregator:
    def __init__(self, symbol: str = DEFAULT_SYMBOL, minutes: int = BAR_MINUTES) -> None:
        if minutes < 1:
            raise ValueError("minutes must be >= 1")
        self.symbol = symbol
        self.minutes = minutes
        self.span_ns = minutes * MINUTE_NS
        self._bar: _Open | None = None
        self.late = 0
        self.rejected = 0
        self.inputs = 0
        self._last_ts = 0

    def bucket(self, ts_ns: int) -> int:
        return ts_ns - ts_ns % self.span_ns

    def add(
        self, ts_ns: int, open_: float, high: float, low: float, close: float, volume: int
    ) -> list[Bar]:
        """One 1-minute bar (ts_ns: its open time); returns the 5-minute bars it changed."""
        values = (open_, high, low, close)
        if not all(np.isfinite(v) and v > 0 for v in values) or volume < 0:
            self.rejected += 1  # malformed: counted, never raised into the feed
            return []
        start = self.bucket(int(ts_ns))
        out: list[Bar] = []
        bar = self._bar
        if bar is not None and start < bar.start_ns:
            self.late += 1
            return []
        self.inputs += 1
        self._last_ts = max(self._last_ts, int(ts_ns))
        if bar is not None and start > bar.start_ns:
            out.append(self._emit(bar, complete=True))
            bar = None
        if bar is None:
            bar = _Open(start, open_, max(high, open_), min(low, open_), close, 0)
            self._bar = bar
        bar.high = max(bar.high, high, open_, close)
        bar.low = min(bar.low, low, open_, close)
        bar.close = close
        bar.volume += int(volume)
        out.append(self._emit(bar, complete=False))
        return out

    def add_trade(self, ts_ns: int, price: float, size: int) -> list[Bar]:
        """One trade: a bar of one price."""
        return self.add(ts_ns, price, price, price, price, size)

    def add_ohlcv(self, records: np.ndarray) -> list[Bar]:
        """A Databento OHLCV record array (any bar width, in time order)."""
        out: list[Bar] = []
        for r in records:
            prices = [int(r[k]) for k in ("open", "high", "low", "close")]
            if any(p == UNDEF_PRICE for p in prices):
                continue
            o, h, lo, c = (p * PRICE_SCALE for p in prices)
            out.extend(self.add(int(r["ts_event"]), o, h, lo, c, int(r["volume"])))
        return _latest_per_start(out)

    def advance(self, now_ns: int) -> list[Bar]:
        """The feed's clock reached now_ns: the open bar is complete once its span ended."""
        bar = self._bar
        if bar is not None and now_ns >= bar.start_ns + self.span_ns:
            self._bar = None
            return [self._emit(bar, complete=True)]
        return []

    def flush(self) -> list[Bar]:
        """End of the feed: the open bar as it stands; complete when its last minute came."""
        bar, self._bar = self._bar, None
        if bar is None:
            return []
        complete = self._last_ts + MINUTE_NS >= bar.start_ns + self.span_ns
        return [self._emit(bar, complete=complete)]

    def reset(self) -> None:
        self._bar = None
        self._last_ts = 0

    def _emit(self, bar: _Open, complete: bool) -> Bar:
        return Bar(
            symbol=self.symbol,
            start=datetime.fromtimestamp(bar.start_ns / NS, tz=UTC),
            open=round(bar.open, 6),
            high=round(bar.high, 6),
            low=round(bar.low, 6),
            close=round(bar.close, 6),
            volume=bar.volume,
            minutes=self.minutes,
            complete=complete,
        )


def _latest_per_start(bars: Iterable[Bar]) -> list[Bar]:
    """Of several versions of one bar, the last (a store upserts: the earlier are moot)."""
    latest: dict[datetime, Bar] = {}
    for b in bars:
        latest[b.start] = b
    return sorted(latest.values(), key=lambda b: b.start)


class FuturesBarFeed:
    """OHLCV records of the futures front month -> BarAggregator -> `sink` (a BarStore.put).

    A sink failure is logged and counted, never raised into the feed."""

    def __init__(
        self,
        sink: BarSink | None = None,
        aggregator: BarAggregator | None = None,
        instrument_ids: set[int] | None = None,
    ) -> None:
        self.aggregator = aggregator or BarAggregator()
        self.sink = sink or (lambda _bars: None)
        self.instrument_ids = instrument_ids  # None: every OHLCV record is the future's
        self._queue: deque[np.ndarray] = deque()
        self.records = 0
        self.bars_written = 0
        self.errors = 0
        self.last_error = ""
        self.last_bar_start: datetime | None = None

    def _wanted(self, records: np.ndarray) -> np.ndarray:
        if self.instrument_ids is None or len(records) == 0:
            return records
        keep = np.isin(records["instrument_id"], np.fromiter(self.instrument_ids, np.uint32))
        return records[keep]

    def on_ohlcv(self, records: np.ndarray, hold: bool = False) -> None:
        """Live (hold=False): aggregate now. Replay (hold=True): wait for release_until()."""
        records = self._wanted(records)
        if len(records) == 0:
            return
        if hold:
            self._queue.append(np.sort(records, order="ts_event", kind="stable"))
            return
        self.records += len(records)
        self._write(self.aggregator.add_ohlcv(records))

    def on_record(self, record: Any) -> None:
        """One live OHLCVMsg object."""
        array = np.frombuffer(bytes(record), dtype=OHLCV_DTYPE)
        self.on_ohlcv(array)

    @property
    def queued(self) -> int:
        return sum(len(a) for a in self._queue)

    def release_until(self, now_ns: int) -> None:
        """Aggregate the queued minutes that ended by now_ns (minute open + 1 min)."""
        ready: list[np.ndarray] = []
        while self._queue:
            head = self._queue[0]
            ends = head["ts_event"].astype(np.int64) + MINUTE_NS
            n = int(np.searchsorted(ends, now_ns, side="right"))
            if n == 0:
                break
            ready.append(head[:n])
            if n == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[n:]
                break
        if ready:
            records = np.concatenate(ready)
            self.records += len(records)
            self._write(self.aggregator.add_ohlcv(records))

    def flush(self) -> None:
        """End of a file/feed: everything queued, then the open bar."""
        self.release_until(2**62)
        self._write(self.aggregator.flush())

    def reset(self) -> None:
        self._queue.clear()
        self.aggregator.reset()

    def _write(self, bars: list[Bar]) -> None:
        if not bars:
            return
        try:
            self.sink(bars)
        except Exception as exc:  # the store is down: the next bars retry the upsert
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("futures bars: write failed: %s", self.last_error)
            return
        self.bars_written += len(bars)
        self.last_bar_start = bars[-1].start

    def health(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "queued": self.queued,
            "bars_written": self.bars_written,
            "last_bar_start": self.last_bar_start.isoformat() if self.last_bar_start else None,
            "late": self.aggregator.late,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class BackgroundBarWriter:
    """A BarSink for the live feed: bars are handed to one writer thread, so a slow or
    failing store never holds the feed's thread (the ingest lock) while it retries.

    Pending bars are keyed by (symbol, start) and the newest version wins, so the backlog
    is bounded by the distinct bars (78 per regular session) however long the store is
    down; a failed write is retried with backoff. `close()` writes what is pending (within
    its timeout) and ends the thread."""

    def __init__(self, put: BarSink, retry_s: float = 2.0, max_retry_s: float = 60.0) -> None:
        self.put = put
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._pending: dict[tuple[str, datetime], Bar] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._close_deadline = 0.0
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="nq-bars-writer", daemon=True)
        self._thread.start()

    def __call__(self, bars: list[Bar]) -> None:
        with self._cond:
            for b in bars:
                self._pending[(b.symbol, b.start)] = b
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def _run(self) -> None:
        delay = self.retry_s
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, {}
            try:
                self.put(sorted(batch.values(), key=lambda b: b.start))
            except Exception as exc:
                self.failures += 1
                log.warning("futures bars: write failed (%d pending): %s", len(batch), exc)
                with self._cond:
                    for key, bar in batch.items():  # newer versions that came meanwhile win
                        self._pending.setdefault(key, bar)
                    if self._closed:
                        # closing: retry what is pending until close()'s deadline, not once
                        # (a write that failed as close() began lost its bars before)
                        left = self._close_deadline - time.monotonic()
                        if left <= 0:
                            return
                        self._cond.wait(min(self.retry_s, left))
                        continue
                    self._cond.wait(delay)
                delay = min(delay * 2, self.max_retry_s)
                continue
            self.written += len(batch)
            delay = self.retry_s

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._close_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout)


def _ohlcv_dtype() -> np.dtype[Any]:
    from databento_dbn import OHLCVMsg

    return np.dtype(OHLCVMsg._dtypes)


OHLCV_DTYPE = _ohlcv_dtype()
