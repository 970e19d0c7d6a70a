"""Outbox: the bounded hand-off of closed windows from the feed threads to the sender thread.

Producers (the databento callback thread, the pump, replay, backfill) `put` batches of
windows; the one sender thread `take`s everything that is there. `put` waits while
`max_windows` are queued (backpressure on the feed) unless `should_wait()` says not to
(stopping, or no consumer), so intake can always finish. `close()` tells the sender to
deliver what is left and exit; after that the sender is the only one that ever touches
the producer, and the thread calling flush() only waits for it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    def __init__(self, max_items: int, should_wait: Callable[[], bool] = lambda: True) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.max_items = max_items
        self.should_wait = should_wait
        self._batches: deque[list[T]] = deque()
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        self.max_seen = 0
        self.max_batch = 0
        self.waits = 0

    def __len__(self) -> int:
        return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, items: list[T]) -> None:
        if not items:
            return
        with self._cond:
            while self._count >= self.max_items and not self._closed and self.should_wait():
                self.waits += 1
                self._cond.wait(0.1)  # re-checks should_wait (stop) at least 10x a second
            self._batches.append(items)
            self._count += len(items)
            self.max_seen = max(self.max_seen, self._count)
            self.max_batch = max(self.max_batch, len(items))
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[list[T], bool]:
        """Everything queued (waits up to `timeout` for something), and whether closed."""
        with self._cond:
            if not self._batches and not self._closed:
                self._cond.wait(timeout)
            out = [x for batch in self._batches for x in batch]
            self._batches.clear()
            self._count = 0
            self._cond.notify_all()
            return out, self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
