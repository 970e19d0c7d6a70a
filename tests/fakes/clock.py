"""A clock the test moves by hand: set or advance `now`; pass the instance where code
takes a `Callable[[], float]` monotonic clock."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
