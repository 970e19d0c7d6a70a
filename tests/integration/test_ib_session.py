"""IbSession with an unmodified ib_async against the fake TWS, writing to moto DynamoDB."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from ib_async import IB

from gateway_host.ib import IbSession, IbSessionConfig
from gateway_host.ib.pacing import (
    HistoricalPacingGuard,
    PacingLimits,
    SimulatedClock,
    max_in_any_window,
)
from magic8.adapters.aws import resource
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar, MarketSnapshot
from magic8.market_hours import ET, MarketHoursPolicy
from magic8_dev.local.provision import LocalResources
from tests.fakes.fake_tws import FakeTws

pytestmark = pytest.mark.xdist_group("ib_gateway")

T = TypeVar("T")

SYMBOLS = ("SPX", "NDX", "RUT", "VIX", "XSP", "SPY", "QQQ")


def market_repository(table_name: str) -> Any:
    """The ML engineer's DynamoMarketRepository when present, else the documented item form."""
    try:
        from magic8.adapters.market_dynamo import DynamoMarketRepository  # type: ignore

        return DynamoMarketRepository(table_name)
    except ImportError:
        return _DocumentedFormRepository(table_name)


class _DocumentedFormRepository:
    """Writes the item form documented on MarketSnapshot (used until the adapter lands)."""

    def __init__(self, table_name: str) -> None:
        self.table = resource("dynamodb").Table(table_name)

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None:
        from decimal import Decimal

        ts = int(snapshot.updated_at.timestamp())
        item: dict[str, Any] = {
            "symbol": snapshot.symbol,
            "last": Decimal(repr(snapshot.last)),
            "bars_json": json.dumps(
                [[b.ts, b.open, b.high, b.low, b.close, b.volume] for b in snapshot.bars]
            ),
            "updated_at": snapshot.updated_at.isoformat(),
            "updated_ts": ts,
            "source": snapshot.source,
            "expires_at": ts + ttl_seconds,
        }
        if snapshot.bid is not None:
            item["bid"] = Decimal(repr(snapshot.bid))
        if snapshot.ask is not None:
            item["ask"] = Decimal(repr(snapshot.ask))
        self.table.put_item(Item=item)

    def get_snapshots(self, symbols: Any) -> dict[str, MarketSnapshot]:
        raise NotImplementedError


def read_items(table_name: str) -> dict[str, dict[str, Any]]:
    items = resource("dynamodb").Table(table_name).scan()["Items"]
    return {i["symbol"]: i for i in items}


def item_updated(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["updated_at"]))


def item_bars(item: dict[str, Any]) -> list[Any]:
    raw = item.get("bars_json") or item.get("bars")
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


async def until(
    pred: Callable[[], Awaitable[bool] | bool], timeout: float, step: float = 0.05
) -> float:
    start = time.monotonic()
    while True:
        res = pred()
        if asyncio.iscoroutine(res) or isinstance(res, Awaitable):
            res = await res  # type: ignore[misc]
        if res:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


def fast_config(port: int, **kw: Any) -> IbSessionConfig:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": 21,
        "hours_policy": "always",
        "snapshot_interval_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "connect_timeout_s": 2.0,
        "connectivity_grace_s": 0.5,
        "history_refresh_s": 3600,
    }
    base.update(kw)
    return IbSessionConfig(**base)


def fast_guard() -> HistoricalPacingGuard[tuple[Bar, ...]]:
    # real IB limits except the retry backoff, so a 162 retry happens quickly in tests
    return HistoricalPacingGuard(PacingLimits(violation_backoff=0.2))


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def started(table: str, tws: FakeTws, **kw: Any) -> IbSession:
    guard = kw.pop("guard", None) or fast_guard()
    session = IbSession(fast_config(tws.port, **kw), market_repository(table), guard=guard)
    await session.start()
    return session


