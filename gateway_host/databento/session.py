"""DatabentoSession: NQ options definitions + MBO → pressure windows → Kinesis `flow`.

Live: `databento.Live(reconnect_policy="reconnect")`, definitions subscribed before MBO
(stype_in parent; NQ.OPT plus the NQ weekly option products, configurable). Records arrive
on the databento client's thread through `add_callback`; MBO records are buffered as raw
bytes and aggregated as numpy arrays (FlowIngest), everything else is counted and skipped.
The reconnect callback reports `(gap_start, gap_end)`: windows after gap_start are held
open, the gap is backfilled from the historical API within the daily budget (merged with
dedupe, so nothing is counted twice), then the windows are released.

Replay: DBN files or folders through the same FlowIngest path, at a speed factor or as fast
as possible, optionally looping (the aggregator starts over each loop).

NQ price: with a `bar_sink` (a BarStore's put), the live session also subscribes to the NQ
futures front month (`ohlcv-1m`, continuous symbol NQ.c.0, same dataset and window); the
1-minute bars become 5-minute OHLCV bars (magic8.flow.bars) written through the sink (live:
a BackgroundBarWriter thread, so the bars table never holds the feed). A replayed `ohlcv-1m`
file goes the same way, released on the options' clock.

Closed windows go through a bounded Outbox to the FlowProducer on one sender thread, so a
slow PutRecords never stalls the feed until `outbox_max_windows` are waiting (then the feed
waits: backpressure; the production producer spills to disk long before that). The sender
thread is the producer's only owner. `stop()` ends the feed (intake); `flush()` closes
open windows, hands them to the sender, and waits while the sender delivers what is left
(the producer's own flush deadline bounds it) and exits. `health()` gives the heartbeat
its facts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

from gateway_host.databento.config import DEFAULT_PARENTS, NS, DatabentoConfig, iso_ns
from gateway_host.databento.gaps import GapHandling
from gateway_host.databento.outbox import Outbox
from gateway_host.databento.spend import SpendBudget, SpendTracker
from magic8.domain.flow import PressureWindow
from magic8.domain.ports import FlowProducer
from magic8.flow.aggregator import PressureAggregator
from magic8.flow.backfill import Backfiller
from magic8.flow.bars import BackgroundBarWriter, BarSink, FuturesBarFeed
from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import Pacer, replay
from magic8.market_hours import StreamingWindow

log = logging.getLogger("magic8.databento")

State = Literal[
    "idle",
    "outside_window",
    "over_budget",
    "connecting",
    "streaming",
    "reconnecting",
    "replaying",
    "done",
    "error",
]


class DatabentoSession(GapHandling):
    def __init__(
        self,
        config: DatabentoConfig,
        producer: FlowProducer | None = None,
        backfiller: Backfiller | None = None,
        aggregator: PressureAggregator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        live_factory: Callable[..., Any] | None = None,
        window: StreamingWindow | None = None,
        spend: SpendTracker | None = None,
        bar_sink: BarSink | None = None,
    ) -> None:
        self.config = config
        self.producer = producer
        self.backfiller = backfiller
        self.clock = clock
        # live only: stream inside the window (None: whenever connected)
        self.window = window
        self.spend = spend
        self._live_factory = live_factory
        source = "live" if config.mode == "live" else "replay"
        self.aggregator = aggregator or PressureAggregator(
            lateness_seconds=config.lateness_seconds if config.mode == "live" else 0.0,
            source=source,
            track_keys=config.mode == "live",
            early_seconds=config.early_window_seconds,
        )
        self._bar_sink = bar_sink
        self.futures = FuturesBarFeed(bar_sink) if bar_sink is not None else None
        self.ingest = FlowIngest(
            self.aggregator,
            on_windows=self._enqueue,
            on_gap=self._on_sequence_gap,
            sequence_gap_threshold=config.sequence_gap_threshold,
            batch_records=config.batch_records,
            futures=self.futures,
        )
        self.state: State = "idle"
        self.windows_emitted = 0
        self.windows_sent = 0
        self.loops = 0
        self.gaps: list[tuple[int, int, str]] = []
        self.backfills: dict[str, int] = {}
        self.last_error = ""
        self._stop = threading.Event()
        self._outbox: Outbox[PressureWindow] = Outbox(
            config.outbox_max_windows, should_wait=self._outbox_should_wait
        )
        self._sender_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._backfill_pool = ThreadPoolExecutor(1, thread_name_prefix="db-backfill")
        self._gaps_outstanding = 0
        self._gap_lock = threading.Lock()
        self._live: Any = None
        self._last_record_wall = 0.0
        # wall time (epoch s) of the last MBO record per instrument id: stream health that
        # Databento's heartbeat/system records cannot reset
        self._last_mbo_wall = 0.0
        self._mbo_wall_by_iid: dict[int, float] = {}
        self._closed_for_window = False
        self.window_opens = 0
        self.window_closes = 0
        self.reconnects = 0
        self._last_window_end: datetime | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the feed on background threads; returns at once."""
        self._stop.clear()
        self._sender_thread = self._spawn("db-sender", self._sender)
        if self.config.mode == "live":
            self._spawn("db-live", self._run_live)
            self._spawn("db-pump", self._pump)
        else:
            self._spawn("db-replay", self._run_replay)

    def stop(self) -> None:
        """Stop intake: end the feed (flush() then delivers what is open and pending)."""
        self._stop.set()
        interrupt = getattr(self.producer, "interrupt", None)
        if callable(interrupt):  # a sender waiting for Kinesis room stops waiting
            interrupt()
        self._outbox.wake()
        live = self._live
        if live is not None:
            try:
                live.stop()
                live.block_for_close(timeout=5)
            except Exception as exc:
                log.info("databento: live stop: %s", type(exc).__name__)
        for t in self._threads:
            if t is not self._sender_thread:
                t.join(timeout=10)
        if self.state not in ("error",):
            self.state = "done" if self.config.mode == "replay" else "idle"

    def flush(self) -> None:
        """Close every open window; the sender delivers them and all pending records, exits.

        The sender thread stays the producer's only owner: this thread hands over and waits.
        """
        self._backfill_pool.shutdown(wait=True, cancel_futures=False)
        self.ingest.flush()
        close_bars = getattr(self._bar_sink, "close", None)
        if callable(close_bars):  # a background bar writer: the last bars, then its thread ends
            close_bars(timeout=5.0)
        sender = self._sender_thread
        self._outbox.close()
        if sender is not None and sender.is_alive():
            limit = float(getattr(self.producer, "flush_timeout_s", 15.0)) + 10.0
            sender.join(timeout=limit)
            if sender.is_alive():
                log.error("databento: sender still delivering after %.0fs; leaving it", limit)
        else:  # never started: this thread is the only owner
            self._finish_sending()
        stats = getattr(self.producer, "stats", None) or {}
        log.info(
            "databento: flushed: emitted=%d sent=%d pending=%s",
            self.windows_emitted,
            self.windows_sent,
            stats.get("pending", "?"),
        )

    def wait_replay(self, timeout: float | None = None) -> bool:
        for t in self._threads:
            if t.name == "db-replay":
                t.join(timeout)
                return not t.is_alive()
        return True

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    # -- windows -> producer -----------------------------------------------------------

    def _outbox_should_wait(self) -> bool:
        """Backpressure only while the feed runs and a sender is there to make room."""
        sender = self._sender_thread
        return not self._stop.is_set() and sender is not None and sender.is_alive()

    def _enqueue(self, windows: list[PressureWindow]) -> None:
        self.windows_emitted += len(windows)
        if windows:
            self._last_window_end = max(w.window_end for w in windows)
        self._outbox.put(list(windows))

    def _send(self, windows: list[PressureWindow]) -> None:
        if self.producer is None:
            return
        try:
            self.windows_sent += self.producer.send(windows)
        except Exception as exc:  # the producer keeps what it could not send
            self.last_error = f"producer: {exc}"
            log.exception("databento: producer.send failed")

    def _producer_pending(self) -> int:
        return int(getattr(self.producer, "pending", 0) or 0)

    def _sender(self) -> None:
        """The producer's one owner: send what the feed closed; retry pending when quiet."""
        while True:
            windows, closed = self._outbox.take(timeout=self.config.pump_interval_s * 5)
            if windows or self._producer_pending():
                self._send(windows)
            if closed:
                self._finish_sending()
                return

    def _finish_sending(self) -> None:
        while True:
            windows, _ = self._outbox.take(timeout=0)
            if not windows:
                break
            self._send(windows)
        if self.producer is None:
            return
        stats = getattr(self.producer, "stats", None)
        before = stats.get("sent", 0) if stats is not None else 0
        try:
            self.producer.flush()
        except Exception as exc:
            self.last_error = f"producer flush: {exc}"
            log.error("databento: producer flush failed: %s", exc)
        if stats is not None:
            self.windows_sent += stats.get("sent", 0) - before

    # -- replay ------------------------------------------------------------------------

    def _pacer(self) -> Pacer:
        """The pacing of one replay loop (the local runtime's fast-forward overrides it)."""
        return Pacer(
            speed=self.config.speed or None,
            max_idle_seconds=self.config.max_idle_seconds,
            stop=self._stop.is_set,
        )

    def _run_replay(self) -> None:
        self.state = "replaying"
        try:
            while not self._stop.is_set():
                replay(self.config.replay_paths, self.ingest, pacer=self._pacer(), source="replay")
                self.loops += 1
                if not self.config.loop_replay:
                    break
                self.aggregator.reset()  # the next loop repeats the same timestamps
                if self.futures is not None:
                    self.futures.reset()
            self.state = "done"
        except Exception as exc:
            self.state = "error"
            self.last_error = f"replay: {exc}"
            log.exception("databento: replay failed")

    # -- live --------------------------------------------------------------------------

    def _make_live(self) -> Any:
        if self._live_factory is not None:
            return self._live_factory()
        import databento as db

        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        kwargs: dict[str, Any] = {"key": key, "reconnect_policy": "reconnect"}
        if self.config.gateway:
            kwargs["gateway"] = self.config.gateway
            kwargs["port"] = self.config.port
        if self.config.heartbeat_interval_s:
            kwargs["heartbeat_interval_s"] = self.config.heartbeat_interval_s
        return db.Live(**kwargs)

    def _seconds_until_allowed(self) -> tuple[float, State]:
        """0 when the live stream may run now; else how long to wait, and why."""
        if self.spend is not None and not self.spend.streaming_allowed():
            return 60.0, "over_budget"
        if self.window is not None:
            wait = self.window.seconds_until_open(self.clock())
            if wait > 0:
                return wait, "outside_window"
        return 0.0, "streaming"

    def _run_live(self) -> None:
        backoff = 1.0
        restart_gap_from: int | None = None
        while not self._stop.is_set():
            wait, why = self._seconds_until_allowed()
            if wait > 0:
                if self.state != why:
                    log.info("databento: %s; not streaming for %.0fs", why, wait)
                self.state = why
                restart_gap_from = None  # a planned pause is no gap
                self._stop.wait(min(wait, self.config.window_poll_s))
                continue
            self.state = "connecting"
            self._closed_for_window = False
            try:
                live = self._make_live()
                self._session_id = None
                live.add_callback(self._on_record, self._on_callback_error)
                live.add_reconnect_callback(self._on_reconnect, self._on_callback_error)
                symbols = list(self.config.parents)
                # definitions first, then MBO
                live.subscribe(self.config.dataset, "definition", symbols, stype_in="parent")
                live.subscribe(self.config.dataset, "mbo", symbols, stype_in="parent")
                if self.futures is not None and self.config.futures_symbols:
                    # the NQ front month's 1-minute bars (price chart), same session/window
                    live.subscribe(
                        self.config.dataset,
                        self.config.futures_schema,
                        list(self.config.futures_symbols),
                        stype_in=self.config.futures_stype,
                    )
                self._live = live
                live.start()
                self.state = "streaming"
                self.window_opens += 1
                backoff = 1.0
                if restart_gap_from is not None:
                    self._restart_gap_from = restart_gap_from
                live.block_for_close()
                if self._stop.is_set():
                    break
                if self._closed_for_window:
                    self._end_of_window()
                    restart_gap_from = None
                    continue
                log.warning("databento: live session closed; reconnecting")
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.last_error = f"live: {type(exc).__name__}: {exc}"
                log.warning("databento: live session error: %s", self.last_error)
            self.state = "reconnecting"
            self.reconnects += 1
            restart_gap_from = self.ingest.last_mbo_ts_ns or None
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)

    def _close_for_window(self, why: str) -> None:
        """The window ended (or the budget stops streaming): end the live session."""
        live = self._live
        if live is None or self._closed_for_window:
            return
        self._closed_for_window = True
        log.info("databento: %s; closing the live session", why)
        try:
            live.stop()
        except Exception as exc:
            log.info("databento: live stop: %s", type(exc).__name__)

    def _end_of_window(self) -> None:
        """After a planned close: close every open window so the day's last ones go out."""
        self.window_closes += 1
        self.ingest.flush()
        self._live = None

    def _on_record(self, record: Any) -> None:
        self._last_record_wall = time.monotonic()
        if type(record).__name__ == "MBOMsg":
            now = time.time()
            self._last_mbo_wall = now
            self._mbo_wall_by_iid[record.instrument_id] = now
        live = self._live
        if live is not None:
            sid = live.session_id
            if sid != self._session_id:
                if self._session_id is not None:
                    self._on_new_connection(sid)
                self._session_id = sid
        if self._restart_gap_from is not None and type(record).__name__ == "MBOMsg":
            start, self._restart_gap_from = self._restart_gap_from, None
            self._report_gap(start, int(record.ts_event), "restart")
        self.ingest.on_record(record)

    def _on_callback_error(self, exc: Exception) -> None:
        self.last_error = f"callback: {type(exc).__name__}: {exc}"
        log.error("databento: %s", self.last_error)

    def _pump(self) -> None:
        """Aggregate buffered live records regularly; advance time when the feed is quiet."""
        while not self._stop.wait(self.config.pump_interval_s):
            try:
                self.ingest.flush_buffer()
                with self._gap_lock:
                    waiting = self._awaiting_reconnect_since
                    expired = waiting is not None and time.monotonic() - waiting > 60
                    if expired:  # a new session without its reconnect callback
                        self._awaiting_reconnect_since = None
                        self._pre_held_session = None
                if expired:
                    self._gap_done()
                idle = self.config.idle_advance_seconds
                quiet = time.monotonic() - self._last_record_wall
                if (
                    idle is not None
                    and self._last_record_wall
                    and quiet >= idle
                    and self.ingest.last_mbo_ts_ns
                    and not self.aggregator.held
                ):
                    self.ingest.advance(self.ingest.last_mbo_ts_ns + int(quiet * NS))
                self._check_window_and_spend()
            except Exception as exc:
                self.last_error = f"pump: {exc}"
                log.exception("databento: pump failed")

    def _check_window_and_spend(self) -> None:
        if self.spend is not None:
            with self.ingest.lock:
                seen = dict(self.ingest.seen)
            self.spend.observe(seen)
        if self.state != "streaming":
            return
        if self.spend is not None and not self.spend.streaming_allowed():
            self._close_for_window("streaming budget reached")
        elif self.window is not None and not self.window.is_open(self.clock()):
            self._close_for_window("streaming window closed")

    # -- health ------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        if self.state == "error":
            return False
        if self.config.mode == "replay":
            return True
        if self.state in ("outside_window", "over_budget"):
            return True  # a planned pause
        if self.state != "streaming":
            return False
        age = self.mbo_age_s()
        if age is None:  # no MBO yet in this session: give it stale_after_s from the start
            return time.monotonic() - self._streaming_since() < self.config.stale_after_s
        return age < self.config.stale_after_s

    def _streaming_since(self) -> float:
        return self._last_record_wall or time.monotonic()

    def mbo_age_s(self) -> float | None:
        """Seconds since the last MBO record (not any record: heartbeats do not count)."""
        return max(0.0, time.time() - self._last_mbo_wall) if self._last_mbo_wall else None

    def mbo_age_by_product(self) -> dict[str, float]:
        """Seconds since the last MBO record of each product seen (NQ, Q1A, ...)."""
        now = time.time()
        latest: dict[str, float] = {}
        for iid, t in list(self._mbo_wall_by_iid.items()):
            product = product_of(self.ingest.instruments.get(iid))
            if t > latest.get(product, 0.0):
                latest[product] = t
        return {p: round(max(0.0, now - t), 1) for p, t in sorted(latest.items())}

    def _futures_health(self) -> dict[str, Any] | None:
        if self.futures is None:
            return None
        out = self.futures.health()
        writer = self._bar_sink
        if isinstance(writer, BackgroundBarWriter):
            out.update(writer_pending=writer.pending, writer_failures=writer.failures)
        return out

    def window_facts(self) -> dict[str, Any]:
        if self.window is None:
            return {"configured": False, "open": True}
        now = self.clock()
        start, end = self.window.current_or_next(now)
        return {
            "configured": True,
            "open": start <= now < end,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "opens": self.window_opens,
            "closes": self.window_closes,
        }

    def health(self) -> dict[str, Any]:
        counts = self.ingest.counts()
        budget = self.backfiller.budget_used() if self.backfiller else 0.0
        stats = getattr(self.producer, "stats", {}) or {}
        age = self.mbo_age_s()
        return {
            "state": self.state,
            "healthy": self.healthy,
            "mode": self.config.mode,
            "last_mbo_at": iso_ns(self.ingest.last_mbo_ts_ns),
            "mbo_age_s": None if age is None else round(age, 1),
            "mbo_age_by_product": self.mbo_age_by_product(),
            "last_window_end": self._last_window_end.isoformat() if self._last_window_end else None,
            "records_seen": sum(counts["seen"].values()),
            "records": counts,
            "instruments": len(self.ingest.instruments),
            "open_windows": self.aggregator.open_windows,
            "windows_emitted": self.windows_emitted,
            "windows_sent": self.windows_sent,
            "kinesis": {k: v for k, v in dict(stats).items() if isinstance(v, int | float)},
            "producer_backlog": int(getattr(self.producer, "pending", 0) or 0),
            "producer_oldest_age_s": round(
                float(getattr(self.producer, "oldest_age_s", 0.0) or 0.0), 1
            ),
            "outbox": len(self._outbox),
            "reconnects": self.reconnects,
            "gaps": len(self.gaps),
            "backfills": dict(self.backfills),
            "backfilled_records": self.ingest.backfill_records,
            "backfill_budget_used": budget if budget == budget else 0.0,
            "window": self.window_facts(),
            "spend": self.spend.facts() if self.spend is not None else None,
            "futures": self._futures_health(),
            "loops": self.loops,
            "last_error": self.last_error,
        }


