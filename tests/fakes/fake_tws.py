"""A fake TWS / IB Gateway that speaks the real TWS API socket protocol.

An unmodified `ib_async.IB().connectAsync("127.0.0.1", port, clientId)` connects to it:

- handshake: client sends b"API\\0" + length-prefixed "v<min>..<max>"; we answer
  length-prefixed "<server version>\\0<connection time>\\0";
- every later message is a 4-byte big-endian length + "\\0"-separated fields;
- startApi (71) -> managedAccounts (15) + nextValidId (9) + farm-OK notices (2104/2106),
  or error 326 + close when the client id is taken / a 326 was ordered;
- startup sync: positions (61), open orders (5), completed orders (99), account updates
  (6), account updates multi (76), executions (7) all answered with their End messages;
- reqMktData (1): tick prices (bid 1 / ask 2 / last 4 / close 9) now and every
  `tick_interval` s while the "farm" is up; cancelMktData (2);
- reqHistoricalData (20): 5-minute (or any "N unit") bars; formatDate 1 or 2;
  keepUpToDate -> historicalDataUpdate (90) every tick; IB's historical pacing rules
  enforced with `clock` (error 162 on violation), every request recorded with a timestamp;
- commands (tests): error(code), connectivity_lost() (1100), restore(data_lost) (1101 drops
  server-side subscriptions / 1102 keeps them), farm_broken() (2103, drops subscriptions)
  / farm_ok() (2104), disconnect_all() (server-side close), reject_next_client_ids(n)
  (326), fail_next_historical(n) (162).

FakeTws runs in the caller's event loop; ThreadedFakeTws runs it in a background thread
(for tests whose client runs in another process).
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SERVER_VERSION = 176  # within ib_async's MinClientVersion..MaxClientVersion (157..178)

BASE_PRICES = {
    "SPX": 6000.0,
    "NDX": 21000.0,
    "RUT": 2300.0,
    "VIX": 16.0,
    "XSP": 600.0,
    "SPY": 600.0,
    "QQQ": 520.0,
}

CON_IDS = {
    "SPX": 416904,
    "NDX": 416843,
    "RUT": 416888,
    "VIX": 13455763,
    "XSP": 12068128,
    "SPY": 756733,
    "QQQ": 320227571,
}

UNIT_SECONDS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}


@dataclass
class HistRequest:
    at: float  # fake clock time
    wall: float  # time.time()
    client_id: int
    req_id: int
    symbol: str
    sec_type: str
    exchange: str
    end: str
    bar_size: str
    duration: str
    use_rth: str
    what: str
    format_date: int
    keep_up_to_date: bool
    rejected: bool = False

    @property
    def identity(self) -> tuple[str, ...]:
        return (
            self.symbol,
            self.sec_type,
            self.exchange,
            self.end,
            self.bar_size,
            self.duration,
            self.use_rth,
            self.what,
        )


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    client_id: int = -1
    ready: bool = False
    mkt: dict[int, str] = field(default_factory=dict)  # reqId -> symbol
    hist_subs: dict[int, tuple[str, int]] = field(default_factory=dict)  # reqId -> (sym, bar s)


def _frame(*fields: Any) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def parse_bar_size(text: str) -> int:
    n, unit = text.split()[:2]
    unit = unit.lower()
    mult = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600}
    if unit in mult:
        return int(n) * mult[unit]
    if unit.startswith("day"):
        return 86400
    raise ValueError(f"bar size {text!r}")


def parse_duration(text: str) -> int:
    n, unit = text.split()
    return int(n) * UNIT_SECONDS[unit.upper()]


class FakeTws:
    def __init__(
        self,
        *,
        server_version: int = SERVER_VERSION,
        accounts: tuple[str, ...] = ("DU1234567",),
        tick_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        enforce_pacing: bool = True,
        history_delay: float = 0.0,
        max_bars: int = 2000,
    ) -> None:
        self.server_version = server_version
        self.accounts = accounts
        self.tick_interval = tick_interval
        self.clock = clock
        self.enforce_pacing = enforce_pacing
        self.history_delay = history_delay
        self.max_bars = max_bars
        self.conns: list[_Conn] = []
        self.historical_requests: list[HistRequest] = []
        self.pacing_violations = 0
        self.handshakes = 0
        self.api_starts = 0
        self.mkt_requests: list[tuple[float, int, str]] = []  # (wall, client id, symbol)
        self.client_ids_seen: list[int] = []
        self.ticks_sent = 0
        # (time.time(), symbol, last) of every last-price tick sent, newest last
        self.tick_log: deque[tuple[float, str, float]] = deque(maxlen=100_000)
        self.contract_requests = 0
        self.farm_up = True
        self.connected_upstream = True
        self._reject_ids = 0
        self._fail_hist = 0
        self._next_order_id = 1
        self._prices = dict(BASE_PRICES)
        self._step = 0
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        return self.port

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        self.disconnect_all()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------ commands

    def error(self, code: int, message: str = "", req_id: int = -1) -> None:
        for c in self._ready():
            self._send_error(c, req_id, code, message or f"fake error {code}")

    def connectivity_lost(self) -> None:
        self.connected_upstream = False
        self.error(1100, "Connectivity between IB and Trader Workstation has been lost.")

    def restore(self, data_lost: bool) -> None:
        self.connected_upstream = True
        if data_lost:
            for c in self.conns:
                c.mkt.clear()
                c.hist_subs.clear()
            self.error(
                1101,
                "Connectivity between IB and TWS has been restored- data lost.*",
            )
        else:
            self.error(1102, "Connectivity between IB and TWS has been restored- data maintained.")

    def farm_broken(self) -> None:
        self.farm_up = False
        for c in self.conns:
            c.mkt.clear()
        self.error(2103, "Market data farm connection is broken:usfarm")

    def farm_ok(self) -> None:
        self.farm_up = True
        self.error(2104, "Market data farm connection is OK:usfarm")

    def disconnect_all(self) -> None:
        for c in list(self.conns):
            self._close(c)

    def reject_next_client_ids(self, n: int = 1) -> None:
        self._reject_ids += n

    def fail_next_historical(self, n: int = 1) -> None:
        self._fail_hist += n

    @property
    def pending_historical_failures(self) -> int:
        """162s ordered with fail_next_historical() and not yet answered."""
        return self._fail_hist

    @property
    def active_subscriptions(self) -> int:
        return sum(len(c.mkt) for c in self.conns)

    def subscribed_symbols(self) -> set[str]:
        return {s for c in self.conns for s in c.mkt.values()}

    # ------------------------------------------------------------ protocol

    def _ready(self) -> list[_Conn]:
        return [c for c in self.conns if c.ready]

    def _send(self, c: _Conn, *fields: Any) -> None:
        if not c.writer.is_closing():
            c.writer.write(_frame(*fields))

    def _send_error(self, c: _Conn, req_id: int, code: int, message: str) -> None:
        if self.server_version >= 166:
            self._send(c, 4, 2, req_id, code, message, "")
        else:
            self._send(c, 4, 2, req_id, code, message)

    def _close(self, c: _Conn) -> None:
        c.ready = False
        if c in self.conns:
            self.conns.remove(c)
        if not c.writer.is_closing():
            c.writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        try:
            prefix = await reader.readexactly(4)
            if prefix != b"API\0":
                writer.close()
                return
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            versions = (await reader.readexactly(n)).decode()
            lo, hi = (int(v) for v in versions.lstrip("v").split()[0].split(".."))
            if not lo <= self.server_version <= hi:
                writer.close()
                return
            self.handshakes += 1
            now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
            writer.write(_frame(self.server_version, now))
            self.conns.append(conn)
            while True:
                (n,) = struct.unpack(">I", await reader.readexactly(4))
                fields = (await reader.readexactly(n)).decode().split("\0")[:-1]
                if fields:
                    self._dispatch(conn, fields)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._close(conn)

    def _dispatch(self, c: _Conn, f: list[str]) -> None:
        msg = int(f[0])
        if msg == 71:  # startApi: 71, 2, clientId, optCapab
            cid = int(f[2])
            self.client_ids_seen.append(cid)
            in_use = any(o.client_id == cid and o.ready for o in self.conns if o is not c)
            if in_use or self._reject_ids > 0:
                self._reject_ids = max(0, self._reject_ids - 1)
                self._send_error(
                    c,
                    -1,
                    326,
                    "Unable to connect as the client id is already in use. "
                    "Retry with a unique client id.",
                )
                asyncio.get_running_loop().call_later(0.05, self._close, c)
                return
            c.client_id = cid
            c.ready = True
            self.api_starts += 1
            self._send(c, 15, 1, ",".join(self.accounts))
            self._send(c, 9, 1, self._next_order_id)
            self._send_error(c, -1, 2104, "Market data farm connection is OK:usfarm")
            self._send_error(c, -1, 2106, "HMDS data farm connection is OK:ushmds")
        elif msg == 61:  # reqPositions
            self._send(c, 62, 1)
        elif msg == 5:  # reqOpenOrders
            self._send(c, 53, 1)
        elif msg == 99:  # reqCompletedOrders
            self._send(c, 102)
        elif msg == 6:  # reqAccountUpdates: 6, 2, subscribe, acct
            if f[2] == "1":
                self._send(c, 54, 1, f[3] if len(f) > 3 else self.accounts[0])
        elif msg == 76:  # reqAccountUpdatesMulti: 76, 1, reqId, ...
            self._send(c, 74, 1, f[2])
        elif msg == 7:  # reqExecutions: 7, 3, reqId, ...
            self._send(c, 55, 1, f[2])
        elif msg == 49:  # reqCurrentTime
            self._send(c, 49, 1, int(time.time()))
        elif msg == 8:  # reqIds
            self._send(c, 9, 1, self._next_order_id)
        elif msg == 1:  # reqMktData: 1, 11, reqId, contract(12), dnc, ticks, snap, reg, opts
            req_id, symbol = int(f[2]), f[4]
            c.mkt[req_id] = symbol
            self.mkt_requests.append((time.time(), c.client_id, symbol))
            if self.farm_up and self.connected_upstream:
                self._send_ticks(c, req_id, symbol, first=True)
        elif msg == 2:  # cancelMktData: 2, 2, reqId
            c.mkt.pop(int(f[2]), None)
        elif msg == 9:
            self._contract_details(c, f)
        elif msg == 20:
            self._historical(c, f)
        elif msg == 25:  # cancelHistoricalData: 25, 1, reqId
            c.hist_subs.pop(int(f[2]), None)
        # anything else (reqMarketDataType 59, reqAutoOpenOrders 15, ...) needs no answer

    # ------------------------------------------------------------ contracts

    def _contract_details(self, c: _Conn, f: list[str]) -> None:
        # 9, 8, reqId, contract(12: conId symbol secType lastTrade strike right mult
        # exchange primaryExchange currency localSymbol tradingClass), includeExpired, ...
        req_id, symbol, sec_type, exchange, currency = int(f[2]), f[4], f[5], f[10], f[12]
        self.contract_requests += 1
        con_id = CON_IDS.get(symbol)
        if con_id is not None and sec_type in {"IND", "STK"}:
            exch = exchange or ("SMART" if sec_type == "STK" else "CBOE")
            primary = "ARCA" if symbol == "SPY" else "NASDAQ" if sec_type == "STK" else ""
            # contractDetails (server version >= 164 layout), then contractDetailsEnd
            self._send(
                c, 10, req_id, symbol, sec_type, "", 0, "", exch, currency or "USD", symbol,
                symbol, symbol, con_id, 0.01, "", "ACTIVETIM,AD,ALERT", exch, 1, 0,
                f"{symbol} fake", primary, "", "", "", "", "US/Eastern", "", "", "", "", 0,
                0, "", "", "", "", "", 1, 1, 1,
            )  # fmt: skip
        else:
            self._send_error(c, req_id, 200, "No security definition has been found")
        self._send(c, 52, 1, req_id)

    # ------------------------------------------------------------ market data

    def _price(self, symbol: str) -> float:
        return self._prices.setdefault(symbol, 100.0)

    def _send_ticks(self, c: _Conn, req_id: int, symbol: str, first: bool = False) -> None:
        last = self._price(symbol)
        spread = max(0.01, round(last * 0.0001, 2))
        if symbol in {"SPY", "QQQ"} or first:
            self._send(c, 1, 6, req_id, 1, round(last - spread, 2), 100, 0)
            self._send(c, 1, 6, req_id, 2, round(last + spread, 2), 100, 0)
        self._send(c, 1, 6, req_id, 4, round(last, 2), 1, 0)
        self.tick_log.append((time.time(), symbol, round(last, 2)))
        if first:
            self._send(c, 1, 6, req_id, 9, round(last * 0.995, 2), 0, 0)
        self.ticks_sent += 1

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self._step += 1
            for sym, base in BASE_PRICES.items():
                self._prices[sym] = round(base * (1 + 0.002 * math.sin(self._step / 7.0)), 2)
            if not (self.farm_up and self.connected_upstream):
                continue
            for c in self._ready():
                for req_id, symbol in list(c.mkt.items()):
                    self._send_ticks(c, req_id, symbol)
                for req_id, (symbol, bar_s) in list(c.hist_subs.items()):
                    start = int(time.time()) // bar_s * bar_s
                    p = self._price(symbol)
                    # historicalDataUpdate: 90 reqId barCount date open close high low wap volume
                    self._send(c, 90, req_id, 1, start, p, p, p, p, p, 0)

    def _bars(self, symbol: str, bar_s: int, n: int, end: int) -> list[tuple[int, float, ...]]:
        base = BASE_PRICES.get(symbol, 100.0)
        out = []
        first = end - n * bar_s
        for i in range(n):
            ts = first + i * bar_s
            k = ts // bar_s
            o = base * (1 + 0.01 * math.sin(k / 11.0))
            c = base * (1 + 0.01 * math.sin((k + 1) / 11.0))
            h = max(o, c) * 1.0005
            lo = min(o, c) * 0.9995
            # a bar is the same whatever request returns it (volume too)
            out.append((ts, round(o, 2), round(h, 2), round(lo, 2), round(c, 2), 1000.0 + k % 1000))
        return out

    def bar_at(self, symbol: str, ts: int, bar_s: int = 300) -> tuple[int, float, ...]:
        """The (ts, open, high, low, close, volume) bar this fake serves for `ts`."""
        return self._bars(symbol, bar_s, 1, ts + bar_s)[0]

    def _pacing_ok(self, req: HistRequest) -> bool:
        now = req.at
        accepted = [r for r in self.historical_requests if not r.rejected]
        if sum(1 for r in accepted if r.at > now - 600) >= 60:
            return False
        if any(r.identity == req.identity and r.at > now - 15 for r in accepted):
            return False
        same = [r for r in accepted if r.symbol == req.symbol and r.at > now - 2]
        return len(same) < 5  # IB: six or more within two seconds is a violation

    def _historical(self, c: _Conn, f: list[str]) -> None:
        # 20, reqId, contract(12: conId symbol secType lastTrade strike right mult exchange
        # primaryExchange currency localSymbol tradingClass), includeExpired, end, barSize,
        # duration, useRTH, whatToShow, formatDate, keepUpToDate, chartOptions
        req_id = int(f[1])
        req = HistRequest(
            at=self.clock(),
            wall=time.time(),
            client_id=c.client_id,
            req_id=req_id,
            symbol=f[3],
            sec_type=f[4],
            exchange=f[9],
            end=f[15],
            bar_size=f[16],
            duration=f[17],
            use_rth=f[18],
            what=f[19],
            format_date=int(f[20] or 1),
            keep_up_to_date=f[21] == "1",
        )
        violated = self.enforce_pacing and not self._pacing_ok(req)
        if self._fail_hist > 0 or violated:
            self._fail_hist = max(0, self._fail_hist - 1)
            req.rejected = True
            self.pacing_violations += int(violated)
            self.historical_requests.append(req)
            self._send_error(
                c,
                req_id,
                162,
                "Historical Market Data Service error message:API historical data query "
                "cancelled: " + str(req_id),
            )
            return
        self.historical_requests.append(req)
        if self.history_delay:
            asyncio.get_running_loop().call_later(self.history_delay, self._reply_hist, c, req)
        else:
            self._reply_hist(c, req)

    def _reply_hist(self, c: _Conn, req: HistRequest) -> None:
        if not c.ready:
            return
        bar_s = parse_bar_size(req.bar_size)
        n = min(self.max_bars, max(1, parse_duration(req.duration) // bar_s))
        end = int(time.time()) // bar_s * bar_s + bar_s  # includes the bar in progress
        bars = self._bars(req.symbol, bar_s, n, end)
        fields: list[Any] = [17, req.req_id, "", "", len(bars)]
        for ts, o, h, lo, cl, v in bars:
            if req.format_date == 2:
                date = str(ts)
            else:
                date = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d %H:%M:%S UTC")
            fields += [date, o, h, lo, cl, v, cl, 10]
        self._send(c, *fields)
        if req.keep_up_to_date:
            c.hist_subs[req.req_id] = (req.symbol, bar_s)


class ThreadedFakeTws:
    """FakeTws in its own thread and event loop; commands are forwarded thread-safely."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.tws: FakeTws | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> int:
        self._thread.start()

        async def boot() -> int:
            self.tws = FakeTws(**self.kwargs)
            return await self.tws.start()

        return asyncio.run_coroutine_threadsafe(boot(), self.loop).result(10)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.tws:
            asyncio.run_coroutine_threadsafe(self.tws.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
