"""Waits that depend on progress, not on wall-clock budgets.

A busy machine makes a pipeline slower, not stuck: a wait fails only when the watched
counters stop moving for `stall_s` seconds (pytest-timeout stays the outer bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(
    done: Callable[[], bool],
    progress: Callable[[], object],
    what: str,
    stall_s: float = 60.0,
    describe: Callable[[], str] = lambda: "",
    poll_s: float = 0.5,
) -> float:
    """Seconds until done() held; fails when progress() has not changed for stall_s."""
    started = last_change = time.monotonic()
    last = progress()
    while not done():
        time.sleep(poll_s)
        now, current = time.monotonic(), progress()
        if current != last:
            last, last_change = current, now
        elif now - last_change > stall_s:
            pytest.fail(f"no progress towards {what} for {stall_s:.0f} s: {last!r}\n{describe()}")
    return time.monotonic() - started
