"""The local replay's wall-clock mapping and lag-bounded sending (no AWS, no replay)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from magic8_dev.local.gateway_component import WallClockProducer, shift_for
from tests.factories import session_start, window


class Sink:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, windows: list[Any]) -> int:
        self.sent.extend(windows)
        return len(windows)

    def flush(self) -> None:
        return


def test_the_last_session_day_becomes_the_last_ended_day(tmp_path: Path) -> None:
    for day in ("2025-09-15", "2025-09-16", "2025-09-19"):
        (tmp_path / f"day-{day}").mkdir()
    for now in (
        datetime(2026, 12, 3, 14, 37, tzinfo=UTC),
        datetime(2026, 12, 3, 23, 59, tzinfo=UTC),
        datetime(2026, 12, 4, 0, 0, tzinfo=UTC),
    ):
        shift = shift_for([str(tmp_path)], now)
        assert shift == timedelta(days=shift.days)  # whole days: time of day kept
        last_day_end = datetime(2025, 9, 20, tzinfo=UTC) + shift
        assert now - timedelta(days=1) < last_day_end <= now
    assert shift_for([str(tmp_path / "nothing-here")]) == timedelta(0)


def test_windows_move_by_the_shift_and_keep_their_spacing() -> None:
    sink = Sink()
    producer = WallClockProducer(sink, shift=timedelta(days=440))
    start = session_start()
    ws = [window(20100, "C", start + timedelta(minutes=5 * i), 10, 5) for i in range(3)]
    assert producer.send(ws) == 3
    assert [w.window_start - v.window_start for w, v in zip(sink.sent, ws, strict=True)] == [
        timedelta(days=440)
    ] * 3
    assert all(w.window_end - w.window_start == timedelta(minutes=5) for w in sink.sent)


def test_the_sender_waits_while_the_stream_lags_and_gives_up_on_stop() -> None:
    lag = [5000]
    stop = threading.Event()
    sink = Sink()
    producer = WallClockProducer(sink, lag=lambda: lag[0], max_lag=100, stop=stop)
    t = threading.Thread(target=producer.send, args=([window(20100, "C", session_start(), 1, 1)],))
    t.start()
    t.join(0.3)
    assert t.is_alive() and sink.sent == []  # held while the lag is over the bound
    lag[0] = 10
    t.join(5)
    assert not t.is_alive() and len(sink.sent) == 1
    lag[0] = 5000
    stop.set()
    producer.send([window(20100, "C", session_start(), 1, 1)])  # stop: no waiting
    assert len(sink.sent) == 2
