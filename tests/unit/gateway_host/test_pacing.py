"""HistoricalPacingGuard on a simulated clock: IB's historical pacing rules never broken."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from collections.abc import Hashable

import pytest

from gateway_host.ib.pacing import (
    HistoricalPacingGuard,
    PacingLimits,
    PacingViolation,
    SimulatedClock,
    max_in_any_window,
)


class StrictUpstream:
    """Plays IB's historical-data server: answers 162 when a pacing rule is broken."""

    def __init__(self, clock: SimulatedClock, latency: float = 0.4) -> None:
        self.clock = clock
        self.latency = latency
        self.sent: list[tuple[float, Hashable, Hashable]] = []
        self.violations = 0
        self.open = 0
        self.max_open_seen = 0
        self.fail_next = 0

    def check(self, now: float, key: Hashable, contract: Hashable) -> bool:
        window = [t for t, _, _ in self.sent if t > now - 600]
        if len(window) >= 60:
            return False
        if any(k == key and t > now - 15 for t, k, _ in self.sent):
            return False
        same = [t for t, _, c in self.sent if c == contract and t > now - 2]
        return len(same) < 5 and self.open < 50  # six or more within 2 s -> 162

    async def fetch(self, key: Hashable, contract: Hashable) -> str:
        now = self.clock.now()
        ok = self.check(now, key, contract)
        self.sent.append((now, key, contract))
        if not ok or self.fail_next:
            self.fail_next = max(0, self.fail_next - 1)
            self.violations += 0 if ok else 1
            raise PacingViolation("162")
        self.open += 1
        self.max_open_seen = max(self.max_open_seen, self.open)
        try:
            await self.clock.sleep(self.latency)
        finally:
            self.open -= 1
        return f"bars:{key}"


def run_sim(coro_factory):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        clock = SimulatedClock()
        async with clock.running():
            return await coro_factory(clock)

    return asyncio.run(main())


def test_500_requests_from_10_consumers_respect_every_ib_limit() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock)
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(clock=clock)
        symbols = ["SPX", "NDX", "RUT", "VIX", "XSP", "SPY", "QQQ"]
        results: list[tuple[Hashable, str]] = []

        async def consumer(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(50):
                sym = rng.choice(symbols)
                key = (sym, "1800 S", rng.randrange(10))  # 70 distinct requests
                value = await guard.request(key, sym, lambda k=key, s=sym: upstream.fetch(k, s))
                results.append((key, value))
                await clock.sleep(rng.uniform(0, 20))

        await asyncio.gather(*(consumer(i) for i in range(10)))
        return upstream, guard, results, clock.now()

    upstream, guard, results, elapsed = run_sim(scenario)
    times = [t for t, _, _ in upstream.sent]
    assert len(results) == 500
    assert all(value == f"bars:{key}" for key, value in results)
    assert upstream.violations == 0  # no 162
    assert max_in_any_window(times, 600) <= 60
    by_key: dict[Hashable, list[float]] = defaultdict(list)
    by_contract: dict[Hashable, list[float]] = defaultdict(list)
    for t, key, contract in upstream.sent:
        by_key[key].append(t)
        by_contract[contract].append(t)
    for ts in by_key.values():
        ts.sort()
        assert all(b - a >= 15 for a, b in itertools.pairwise(ts))
    for ts in by_contract.values():
        assert max_in_any_window(ts, 2) <= 5
    # coalescing + cache did real work: far fewer upstream requests than consumer requests
    assert guard.stats.consumer_requests == 500
    assert len(times) == guard.stats.upstream_requests < 500
    assert guard.stats.cache_hits + guard.stats.coalesced == 500 - len(times)
    # and the run needed more than one 10-minute window, so the window limit was exercised
    assert elapsed > 600


def test_concurrent_identical_requests_are_coalesced_then_cached() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=3.0)
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(clock=clock)
        first = await asyncio.gather(
            *(guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX")) for _ in range(10))
        )
        await clock.sleep(30)
        second = await guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX"))
        return upstream, guard, first, second

    upstream, guard, first, second = run_sim(scenario)
    assert first == ["bars:k"] * 10 and second == "bars:k"
    assert len(upstream.sent) == 1
    assert guard.stats.coalesced == 9 and guard.stats.cache_hits == 1


def test_identical_request_waits_15_seconds_when_not_cached() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=0.1)
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(clock=clock)
        await guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX"), max_age=0)
        await guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX"), max_age=0)
        return upstream

    upstream = run_sim(scenario)
    (t1, _, _), (t2, _, _) = upstream.sent
    assert t2 - t1 >= 15
    assert upstream.violations == 0


def test_per_contract_burst_is_spread_over_2_seconds() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=0.01)
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(clock=clock)
        await asyncio.gather(
            *(
                guard.request(i, "SPX", lambda i=i: upstream.fetch(i, "SPX"))  # type: ignore[misc]
                for i in range(20)
            )
        )
        return upstream

    upstream = run_sim(scenario)
    times = [t for t, _, _ in upstream.sent]
    assert len(times) == 20
    assert max_in_any_window(times, 2) <= 5
    assert upstream.violations == 0


def test_open_requests_capped() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=5.0)
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(
            PacingLimits(max_open=3), clock=clock
        )
        await asyncio.gather(
            *(
                guard.request(i, f"C{i}", lambda i=i: upstream.fetch(i, f"C{i}"))  # type: ignore[misc]
                for i in range(12)
            )
        )
        return upstream

    upstream = run_sim(scenario)
    assert upstream.max_open_seen == 3
    assert len(upstream.sent) == 12


def test_162_backs_off_then_retries() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=0.1)
        upstream.fail_next = 2
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(
            PacingLimits(violation_backoff=10.0), clock=clock
        )
        value = await guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX"))
        return upstream, guard, value

    upstream, guard, value = run_sim(scenario)
    assert value == "bars:k"
    assert guard.stats.violations == 2
    t = [s[0] for s in upstream.sent]
    # first retry after >= 15 s (identical rule dominates the 10 s backoff), then >= 20 s
    assert t[1] - t[0] >= 15 and t[2] - t[1] >= 20
    assert guard.usage()["violations"] == 2


def test_162_gives_up_after_max_retries() -> None:
    async def scenario(clock: SimulatedClock):  # type: ignore[no-untyped-def]
        upstream = StrictUpstream(clock, latency=0.1)
        upstream.fail_next = 100
        guard: HistoricalPacingGuard[str] = HistoricalPacingGuard(
            PacingLimits(max_violation_retries=2, violation_backoff=1.0), clock=clock
        )
        with pytest.raises(PacingViolation):
            await guard.request("k", "SPX", lambda: upstream.fetch("k", "SPX"))
        return upstream

    upstream = run_sim(scenario)
    assert len(upstream.sent) == 3


def test_max_in_any_window() -> None:
    assert max_in_any_window([0, 1, 2, 600, 601], 600) == 3
    assert max_in_any_window([], 10) == 0
