"""BarAggregator (1-minute bars/trades -> 5-minute OHLCV) and FuturesBarFeed (replay hold)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import databento_dbn as dbn
import numpy as np
import pytest

from magic8.domain.bars import Bar
from magic8.flow.bars import OHLCV_DTYPE, BarAggregator, FuturesBarFeed
from magic8.flow.ingest import FlowIngest

T0 = datetime(2025, 9, 15, 13, 30, tzinfo=UTC)  # a 5-minute boundary
NS = 1_000_000_000
M = 60 * NS
T0_NS = int(T0.timestamp()) * NS

Minute = tuple[int, float, float, float, float, int]  # (minute offset, o, h, l, c, v)
Expected = tuple[int, float, float, float, float, int, bool]  # (start min, o,h,l,c,v, complete)


def ohlcv(rows: list[Minute], iid: int = 100_000) -> np.ndarray:
    a = np.zeros(len(rows), dtype=OHLCV_DTYPE)
    for i, (m, o, h, lo, c, v) in enumerate(rows):
        a[i]["length"] = OHLCV_DTYPE.itemsize // 4
        a[i]["rtype"] = int(dbn.RType.OHLCV_1M)
        a[i]["instrument_id"] = iid
        a[i]["ts_event"] = T0_NS + m * M
        for k, x in zip(("open", "high", "low", "close"), (o, h, lo, c), strict=True):
            a[i][k] = round(x * 1e9)
        a[i]["volume"] = v
    return a


def final(bars: list[Bar]) -> list[Expected]:
    """The last version of each bar (what a store holds after the upserts)."""
    latest: dict[datetime, Bar] = {}
    for b in bars:
        latest[b.start] = b
    return [
        (
            int((b.start - T0) / timedelta(minutes=1)),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.complete,
        )
        for b in sorted(latest.values(), key=lambda b: b.start)
    ]


CASES: dict[str, tuple[list[Minute], list[Expected]]] = {
    "one minute, bar still open": (
        [(0, 100, 101, 99, 100.5, 10)],
        [(0, 100, 101, 99, 100.5, 10, False)],
    ),
    "five minutes make one bar (open of the first, close of the last, extremes, sum)": (
        [
            (0, 100, 101, 99, 100.5, 10),
            (1, 100.5, 103, 100, 102, 5),
            (2, 102, 102.5, 98, 99, 7),
            (3, 99, 100, 97.25, 98, 1),
            (4, 98, 99, 98, 98.75, 2),
        ],
        [(0, 100, 103, 97.25, 98.75, 25, False)],
    ),
    "the next bar's first minute completes the previous one": (
        [(3, 100, 101, 99, 100, 4), (5, 101, 102, 100, 101.5, 6)],
        [(0, 100, 101, 99, 100, 4, True), (5, 101, 102, 100, 101.5, 6, False)],
    ),
    "minutes missing (no trades) leave gaps, no empty bars": (
        [(1, 100, 100, 100, 100, 1), (17, 105, 106, 104, 105, 3)],
        [(0, 100, 100, 100, 100, 1, True), (15, 105, 106, 104, 105, 3, False)],
    ),
    "a late minute (older than the open bar) is dropped": (
        [(5, 100, 101, 99, 100, 4), (2, 50, 500, 5, 50, 99), (6, 100, 100, 100, 100, 1)],
        [(5, 100, 101, 99, 100, 5, False)],
    ),
    "malformed prices are skipped": (
        [(0, 100, 101, 99, 100, 4), (1, 0, 0, 0, 0, 9), (2, 100, 100, -1, 100, 9)],
        [(0, 100, 101, 99, 100, 4, False)],
    ),
}


@pytest.mark.parametrize(("minutes", "expected"), CASES.values(), ids=CASES.keys())
def test_minute_bars_to_five_minute_bars(minutes: list[Minute], expected: list[Expected]) -> None:
    agg = BarAggregator()
    out: list[Bar] = []
    for m, o, h, lo, c, v in minutes:
        out.extend(agg.add(T0_NS + m * M, o, h, lo, c, v))
    assert final(out) == expected


@pytest.mark.parametrize(("minutes", "expected"), CASES.values(), ids=CASES.keys())
def test_record_arrays_give_the_same_bars(minutes: list[Minute], expected: list[Expected]) -> None:
    assert final(BarAggregator().add_ohlcv(ohlcv(minutes))) == expected


@pytest.mark.parametrize(
    ("trades", "expected"),
    [
        ([(0, 100.0, 1), (30, 101.0, 2), (299, 99.5, 3)], [(0, 100, 101, 99.5, 99.5, 6, False)]),
        (
            [(0, 100.0, 1), (300, 102.0, 2)],
            [(0, 100, 100, 100, 100, 1, True), (5, 102, 102, 102, 102, 2, False)],
        ),
    ],
    ids=["trades within one bar", "a trade on the boundary opens the next bar"],
)
def test_trades_to_five_minute_bars(
    trades: list[tuple[int, float, int]], expected: list[Expected]
) -> None:
    agg = BarAggregator()
    out: list[Bar] = []
    for sec, px, size in trades:
        out.extend(agg.add_trade(T0_NS + sec * NS, px, size))
    assert final(out) == expected


@pytest.mark.parametrize(
    ("last_minute", "complete"), [(4, True), (3, False)], ids=["last minute came", "cut short"]
)
def test_flush_completes_a_bar_only_when_its_last_minute_came(
    last_minute: int, complete: bool
) -> None:
    agg = BarAggregator()
    agg.add_ohlcv(ohlcv([(m, 100, 101, 99, 100, 1) for m in range(last_minute + 1)]))
    (bar,) = agg.flush()
    assert bar.complete is complete and bar.volume == last_minute + 1
    assert agg.flush() == []


def test_other_widths() -> None:
    agg = BarAggregator(minutes=15)
    out = agg.add_ohlcv(ohlcv([(m, 100 + m, 100 + m, 100 + m, 100 + m, 1) for m in range(16)]))
    assert final(out) == [(0, 100, 114, 100, 114, 15, True), (15, 115, 115, 115, 115, 1, False)]
    with pytest.raises(ValueError):
        BarAggregator(minutes=0)


def test_public_shape() -> None:
    (bar,) = BarAggregator().add(T0_NS, 100, 101, 99, 100.5, 10)
    assert bar.public() == {
        "ts": "2025-09-15T13:30:00+00:00",
        "open": 100,
        "high": 101,
        "low": 99,
        "close": 100.5,
        "volume": 10,
        "complete": False,
    }
    assert bar.shifted(timedelta(days=2)).start == T0 + timedelta(days=2)


def test_feed_holds_replayed_bars_until_the_mbo_clock_passes_each_minute() -> None:
    written: list[Bar] = []
    feed = FuturesBarFeed(written.extend)
    feed.on_ohlcv(ohlcv([(m, 100, 101, 99, 100, 1) for m in range(12)]), hold=True)
    assert written == [] and feed.queued == 12
    feed.release_until(T0_NS + 3 * M)  # minutes 0, 1, 2 have ended
    assert feed.records == 3 and final(written) == [(0, 100, 101, 99, 100, 3, False)]
    feed.release_until(T0_NS + 6 * M - 1)  # minute 5 has not ended yet
    assert feed.records == 5 and feed.queued == 7
    feed.release_until(T0_NS + 6 * M)
    assert final(written)[:1] == [(0, 100, 101, 99, 100, 5, True)]
    feed.flush()
    assert feed.queued == 0 and feed.records == 12
    assert final(written)[-1] == (10, 100, 101, 99, 100, 2, False)
    assert feed.health()["bars_written"] == len(written)


def test_feed_filters_instruments_and_survives_a_failing_store() -> None:
    calls: list[int] = []

    def sink(bars: list[Bar]) -> None:
        calls.append(len(bars))
        raise RuntimeError("table unavailable")

    feed = FuturesBarFeed(sink, instrument_ids={100_000})
    feed.on_ohlcv(ohlcv([(0, 100, 101, 99, 100, 1)], iid=7))
    assert calls == []
    feed.on_ohlcv(ohlcv([(0, 100, 101, 99, 100, 1)]))
    assert calls == [1] and feed.errors == 1 and "table unavailable" in feed.last_error


def test_ingest_routes_live_ohlcv_records_to_the_feed_and_replayed_arrays_to_the_queue() -> None:
    written: list[Bar] = []
    ingest = FlowIngest(futures=FuturesBarFeed(written.extend))
    px = (100 * NS, 101 * NS, 99 * NS, 100 * NS)
    record = dbn.OHLCVMsg(dbn.RType.OHLCV_1M, 1, 100_000, T0_NS, *px, 3)
    ingest.on_record(record)
    assert final(written) == [(0, 100, 101, 99, 100, 3, False)]
    assert ingest.counts()["used"]["OHLCVMsg"] == 1
    ingest.on_ohlcv(ohlcv([(5, 100, 101, 99, 100, 1)]))
    assert ingest.futures is not None and ingest.futures.queued == 1
    ingest.advance(T0_NS + 6 * M)
    assert final(written)[-1] == (5, 100, 101, 99, 100, 1, False)
    # without a feed, OHLCV is counted and skipped as before
    plain = FlowIngest()
    plain.on_record(record)
    plain.on_ohlcv(ohlcv([(0, 1, 1, 1, 1, 1)]))
    assert plain.counts()["skipped"]["OHLCVMsg"] == 2


def test_background_writer_retries_keeps_the_newest_version_and_drains_on_close() -> None:
    import threading

    from magic8.flow.bars import BackgroundBarWriter

    stored: dict[datetime, Bar] = {}
    failing = threading.Event()
    failing.set()
    attempts: list[int] = []
    first_attempt = threading.Event()

    def put(bars: list[Bar]) -> None:
        attempts.append(len(bars))
        first_attempt.set()
        if failing.is_set():
            raise RuntimeError("throttled")
        stored.update({b.start: b for b in bars})

    writer = BackgroundBarWriter(put, retry_s=0.01, max_retry_s=0.02)
    agg = BarAggregator()
    writer(agg.add(T0_NS, 100, 101, 99, 100, 1))
    assert first_attempt.wait(5)
    # while the store fails, a newer version of the same bar and a new bar arrive
    writer(agg.add(T0_NS + M, 100, 105, 99, 104, 2) + agg.add(T0_NS + 5 * M, 104, 104, 104, 104, 1))
    failing.clear()
    writer.close(timeout=5)
    assert not writer._thread.is_alive()
    assert writer.failures >= 1 and writer.pending == 0
    assert final(list(stored.values())) == [
        (0, 100, 105, 99, 104, 3, True),
        (5, 104, 104, 104, 104, 1, False),
    ]


def test_background_writer_retries_a_write_that_failed_as_close_began() -> None:
    """CI once closed the writer while its last failing write was in flight: the bars
    pending then were dropped instead of retried within close()'s timeout."""
    import threading

    from magic8.flow.bars import BackgroundBarWriter

    stored: dict[datetime, Bar] = {}
    in_put, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def put(bars: list[Bar]) -> None:
        calls.append(len(bars))
        if len(calls) == 1:
            in_put.set()
            release.wait(5)
            raise RuntimeError("throttled")
        stored.update({b.start: b for b in bars})

    writer = BackgroundBarWriter(put, retry_s=0.01, max_retry_s=0.02)
    writer(BarAggregator().add(T0_NS, 100, 101, 99, 100, 1))
    assert in_put.wait(5)
    closer = threading.Thread(target=writer.close, kwargs={"timeout": 5})
    closer.start()
    while not writer._closed:  # close() has begun before the write fails
        time.sleep(0.001)
    release.set()
    closer.join(10)
    assert not writer._thread.is_alive()
    assert writer.failures == 1 and writer.pending == 0 and len(calls) == 2
    assert [b.start for b in stored.values()] == [datetime.fromtimestamp(T0_NS / 1e9, UTC)]
