"""The local replay's wall-clock mapping and lag-bounded sending (no AWS, no replay)."""

from __future__ import annotations

import functools
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


def _days(tmp_path: Path, *days: str) -> str:
    for day in days:
        (tmp_path / f"day-{day}").mkdir()
    return str(tmp_path)


def test_the_last_close_lands_on_now_at_any_time_of_day(tmp_path: Path) -> None:
    from magic8.ifd.baselines import tod_bucket, trading_day
    from magic8_dev.local.gateway_component import SHIFT_GRID, live_shift

    root = _days(tmp_path, "2025-09-23", "2025-09-24")
    close = datetime(2025, 9, 24, 20, 0, tzinfo=UTC)
    for now in (
        datetime(2026, 12, 3, 17, 12, 41, tzinfo=UTC),  # inside the New York session
        datetime(2026, 12, 3, 23, 59, tzinfo=UTC),  # evening
        datetime(2026, 12, 4, 4, 30, tzinfo=UTC),  # New York night (CI ran at such a time)
        datetime(2026, 12, 4, 8, 2, tzinfo=UTC),  # New York early morning
        datetime(2026, 7, 4, 13, 0, tzinfo=UTC),  # summer time
    ):
        shift = live_shift([root], now)
        assert shift % SHIFT_GRID == timedelta(0)  # windows stay on their grid
        assert now - SHIFT_GRID < close + shift <= now  # the last close is now
        # every day moves by the same offset: a window's bucket is the same on each day
        day1 = datetime(2025, 9, 23, 15, 10, tzinfo=UTC) + shift
        day2 = datetime(2025, 9, 24, 15, 10, tzinfo=UTC) + shift
        assert tod_bucket(day1) == tod_bucket(day2)
        assert trading_day(day1) < trading_day(day2)


def _detected(now: datetime) -> tuple[set[tuple[str, str]], set[str], int]:
    """make run's replay (the sample's last two afternoons) shifted to close on `now`,
    through the detector offline: (unshifted window end, direction) of every stored signal,
    of every alert, and the stored signals stamped within the hour before `now`."""
    from magic8.ifd.detector import IfdConfig
    from magic8_dev.ifd.evaluate import Replayed, make_detector, run_windows
    from magic8_dev.local.gateway_component import (
        SAMPLE_SESSION,
        live_from,
        live_paths,
        live_shift,
    )

    paths = live_paths(SAMPLE_SESSION, "")
    shift = live_shift(paths, now)
    producer = WallClockProducer(Sink(), shift=shift, send_from=live_from("17:00"))
    detector, _, _ = make_detector(IfdConfig())
    out = Replayed()
    for path in paths:
        groups = [producer.shifted(g) for g in _replayed(path)]
        run_windows(detector, [g for g in groups if g], out)
    stored = [s for s in out.signals if s.confidence >= 0.7]
    recent = {s.signal_id for s in stored if now - timedelta(hours=1) <= s.window_end <= now}
    return (
        {((s.window_end - shift).isoformat(), s.direction or "") for s in stored},
        {(a.window_end - shift).isoformat() + (a.direction or "") for a in out.alerts()},
        len(recent),
    )


@functools.cache
def _replayed(path: str) -> list[list[Any]]:
    """A sample day's windows (one replay per test process, shared by both `now`s)."""
    from magic8_dev.ifd.evaluate import replay_day

    return replay_day(Path(path))


def test_a_session_straddling_new_york_midnight_detects_the_same() -> None:
    """Between midnight and 06:30 New York time the shifted session crosses midnight (each
    day split over two exchange-local dates, the same way): the detector stores and alerts
    the same windows as in the afternoon, and some of them are stamped within the hour."""
    afternoon = _detected(datetime(2026, 12, 4, 19, 0, tzinfo=UTC))
    night = _detected(datetime(2026, 12, 4, 6, 40, tzinfo=UTC))  # 01:40 New York
    assert afternoon[0] and afternoon[1]
    assert night[0] == afternoon[0] and night[1] == afternoon[1]
    assert night[2] > 0 and night[2] == afternoon[2]


def test_an_early_windows_cut_time_moves_with_it() -> None:
    sink = Sink()
    producer = WallClockProducer(sink, shift=timedelta(days=440))
    start = session_start()
    cut = start + timedelta(minutes=2)
    early = window(20100, "C", start, 10, 5).model_copy(update={"final": False, "emitted_at": cut})
    producer.send([early])
    (sent,) = sink.sent
    assert sent.emitted_at == cut + timedelta(days=440)
    assert sent.as_of == cut + timedelta(days=440)


def test_make_run_replays_the_last_days_unless_told_all(tmp_path: Path) -> None:
    from magic8_dev.local.gateway_component import live_paths

    root = Path(_days(tmp_path, "2025-09-15", "2025-09-16", "2025-09-17"))
    assert [Path(p).name for p in live_paths(root, "")] == ["day-2025-09-16", "day-2025-09-17"]
    assert [Path(p).name for p in live_paths(root, "1")] == ["day-2025-09-17"]
    assert live_paths(root, "all") == (str(root),)


def test_windows_before_the_live_time_of_day_are_not_sent() -> None:
    from datetime import time

    sink = Sink()
    producer = WallClockProducer(sink, send_from=time(17, 0))
    day = datetime(2025, 9, 24, tzinfo=UTC)
    early = [window(20100, "C", day + timedelta(hours=16, minutes=55), 10, 5)]
    late = [window(20100, "C", day + timedelta(hours=17, minutes=m), 10, 5) for m in (0, 5)]
    assert producer.send(early) == 0 and sink.sent == []
    assert producer.send(early + late) == 2
    assert [w.window_start for w in sink.sent] == [w.window_start for w in late]
    assert producer.skipped == 2


def test_the_fast_forward_pacer_sleeps_only_in_the_live_part() -> None:
    import importlib
    from datetime import time

    from magic8_dev.local.gateway_component import fast_forward_pacer, fast_forward_session

    module = importlib.import_module("gateway_host.databento.session")
    assert issubclass(fast_forward_session(module, time(17, 0)), module.DatabentoSession)
    slept: list[float] = []
    clock = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    pacer = fast_forward_pacer(module, time(17, 0))(
        speed=60.0, max_idle_seconds=100.0, clock=lambda: clock[0], sleep=sleep
    )
    base = int(datetime(2025, 9, 24, tzinfo=UTC).timestamp()) * 1_000_000_000
    minute = 60 * 1_000_000_000
    for m in range(0, 16 * 60, 30):  # the morning: read at full speed
        pacer.wait_until(base + m * minute)
    assert slept == []
    pacer.wait_until(base + 17 * 60 * minute)  # the first live record anchors
    pacer.wait_until(base + (17 * 60 + 1) * minute)  # one minute later: 1 s at 60x
    assert 0.99 <= sum(slept) <= 1.01