def test_connect_history_and_ticks_become_snapshots(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[dict[str, dict[str, Any]], IbSession, FakeTws]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        session = await started(table, tws)
        try:
            await until(lambda: session.state == "connected", 5)

            async def all_written() -> bool:
                items = await asyncio.to_thread(read_items, table)
                return set(items) == set(SYMBOLS) and all(
                    len(item_bars(i)) == SNAPSHOT_BAR_WINDOW for i in items.values()
                )

            await until(all_written, 8)
            items = await asyncio.to_thread(read_items, table)
        finally:
            await session.stop()
            await tws.stop()
        return items, session, tws

    items, session, tws = run(scenario())
    now = time.time()
    for sym, item in items.items():
        bars = item_bars(item)
        assert len(bars) == SNAPSHOT_BAR_WINDOW
        assert [b[0] for b in bars] == sorted(b[0] for b in bars)
        assert now - bars[-1][0] < 600  # the bar in progress is there
        assert float(item["last"]) > 0
        assert item["source"] == "gateway"
        assert int(item["expires_at"]) > now
        if sym in ("SPY", "QQQ"):
            assert float(item["bid"]) < float(item["ask"])
    # one initial history request per symbol, all with IB's contract identity
    assert sorted(r.symbol for r in tws.historical_requests) == sorted(SYMBOLS)
    assert {(r.symbol, r.sec_type, r.exchange) for r in tws.historical_requests} >= {
        ("SPX", "IND", "CBOE"),
        ("NDX", "IND", "NASDAQ"),
        ("RUT", "IND", "RUSSELL"),
        ("SPY", "STK", "SMART"),
    }
    assert all(r.bar_size == "5 mins" and r.format_date == 2 for r in tws.historical_requests)
    assert tws.pacing_violations == 0
    assert session.health()["pacing"]["upstream_total"] == 7


def test_162_is_backed_off_and_retried(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[IbSession, FakeTws]:
        tws = FakeTws()
        await tws.start()
        tws.fail_next_historical(2)
        guard: HistoricalPacingGuard[tuple[Bar, ...]] = HistoricalPacingGuard(
            PacingLimits(violation_backoff=0.2, identical_min_interval=0.5)
        )
        session = await started(table, tws, symbols=IbSessionConfig().symbols[:1], guard=guard)
        try:
            await until(lambda: session.symbols["SPX"].history_loaded, 40)
        finally:
            await session.stop()
            await tws.stop()
        return session, tws

    session, tws = run(scenario())
    reqs = tws.historical_requests
    assert [r.rejected for r in reqs] == [True, True, False]
    # retries wait for both the identical-request interval and the doubling 162 backoff
    assert reqs[1].at - reqs[0].at >= 0.5 and reqs[2].at - reqs[1].at >= 0.5
    assert session.guard.stats.violations == 2
    assert session.errors_seen.get(162) == 2
    assert len(session.symbols["SPX"].bars) > 0


def test_acceptance_10_forced_disconnects_reconnect_resubscribe_and_resume(
    aws_resources: LocalResources,
) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[list[float], IbSession, FakeTws]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        session = await started(table, tws)
        resumed: list[float] = []
        try:
            await until(lambda: tws.active_subscriptions == len(SYMBOLS), 5)
            for _ in range(10):
                starts_before = tws.api_starts
                t0 = datetime.now(UTC)
                m0 = time.monotonic()
                tws.disconnect_all()

                async def fresh(t0: datetime = t0) -> bool:
                    items = await asyncio.to_thread(read_items, table)
                    return (
                        len(items) == len(SYMBOLS)
                        and all(item_updated(i) > t0 for i in items.values())
                        and tws.active_subscriptions == len(SYMBOLS)
                    )

                await until(fresh, 10)
                resumed.append(time.monotonic() - m0)
                assert tws.api_starts == starts_before + 1
        finally:
            await session.stop()
            await tws.stop()
        return resumed, session, tws

    resumed, session, tws = run(scenario())
    print(
        f"\nreconnect->snapshots resumed: max {max(resumed):.3f}s, "
        f"mean {statistics.mean(resumed):.3f}s over {len(resumed)} disconnects"
    )
    assert len(resumed) == 10 and max(resumed) < 10.0
    assert session.reconnects == 10 and session.disconnects == 10
    assert session.connects == 11
    assert session.resubscriptions >= 11
    # every reconnection resubscribed all 7 symbols
    per_symbol: dict[str, int] = defaultdict(int)
    for _, _, sym in tws.mkt_requests:
        per_symbol[sym] += 1
    assert all(per_symbol[s] >= 11 for s in SYMBOLS)
    # history after reconnect came from the guard's cache, not 70 more upstream requests
    assert len(tws.historical_requests) <= 14
    assert tws.pacing_violations == 0


def test_326_moves_to_a_new_client_id(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[IbSession, FakeTws]:
        tws = FakeTws()
        await tws.start()
        squatter = IB()
        await squatter.connectAsync("127.0.0.1", tws.port, 21, timeout=3, readonly=True)
        session = await started(table, tws)
        try:
            await until(lambda: session.state == "connected", 8)
        finally:
            await session.stop()
            squatter.disconnect()
            await tws.stop()
        return session, tws

    session, tws = run(scenario())
    assert session.client_id == 22
    assert session.client_id_changes == 1
    assert tws.client_ids_seen[:3] == [21, 21, 22]
    assert session.errors_seen.get(326) == 1


def test_1101_and_farm_recovery_resubscribe(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[IbSession, FakeTws, list[int]]:
        tws = FakeTws(tick_interval=0.05)
        await tws.start()
        session = await started(table, tws)
        subs: list[int] = []
        try:
            await until(lambda: tws.active_subscriptions == 7, 5)
            # 1100 then 1101 (data lost): server forgot the subscriptions
            tws.connectivity_lost()
            await until(lambda: session.state == "degraded", 2)
            tws.restore(data_lost=True)
            await until(lambda: tws.active_subscriptions == 7, 3)
            subs.append(session.resubscriptions)
            # farm broken (2103) drops market data; farm OK (2104) -> resubscribe
            tws.farm_broken()
            await until(lambda: session.state == "degraded", 2)
            tws.farm_ok()
            await until(lambda: tws.active_subscriptions == 7 and session.state == "connected", 3)
            subs.append(session.resubscriptions)
            # 1100 then 1102 (data maintained): resubscribed anyway
            tws.connectivity_lost()
            await until(lambda: session.state == "degraded", 2)
            tws.restore(data_lost=False)
            await until(lambda: session.resubscriptions == 4 and session.state == "connected", 3)
            subs.append(session.resubscriptions)
            # HMDS farm broken (2105) then OK (2106): bars reloaded through the guard
            asked = session.guard.stats.consumer_requests
            tws.error(2105, "HMDS data farm connection is broken:ushmds")
            await until(lambda: session.state == "degraded", 2)
            tws.error(2106, "HMDS data farm connection is OK:ushmds")
            await until(lambda: session.guard.stats.consumer_requests == asked + 7, 3)
            q0 = session.last_quote_at
            await until(lambda: session.last_quote_at != q0, 2)
        finally:
            await session.stop()
            await tws.stop()
        return session, tws, subs

    session, _tws, subs = run(scenario())
    assert subs == [2, 3, 4]  # connect, 1101, 2104-after-2103, 1102
    assert session.connects == 1  # recovered without reconnecting the socket
    assert session.errors_seen[1100] == 2 and session.errors_seen[1101] == 1
    assert session.errors_seen[1102] == 1 and session.errors_seen[2105] == 1
    assert session.state == "stopped"


def test_1100_without_restore_forces_reconnect(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> IbSession:
        tws = FakeTws()
        await tws.start()
        session = await started(table, tws, connectivity_grace_s=0.3)
        try:
            await until(lambda: session.state == "connected", 5)
            tws.connectivity_lost()
            await until(lambda: session.connects == 2, 5)
        finally:
            await session.stop()
            await tws.stop()
        return session

    session = run(scenario())
    assert session.reconnects == 1


def test_no_requests_outside_market_hours(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=ET)

    async def scenario() -> tuple[IbSession, FakeTws]:
        tws = FakeTws()
        await tws.start()
        cfg = fast_config(tws.port, hours_policy="rth", idle_poll_s=0.05)
        session = IbSession(
            cfg,
            market_repository(table),
            clock=lambda: saturday,
            hours=MarketHoursPolicy("rth", clock=lambda: saturday),
        )
        await session.start()
        try:
            await asyncio.sleep(0.5)
        finally:
            await session.stop()
            await tws.stop()
        return session, tws

    session, tws = run(scenario())
    assert tws.handshakes == 0 and tws.historical_requests == []
    assert session.connects == 0


class _FreezingGuard(HistoricalPacingGuard[tuple[Bar, ...]]):
    """Holds simulated time still while a real socket round trip is in flight."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(clock=clock)
        self.sim = clock

    async def request(  # type: ignore[override]
        self,
        key: Hashable,
        contract_key: Hashable,
        fetch: Callable[[], Awaitable[tuple[Bar, ...]]],
        *,
        max_age: float | None = None,
    ) -> tuple[Bar, ...]:
        async def frozen() -> tuple[Bar, ...]:
            async with self.sim.freeze():
                return await fetch()

        return await super().request(key, contract_key, frozen, max_age=max_age)


def test_acceptance_500_requests_from_10_consumers_against_fake_tws(
    aws_resources: LocalResources,
) -> None:
    table = aws_resources.settings.market_table

    async def scenario() -> tuple[FakeTws, IbSession, int]:
        sim = SimulatedClock()
        tws = FakeTws(clock=sim.now, tick_interval=0.2)
        await tws.start()
        guard = _FreezingGuard(sim)
        session = await started(table, tws, guard=guard)
        served = 0
        try:
            await until(lambda: all(s.history_loaded for s in session.symbols.values()), 10)
            async with sim.running():

                async def consumer(seed: int) -> None:
                    nonlocal served
                    rng = random.Random(seed)
                    for _ in range(50):
                        sym = rng.choice(SYMBOLS)
                        bars = await session.history(sym, f"{rng.randrange(1, 11) * 1800} S")
                        served += bool(bars)
                        await sim.sleep(rng.uniform(0, 20))

                await asyncio.gather(*(consumer(i) for i in range(10)))
        finally:
            await session.stop()
            await tws.stop()
        return tws, session, served

    tws, _session, served = run(scenario())
    times = [r.at for r in tws.historical_requests]
    print(
        f"\n500 consumer requests -> {len(times)} upstream; max in any 10 min: "
        f"{max_in_any_window(times, 600)}; 162s: {tws.pacing_violations}"
    )
    assert served == 500
    assert tws.pacing_violations == 0
    assert max_in_any_window(times, 600) <= 60
    assert len(times) < 500
    by_identity: dict[tuple[str, ...], list[float]] = defaultdict(list)
    by_symbol: dict[str, list[float]] = defaultdict(list)
    for r in tws.historical_requests:
        by_identity[r.identity].append(r.at)
        by_symbol[r.symbol].append(r.at)
    for ts in by_identity.values():
        assert all(b - a >= 15 for a, b in itertools.pairwise(sorted(ts)))
    for ts in by_symbol.values():
        assert max_in_any_window(ts, 2) <= 5
