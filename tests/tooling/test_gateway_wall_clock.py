"""The local replay's wall-clock mapping and lag-bounded sending (no AWS, no replay)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from magic8_dev.local.gateway_component import SHIFT_STEP, WallClockProducer
from tests.factories import session_start, window


class Sink:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, windows: list[Any]) -> int:
        self.sent.extend(windows)
        return len(windows)

    def flush(self) -> None:
        return


def test_replayed_windows_are_stamped_within_one_step_before_now() -> None:
    wall = [datetime(2026, 12, 3, 14, 37, 12, tzinfo=UTC)]
    sink = Sink()
    producer = WallClockProducer(sink, clock=lambda: wall[0])
    start = session_start()
    for i in range(60):  # the replay runs 60x faster than the wall clock
        producer.send([window(20100, "C", start + timedelta(minutes=5 * i), 10, 5)])
        wall[0] += timedelta(seconds=5)
        now = wall[0] - timedelta(seconds=5)
        w = sink.sent[-1]
        assert now - SHIFT_STEP < w.window_end <= now
        assert w.window_end - w.window_start == timedelta(minutes=5)  # the grid is kept
        assert (w.window_start - start) % SHIFT_STEP == timedelta(0)
    assert producer.reanchors > 1


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
