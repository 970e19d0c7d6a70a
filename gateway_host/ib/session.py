"""IbSession: the one Interactive Brokers session of magic8 (ib_async, unmodified).

What it does, in order:
- connects to IB Gateway/TWS (host, port, client id); a 326 ("client id in use") moves to
  the next client id at once; any other failure, a disconnect, or a 1100 that is not
  followed by 1101/1102 within `connectivity_grace_s` reconnects with exponential
  backoff + jitter;
- qualifies the configured contracts once (conIds never change), subscribes quotes with
  reqMktData, loads 5-minute bars with reqHistoricalData through the HistoricalPacingGuard
  (initial history, then a short refresh every `history_refresh_s`), and keeps the bar in
  progress up to date from the quotes in between;
- resubscribes on 1101 (data lost), 1102, and on farm-OK (2104/2106) after farm-broken
  (2103/2105);
- writes one MarketSnapshot per symbol through a MarketDataRepository every
  `snapshot_interval_s` when something changed;
- makes no request outside market hours unless `hours_policy="always"`.

Other consumers of historical bars call `await session.history(symbol, duration)`: they go
through the same pacing guard, so N consumers asking the same thing cost one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from ib_async import IB, Contract
from ib_async.ib import StartupFetchNONE

from gateway_host.ib import errors
from gateway_host.ib.config import IbSessionConfig
from gateway_host.ib.errors import ClientIdInUse, HistoricalDataError
from gateway_host.ib.pacing import HistoricalPacingGuard, PacingLimits, PacingViolation
from gateway_host.ib.snapshots import SymbolState, finite_price
from magic8.domain.market import Bar
from magic8.domain.ports import MarketDataRepository
from magic8.market_hours import MarketHoursPolicy

log = logging.getLogger("magic8.gateway.ib")

SessionState = Literal["stopped", "idle", "connecting", "connected", "degraded", "backoff"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IbSession:
    def __init__(
        self,
        config: IbSessionConfig,
        repository: MarketDataRepository,
        *,
        guard: HistoricalPacingGuard[tuple[Bar, ...]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        hours: MarketHoursPolicy | None = None,
        ib_factory: Callable[[], IB] = IB,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.repository = repository
        self.guard: HistoricalPacingGuard[tuple[Bar, ...]] = guard or HistoricalPacingGuard(
            PacingLimits(cache_ttl=config.history_cache_ttl_s)
        )
        self.clock = clock
        self.hours = hours or MarketHoursPolicy(config.hours_policy, clock=clock)
        self.ib_factory = ib_factory
        self.rng = rng or random.Random()
        self.symbols = {s.symbol: SymbolState(s) for s in config.symbols}
        self.by_con_id: dict[int, SymbolState] = {}
        self.ib: IB | None = None
        self.client_id = config.client_id
        self.state: SessionState = "stopped"
        # counters for health/heartbeat and tests
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.resubscriptions = 0
        self.client_id_changes = 0
        self.snapshots_written = 0
        self.snapshot_errors = 0
        self.errors_seen: dict[int, int] = {}
        self.last_error: str = ""
        self.last_quote_at: datetime | None = None
        self.last_snapshot_at: datetime | None = None
        self.connected_at: datetime | None = None
        self._hist_errors: dict[int, tuple[int, str]] = {}
        self._broken_farms: set[str] = set()
        self._stopping = asyncio.Event()
        self._lost = asyncio.Event()
        self._client_id_rejected = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._attempt = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping.clear()
        self._main = asyncio.create_task(self._run(), name="ib-session")
        self._writer = asyncio.create_task(self._snapshot_loop(), name="ib-snapshots")

    async def stop(self) -> None:
        self._stopping.set()
        self._lost.set()
        for task in (self._main, self._writer, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._main, self._writer, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._disconnect()
        await self.flush()
        self.state = "stopped"

    async def flush(self) -> None:
        """Write every pending snapshot now."""
        await self._write_snapshots(force=False)

    @property
    def healthy(self) -> bool:
        return self.state in ("connected", "idle")

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "healthy": self.healthy,
            "client_id": self.client_id,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "resubscriptions": self.resubscriptions,
            "last_quote_at": self.last_quote_at.isoformat() if self.last_quote_at else None,
            "last_snapshot_at": (
                self.last_snapshot_at.isoformat() if self.last_snapshot_at else None
            ),
            "broken_farms": sorted(self._broken_farms),
            "last_error": self.last_error,
            "pacing": self.guard.usage(),
        }

    # ------------------------------------------------------------------ consumers

    async def history(
        self, symbol: str, duration: str, *, max_age: float | None = None
    ) -> tuple[Bar, ...]:
        """Bars for `symbol` over `duration` through the pacing guard (coalesced + cached)."""
        st = self.symbols[symbol]
        cfg = self.config
        key = (
            symbol,
            st.spec.sec_type,
            st.spec.exchange,
            "",
            duration,
            cfg.bar_size,
            cfg.what_to_show,
            cfg.use_rth,
        )

        async def fetch() -> tuple[Bar, ...]:
            return await self._fetch_history(st, duration)

        return await self.guard.request(key, symbol, fetch, max_age=max_age)

    # ------------------------------------------------------------------ main loop

    async def _run(self) -> None:
        while not self._stopping.is_set():
            wait = self.hours.seconds_until_active()
            if wait > 0:
                self.state = "idle"
                self._disconnect()
                await self._sleep(min(wait, self.config.idle_poll_s))
                continue
            try:
                await self._connect_once()
            except ClientIdInUse:
                self._next_client_id()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, timeout, broken socket
                self.last_error = f"connect: {type(exc).__name__}: {exc}"
                log.warning("IB connect failed (%s)", self.last_error)
                self._disconnect()
                await self._backoff()
                continue
            self._attempt = 0
            await self._serve()
            self._disconnect()
            if self._stopping.is_set():
                break
            if not self.hours.active():
                continue  # market closed: go idle, no reconnect
            self.reconnects += 1
            await self._backoff()

    async def _backoff(self) -> None:
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2**self._attempt))
        delay = base * (1 - cfg.backoff_jitter * self.rng.random())
        self._attempt = min(self._attempt + 1, 30)
        self.state = "backoff"
        log.info("IB reconnect in %.2fs (attempt %d)", delay, self._attempt)
        await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _next_client_id(self) -> None:
        cfg = self.config
        offset = (self.client_id - cfg.client_id + 1) % cfg.client_id_range
        self.client_id = cfg.client_id + offset
        self.client_id_changes += 1
        log.warning("IB client id in use (326): trying client id %d", self.client_id)

    async def _connect_once(self) -> None:
        cfg = self.config
        self.state = "connecting"
        self._lost.clear()
        self._client_id_rejected.clear()
        ib = self.ib_factory()
        self.ib = ib
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.pendingTickersEvent += self._on_tickers
        connect = asyncio.create_task(
            ib.connectAsync(
                cfg.host,
                cfg.port,
                clientId=self.client_id,
                timeout=cfg.connect_timeout_s,
                readonly=True,
                account=cfg.account,
                fetchFields=StartupFetchNONE,
            )
        )
        rejected = asyncio.create_task(self._client_id_rejected.wait())
        try:
            done, _ = await asyncio.wait({connect, rejected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            rejected.cancel()
        if connect not in done:
            connect.cancel()
            with contextlib.suppress(BaseException):
                await connect
            raise ClientIdInUse(str(self.client_id))
        connect.result()
        if self._client_id_rejected.is_set():
            raise ClientIdInUse(str(self.client_id))
        self.connects += 1
        self.connected_at = self.clock()
        log.info(
            "IB connected to %s:%d as client id %d (server version %d)",
            cfg.host,
            cfg.port,
            self.client_id,
            ib.client.serverVersion(),
        )
        if cfg.market_data_type != 1:
            ib.reqMarketDataType(cfg.market_data_type)
        await self._qualify(ib)
        self.state = "connected"
        self._broken_farms.clear()
        self._subscribe(ib, reason="connect")
        self._spawn(self._load_all_history(), "history-connect")

    async def _serve(self) -> None:
        """Run while connected: periodic history refresh; return when the link is lost."""
        refresh = asyncio.create_task(self._refresh_loop())
        try:
            while not self._lost.is_set() and not self._stopping.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), timeout=self.config.idle_poll_s)
                if not self.hours.active():
                    log.info("IB: market closed; pausing requests")
                    break
        finally:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh

    def _disconnect(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
            self._watchdog = None
        ib, self.ib = self.ib, None
        if ib is not None:
            ib.errorEvent -= self._on_error
            ib.disconnectedEvent -= self._on_disconnected
            ib.pendingTickersEvent -= self._on_tickers
            if ib.isConnected():
                ib.disconnect()
        if self.state in ("connected", "degraded"):
            self.state = "backoff"

    async def _qualify(self, ib: IB) -> None:
        missing = [st for st in self.symbols.values() if st.contract is None]
        if not missing:
            return
        result = await ib.qualifyContractsAsync(*(st.spec.contract() for st in missing))
        for st, contract in zip(missing, result, strict=True):
            if isinstance(contract, Contract) and contract.conId:
                st.contract = contract
                self.by_con_id[contract.conId] = st
            else:
                log.error("IB could not qualify %s; it will be skipped", st.spec.symbol)

    def _subscribe(self, ib: IB, reason: str) -> None:
        if not ib.isConnected():
            return
        for st in self.symbols.values():
            if st.contract is None:
                continue
            if ib.ticker(st.contract) is not None:
                with contextlib.suppress(Exception):
                    ib.cancelMktData(st.contract)
            ib.reqMktData(st.contract, "", False, False)
        self.resubscriptions += 1
        log.info("IB market data subscribed (%s)", reason)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ history

    async def _fetch_history(self, st: SymbolState, duration: str) -> tuple[Bar, ...]:
        ib = self.ib
        if ib is None or not ib.isConnected() or st.contract is None:
            raise ConnectionError("IB not connected")
        cfg = self.config
        bars = await ib.reqHistoricalDataAsync(
            st.contract,
            "",
            duration,
            cfg.bar_size,
            cfg.what_to_show,
            cfg.use_rth,
            formatDate=2,
            timeout=cfg.history_timeout_s,
        )
        err = self._hist_errors.pop(bars.reqId, None)
        if err is not None:
            if err[0] in errors.PACING_VIOLATION:
                raise PacingViolation(err[1])
            raise HistoricalDataError(*err)
        out = []
        for b in bars:
            d = b.date
            ts = int(d.timestamp()) if isinstance(d, datetime) else int(time.mktime(d.timetuple()))
            out.append(
                Bar(
                    ts=ts,
                    open=b.open,
                    high=b.high,
                    low=b.low,
                    close=b.close,
                    volume=max(0.0, b.volume),
                )
            )
        return tuple(out)

    async def _load_all_history(self) -> None:
        await asyncio.gather(
            *(self._load_history(st) for st in self.symbols.values() if st.contract is not None)
        )

    async def _load_history(self, st: SymbolState, max_age: float | None = None) -> None:
        duration = (
            self.config.refresh_duration if st.history_loaded else self.config.history_duration
        )
        try:
            bars = await self.history(st.spec.symbol, duration, max_age=max_age)
        except (ConnectionError, HistoricalDataError, PacingViolation) as exc:
            log.warning("IB history for %s failed: %s", st.spec.symbol, exc)
            return
        st.merge_bars(bars)
        st.history_loaded = True

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.history_refresh_s)
            if self.hours.active():
                await asyncio.gather(
                    *(
                        self._load_history(st, max_age=0)
                        for st in self.symbols.values()
                        if st.contract is not None
                    )
                )

    # ------------------------------------------------------------------ events

    def _on_tickers(self, tickers: Any) -> None:
        now = self.clock()
        for t in tickers:
            st = self.by_con_id.get(t.contract.conId) if t.contract else None
            if st is None:
                continue
            last = finite_price(t.last)
            if last is None and st.last is None:
                last = finite_price(t.close)
            if last is not None:
                if last != st.last:
                    st.apply_trade(last, now)
                st.last = last
            bid, ask = finite_price(t.bid), finite_price(t.ask)
            if bid is not None:
                st.bid = bid
            if ask is not None:
                st.ask = ask
            st.last_quote_at = now
            st.dirty = True
            self.last_quote_at = now

    def _on_disconnected(self) -> None:
        if not self._stopping.is_set():
            self.disconnects += 1
            log.warning("IB disconnected")
        self._lost.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        self.errors_seen[code] = self.errors_seen.get(code, 0) + 1
        ib = self.ib
        if req_id >= 0 and code not in errors.FARM_STATUS:
            self._hist_errors[req_id] = (code, message)
            if len(self._hist_errors) > 1000:
                self._hist_errors.pop(next(iter(self._hist_errors)))
        if code in errors.CLIENT_ID_IN_USE:
            self._client_id_rejected.set()
        elif code in errors.PACING_VIOLATION and req_id < 0:
            self.guard.note_violation()
        elif code in errors.CONNECTIVITY_LOST:
            self.state = "degraded"
            self.last_error = "1100 connectivity lost"
            if self._watchdog is None:
                loop = asyncio.get_running_loop()
                self._watchdog = loop.call_later(
                    self.config.connectivity_grace_s, self._connectivity_timeout
                )
        elif code in errors.CONNECTIVITY_RESTORED:
            if self._watchdog:
                self._watchdog.cancel()
                self._watchdog = None
            self.state = "connected"
            if ib is not None:
                self._subscribe(ib, reason=f"{code} connectivity restored")
                if code in errors.CONNECTIVITY_RESTORED_DATA_LOST:
                    self._spawn(self._load_all_history(), "history-1101")
        elif code in errors.FARM_BROKEN:
            self._broken_farms.add(f"{code}:{message.rsplit(':', 1)[-1]}")
            self.state = "degraded"
        elif code in errors.FARM_OK:
            kind = errors.FARM_OK_CLEARS[code]
            was_broken = {f for f in self._broken_farms if f.startswith(f"{kind}:")}
            if was_broken:
                self._broken_farms -= was_broken
                if not self._broken_farms and self.state == "degraded":
                    self.state = "connected"
                if ib is not None:
                    if code in errors.MARKET_DATA_FARM_OK:
                        self._subscribe(ib, reason="2104 market data farm OK")
                    else:
                        self._spawn(self._load_all_history(), "history-2106")
        if errors.is_notice(code):
            log.info("IB notice %d: %s", code, message)
        else:
            self.last_error = f"{code}: {message}"
            log.warning("IB error %d (reqId %d): %s", code, req_id, message)

    def _connectivity_timeout(self) -> None:
        self._watchdog = None
        log.warning(
            "IB: no 1101/1102 within %.0fs of 1100; reconnecting", self.config.connectivity_grace_s
        )
        self._lost.set()

    # ------------------------------------------------------------------ snapshots

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.snapshot_interval_s)
            await self._write_snapshots(force=False)

    async def _write_snapshots(self, force: bool) -> None:
        now = self.clock()
        snaps = []
        for st in self.symbols.values():
            if not (st.dirty or force):
                continue
            snap = st.snapshot(now)
            if snap is not None:
                snaps.append(snap)
                st.dirty = False
        for snap in snaps:
            try:
                await asyncio.to_thread(
                    self.repository.put_snapshot, snap, self.config.snapshot_ttl_s
                )
            except Exception as exc:  # DynamoDB throttling after retries, endpoint down
                self.snapshot_errors += 1
                self.symbols[snap.symbol].dirty = True
                log.warning("snapshot write for %s failed: %s", snap.symbol, exc)
            else:
                self.snapshots_written += 1
                self.last_snapshot_at = now
