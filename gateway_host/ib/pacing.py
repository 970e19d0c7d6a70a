"""Historical-data pacing for Interactive Brokers (pure: no ib_async, no I/O).

IBKR rejects historical requests with error 162 ("pacing violation") when a client makes
more than 60 requests in any 10 minutes, repeats an identical request within 15 seconds,
makes six or more requests for one contract within 2 seconds, or has more than 50 open
requests. ib_async throttles *messages* (50/s) but not these. HistoricalPacingGuard sits
between every consumer and the upstream call:

- admission: a request is sent upstream only when all four limits allow it; otherwise it
  waits (on an injectable clock) until they do;
- coalescing: N concurrent consumers asking for the same key share one in-flight request;
- caching: a result is served from memory for `cache_ttl` seconds, so N consumers asking
  the same thing within the TTL cost one upstream request;
- 162: the fetch raises PacingViolation; the guard blocks all requests for an exponential
  backoff and retries.

Usage::

    guard = HistoricalPacingGuard()
    bars = await guard.request(("SPX", "1 D", "5 mins"), "SPX", lambda: fetch_bars(...))

A SimulatedClock lets tests run ten simulated minutes instantly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock (time.monotonic + asyncio.sleep)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock:
    """Virtual time for tests: time advances only when every task is waiting on it.

    Call `start()` inside the running loop (or use `async with clock.running()`). A
    background task lets ready tasks run, then jumps virtual time to the earliest sleeper.
    While `freeze()` contexts are open (real I/O in flight), time does not advance.
    """

    def __init__(self, start: float = 0.0, settle_iterations: int = 30) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._frozen = 0
        self._settle = settle_iterations
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), fut))
        await fut

    @asynccontextmanager
    async def freeze(self) -> AsyncIterator[None]:
        self._frozen += 1
        try:
            yield
        finally:
            self._frozen -= 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drive())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SimulatedClock]:
        self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def _drive(self) -> None:
        while True:
            for _ in range(self._settle):
                await asyncio.sleep(0)
            if self._frozen:
                await asyncio.sleep(0.0005)  # real I/O in flight: let it land
                continue
            # drop sleepers whose waiter was cancelled
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                await asyncio.sleep(0.0005)
                continue
            wake_at = self._sleepers[0][0]
            self._now = max(self._now, wake_at)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)


class PacingViolation(Exception):
    """Raised by a fetch when the upstream answered 162 (historical pacing violation)."""


@dataclass(frozen=True)
class PacingLimits:
    max_requests: int = 60
    window_seconds: float = 600.0
    identical_min_interval: float = 15.0
    # IB: "six or more requests for the same contract, exchange and tick type within two
    # seconds" is a violation, so at most 5 go out in any 2 s for one contract
    per_contract_max: int = 5
    per_contract_window: float = 2.0
    max_open: int = 50
    # small margin so clock skew between us and IB never tips a request over a limit
    safety_margin: float = 0.25
    cache_ttl: float = 60.0
    cache_max_entries: int = 2048
    violation_backoff: float = 15.0
    violation_backoff_max: float = 600.0
    max_violation_retries: int = 5


@dataclass
class _CacheEntry(Generic[T]):
    value: T
    stored_at: float


@dataclass
class PacingStats:
    consumer_requests: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    upstream_requests: int = 0
    violations: int = 0
    failures: int = 0
    sent_times: list[float] = field(default_factory=list)


class HistoricalPacingGuard(Generic[T]):
    """Admission control + coalescing + cache for IB historical requests (see module doc)."""

    def __init__(self, limits: PacingLimits | None = None, clock: Clock | None = None) -> None:
        self.limits = limits or PacingLimits()
        self.clock: Clock = clock or MonotonicClock()
        self.stats = PacingStats()
        self._sent: deque[float] = deque()
        self._last_identical: dict[Hashable, float] = {}
        self._per_contract: dict[Hashable, deque[float]] = {}
        self._open = 0
        self._blocked_until = 0.0
        self._consecutive_violations = 0
        self._cache: dict[Hashable, _CacheEntry[T]] = {}
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}
        self._open_changed: asyncio.Event | None = None
        self.keep_sent_history = True

    # ---------------------------------------------------------------- public API

    async def request(
        self,
        key: Hashable,
        contract_key: Hashable,
        fetch: Callable[[], Awaitable[T]],
        *,
        max_age: float | None = None,
    ) -> T:
        """Result for `key`: from cache, from a shared in-flight request, or upstream.

        max_age overrides the cache TTL for this call (0 = never serve from cache, but still
        coalesce with an in-flight request).
        """
        self.stats.consumer_requests += 1
        ttl = self.limits.cache_ttl if max_age is None else max_age
        entry = self._cache.get(key)
        if entry is not None and self.clock.now() - entry.stored_at <= ttl and ttl > 0:
            self.stats.cache_hits += 1
            return entry.value
        inflight = self._inflight.get(key)
        if inflight is not None:
            self.stats.coalesced += 1
            return await asyncio.shield(inflight)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._run(key, contract_key, fetch)
        except BaseException as exc:
            if not fut.done():
                if isinstance(exc, asyncio.CancelledError):
                    fut.cancel()
                else:
                    fut.set_exception(exc)
                    fut.exception()  # mark retrieved: coalesced waiters may be absent
            raise
        else:
            self._store(key, value)
            fut.set_result(value)
            return value
        finally:
            self._inflight.pop(key, None)

    def invalidate(self, key: Hashable | None = None) -> None:
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def requests_in_window(self, now: float | None = None) -> int:
        now = self.clock.now() if now is None else now
        self._prune(now)
        return len(self._sent)

    def usage(self) -> dict[str, Any]:
        """Facts for the heartbeat."""
        now = self.clock.now()
        return {
            "requests_in_window": self.requests_in_window(now),
            "limit": self.limits.max_requests,
            "window_seconds": self.limits.window_seconds,
            "open_requests": self._open,
            "upstream_total": self.stats.upstream_requests,
            "consumer_total": self.stats.consumer_requests,
            "cache_hits": self.stats.cache_hits,
            "coalesced": self.stats.coalesced,
            "violations": self.stats.violations,
            "blocked_for_s": round(max(0.0, self._blocked_until - now), 3),
        }

    def note_violation(self) -> None:
        """A 162 seen outside a guarded fetch: block everything for a backoff."""
        self._on_violation()

    # ---------------------------------------------------------------- internals

    async def _run(
        self, key: Hashable, contract_key: Hashable, fetch: Callable[[], Awaitable[T]]
    ) -> T:
        attempts = 0
        while True:
            await self._admit(key, contract_key)
            try:
                value = await fetch()
            except PacingViolation:
                self._release()
                self._on_violation()
                attempts += 1
                if attempts > self.limits.max_violation_retries:
                    self.stats.failures += 1
                    raise
                continue
            except BaseException:
                self._release()
                self.stats.failures += 1
                raise
            self._release()
            self._consecutive_violations = 0
            return value

    def _on_violation(self) -> None:
        self.stats.violations += 1
        self._consecutive_violations += 1
        backoff = min(
            self.limits.violation_backoff_max,
            self.limits.violation_backoff * 2 ** (self._consecutive_violations - 1),
        )
        self._blocked_until = max(self._blocked_until, self.clock.now() + backoff)

    def _prune(self, now: float) -> None:
        horizon = now - self.limits.window_seconds - self.limits.safety_margin
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def _earliest(self, key: Hashable, contract_key: Hashable, now: float) -> float:
        lim = self.limits
        margin = lim.safety_margin
        self._prune(now)
        t = max(now, self._blocked_until)
        if len(self._sent) >= lim.max_requests:
            t = max(t, self._sent[-lim.max_requests] + lim.window_seconds + margin)
        last = self._last_identical.get(key)
        if last is not None:
            t = max(t, last + lim.identical_min_interval + margin)
        recent = self._per_contract.get(contract_key)
        if recent is not None:
            while recent and recent[0] <= now - lim.per_contract_window - margin:
                recent.popleft()
            if len(recent) >= lim.per_contract_max:
                t = max(t, recent[-lim.per_contract_max] + lim.per_contract_window + margin)
        return t

    async def _admit(self, key: Hashable, contract_key: Hashable) -> None:
        while True:
            if self._open >= self.limits.max_open:
                if self._open_changed is None:
                    self._open_changed = asyncio.Event()
                self._open_changed.clear()
                await self._open_changed.wait()
                continue
            now = self.clock.now()
            ready_at = self._earliest(key, contract_key, now)
            if ready_at <= now:
                break
            await self.clock.sleep(ready_at - now)
        # reserve: no await between the check above and these updates
        now = self.clock.now()
        self._sent.append(now)
        self._last_identical[key] = now
        self._per_contract.setdefault(contract_key, deque()).append(now)
        self._open += 1
        self.stats.upstream_requests += 1
        if self.keep_sent_history:
            self.stats.sent_times.append(now)
        self._forget_old_identical(now)

    def _release(self) -> None:
        self._open -= 1
        if self._open_changed is not None:
            self._open_changed.set()

    def _forget_old_identical(self, now: float) -> None:
        if len(self._last_identical) > 4 * self.limits.cache_max_entries:
            horizon = now - self.limits.identical_min_interval - self.limits.safety_margin
            self._last_identical = {k: t for k, t in self._last_identical.items() if t > horizon}

    def _store(self, key: Hashable, value: T) -> None:
        now = self.clock.now()
        self._cache[key] = _CacheEntry(value, now)
        if len(self._cache) > self.limits.cache_max_entries:
            oldest = sorted(self._cache.items(), key=lambda kv: kv[1].stored_at)
            for k, _ in oldest[: len(self._cache) - self.limits.cache_max_entries]:
                self._cache.pop(k, None)


def max_in_any_window(times: list[float], window: float) -> int:
    """Largest number of timestamps inside any half-open window of `window` seconds."""
    ordered = sorted(times)
    best = 0
    lo = 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
