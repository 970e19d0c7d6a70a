"""The one lazy-wiring helper of every entry point.

A Lambda handler module must not read its environment or create clients at import time,
yet warm invocations should reuse what the first one built. `Lazy(build)` calls `build`
once, on first use, under a lock (the local runtime calls handlers from several threads),
and `reset()` forgets it (a test that changes the environment, or the local runtime
starting a function cold).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False

    def __call__(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self._build()
                    self._built = True
        return self._value  # type: ignore[return-value]

    @property
    def built(self) -> bool:
        return self._built

    def reset(self) -> None:
        with self._lock:
            self._value = None
            self._built = False