def product_of(instrument: Any) -> str:
    """The product root of an instrument: "NQZ5 C21000" -> "NQ", "Q1AZ5 P20000" -> "Q1A"."""
    if instrument is None:
        return "unknown"
    raw = str(getattr(instrument, "raw_symbol", "") or "").split(" ")[0]
    if len(raw) > 2 and raw[-1].isdigit() and raw[-2].isalpha():
        return raw[:-2]
    return raw or str(getattr(instrument, "underlying", "") or "unknown")


def from_settings(settings: Any) -> DatabentoSession:
    """The production wiring from gateway_host.settings.GatewaySettings."""
    from magic8.adapters.bars_dynamo import DynamoBarStore
    from magic8.adapters.budget_dynamo import DynamoBudgetLedger
    from magic8.adapters.kinesis_flow import KinesisFlowProducer
    from magic8.flow.backfill import DatabentoHistoricalSource

    parents = tuple(settings.parent_symbols) or DEFAULT_PARENTS
    paths = tuple(p for p in str(settings.databento_replay_path).split(",") if p.strip())
    config = DatabentoConfig(
        api_key=settings.databento_api_key,
        dataset=settings.databento_dataset,
        parents=parents,
        mode=settings.databento_mode,
        replay_paths=paths,
        speed=settings.databento_replay_speed,
        futures_symbols=settings.futures_symbols,
    )
    # live: one writer thread, so a slow bars table never holds the feed
    bar_sink: BarSink | None = None
    if settings.futures_symbols:
        store = DynamoBarStore(settings.bars_table)
        bar_sink = BackgroundBarWriter(store.put) if config.mode == "live" else store.put
    spend = None
    window = None
    ledger: Any = None
    if config.mode == "live":
        ledger = DynamoBudgetLedger(settings.state_table)
        window = settings.streaming_window()
        budget = SpendBudget(
            streaming_usd=settings.streaming_daily_budget_usd,
            backfill_usd=settings.backfill_daily_budget_usd,
            usd_per_gb=settings.databento_usd_per_gb,
            stop_streaming=settings.stop_streaming_at_budget,
        )
        spend = SpendTracker(ledger, budget)
    backfiller = None
    if config.mode == "live" and config.api_key is not None:
        import databento as db

        historical = db.Historical(key=config.api_key.get_secret_value())
        backfiller = Backfiller(
            DatabentoHistoricalSource(historical, config.dataset, parents),
            ledger,
            daily_budget_usd=settings.backfill_daily_budget_usd,
        )
    producer = KinesisFlowProducer(
        settings.flow_stream,
        max_buffered=settings.flow_max_buffered,
        spill_dir=settings.flow_spill_dir or None,
        flush_timeout_s=settings.flow_flush_timeout_s,
    )
    return DatabentoSession(
        config,
        producer=producer,
        backfiller=backfiller,
        window=window,
        spend=spend,
        bar_sink=bar_sink,
    )
