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

Closed windows go to the FlowProducer on a sender thread, so a slow PutRecords never stalls
the feed. `stop()` ends the feed; `flush()` closes open windows and delivers every pending
record. `health()` gives the heartbeat its facts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from magic8.domain.flow import PressureWindow
from magic8.domain.ports import FlowProducer
from magic8.flow.aggregator import PressureAggregator
from magic8.flow.backfill import Backfiller
from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import Pacer, replay

log = logging.getLogger("magic8.databento")

NS = 1_000_000_000
# NQ options: quarterly/serial (NQ.OPT) + weeklies Mon-Thu (Q1A..Q5D), Friday (QN1..QN4),
# end of month (QNE). Weekly products have their own parent symbols.
WEEKLY_PRODUCTS: tuple[str, ...] = (
    *(f"Q{w}{d}" for d in "ABCD" for w in range(1, 6)),
    *("QN1", "QN2", "QN3", "QN4", "QNE"),
)
DEFAULT_PARENTS: tuple[str, ...] = ("NQ.OPT", *(f"{p}.OPT" for p in WEEKLY_PRODUCTS))

State = Literal["idle", "connecting", "streaming", "reconnecting", "replaying", "done", "error"]


class DatabentoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None  # never logged (SecretStr masks repr/str)
    dataset: str = "GLBX.MDP3"
    parents: tuple[str, ...] = DEFAULT_PARENTS
    mode: Literal["live", "replay"] = "live"
    replay_paths: tuple[str, ...] = ()
    speed: float = Field(default=0.0, ge=0)  # replay: 0 = as fast as possible
    loop_replay: bool = False
    max_idle_seconds: float = 1.0  # replay pacing: cap on overnight waits
    gateway: str | None = None  # live gateway override (tests: the fake gateway)
    port: int = 13000
    lateness_seconds: float = 30.0
    early_window_seconds: float | None = 60.0  # unusual open windows re-sent early (issue 12)
    idle_advance_seconds: float | None = 5.0  # live: quiet feed -> close windows by wall time
    batch_records: int = 512
    pump_interval_s: float = 0.2
    sequence_gap_threshold: int | None = None
    heartbeat_interval_s: int | None = None
    stale_after_s: float = 120.0  # live: no record for this long -> unhealthy


def _iso(ns: int) -> str | None:
    return datetime.fromtimestamp(ns / NS, tz=UTC).isoformat() if ns else None


class DatabentoSession:
    def __init__(
        self,
        config: DatabentoConfig,
        producer: FlowProducer | None = None,
        backfiller: Backfiller | None = None,
        aggregator: PressureAggregator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        live_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.producer = producer
        self.backfiller = backfiller
        self.clock = clock
        self._live_factory = live_factory
        source = "live" if config.mode == "live" else "replay"
        self.aggregator = aggregator or PressureAggregator(
            lateness_seconds=config.lateness_seconds if config.mode == "live" else 0.0,
            source=source,
            track_keys=config.mode == "live",
            early_seconds=config.early_window_seconds,
        )
        self.ingest = FlowIngest(
            self.aggregator,
            on_windows=self._enqueue,
            on_gap=self._on_sequence_gap,
            sequence_gap_threshold=config.sequence_gap_threshold,
            batch_records=config.batch_records,
        )
        self.state: State = "idle"
        self.windows_emitted = 0
        self.windows_sent = 0
        self.loops = 0
        self.gaps: list[tuple[int, int, str]] = []
        self.backfills: dict[str, int] = {}
        self.last_error = ""
        self._stop = threading.Event()
        self._outbox: queue.Queue[list[PressureWindow] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._backfill_pool = ThreadPoolExecutor(1, thread_name_prefix="db-backfill")
        self._gaps_outstanding = 0
        self._gap_lock = threading.Lock()
        self._live: Any = None
        self._last_record_wall = 0.0
        self._last_window_end: datetime | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the feed on background threads; returns at once."""
        self._stop.clear()
        self._spawn("db-sender", self._sender)
        if self.config.mode == "live":
            self._spawn("db-live", self._run_live)
            self._spawn("db-pump", self._pump)
        else:
            self._spawn("db-replay", self._run_replay)

    def stop(self) -> None:
        """Stop the feed (flush() then delivers what is open and pending)."""
        self._stop.set()
        live = self._live
        if live is not None:
            try:
                live.stop()
                live.block_for_close(timeout=5)
            except Exception as exc:
                log.info("databento: live stop: %s", type(exc).__name__)
        for t in self._threads:
            if t.name != "db-sender":
                t.join(timeout=10)
        if self.state not in ("error",):
            self.state = "done" if self.config.mode == "replay" else "idle"

    def flush(self) -> None:
        """Close every open window and deliver all pending records to the producer."""
        self._backfill_pool.shutdown(wait=True, cancel_futures=False)
        self.ingest.flush()
        self._outbox.put(None)
        for t in self._threads:
            if t.name == "db-sender":
                t.join(timeout=30)
        self._drain_outbox()
        if self.producer is not None:
            self.producer.flush()

    def wait_replay(self, timeout: float | None = None) -> bool:
        for t in self._threads:
            if t.name == "db-replay":
                t.join(timeout)
                return not t.is_alive()
        return True

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    # -- windows -> producer -----------------------------------------------------------

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

    def _sender(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            self._send(item)

    def _drain_outbox(self) -> None:
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            if item:
                self._send(item)

    # -- replay ------------------------------------------------------------------------

    def _run_replay(self) -> None:
        self.state = "replaying"
        try:
            while not self._stop.is_set():
                pacer = Pacer(
                    speed=self.config.speed or None,
                    max_idle_seconds=self.config.max_idle_seconds,
                    stop=self._stop.is_set,
                )
                replay(self.config.replay_paths, self.ingest, pacer=pacer, source="replay")
                self.loops += 1
                if not self.config.loop_replay:
                    break
                self.aggregator.reset()  # the next loop repeats the same timestamps
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

    def _run_live(self) -> None:
        backoff = 1.0
        restart_gap_from: int | None = None
        while not self._stop.is_set():
            self.state = "connecting"
            try:
                live = self._make_live()
                self._session_id = None
                live.add_callback(self._on_record, self._on_callback_error)
                live.add_reconnect_callback(self._on_reconnect, self._on_callback_error)
                symbols = list(self.config.parents)
                # definitions first, then MBO
                live.subscribe(self.config.dataset, "definition", symbols, stype_in="parent")
                live.subscribe(self.config.dataset, "mbo", symbols, stype_in="parent")
                self._live = live
                live.start()
                self.state = "streaming"
                backoff = 1.0
                if restart_gap_from is not None:
                    self._restart_gap_from = restart_gap_from
                live.block_for_close()
                if self._stop.is_set():
                    break
                log.warning("databento: live session closed; reconnecting")
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.last_error = f"live: {type(exc).__name__}: {exc}"
                log.warning("databento: live session error: %s", self.last_error)
            self.state = "reconnecting"
            restart_gap_from = self.ingest.last_mbo_ts_ns or None
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)

    _restart_gap_from: int | None = None
    _session_id: str | None = None
    # the session whose first record pre-held windows, waiting for its reconnect callback
    _pre_held_session: str | None = None
    _awaiting_reconnect_since: float | None = None
    # the session whose reconnect callback has reported its gap
    _reported_session: str | None = None

    def _on_record(self, record: Any) -> None:
        self._last_record_wall = time.monotonic()
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

    def _on_new_connection(self, session_id: str | None) -> None:
        """First record of a reconnected session (new session id): hold windows now.

        The order of the two is up to TCP segmentation: when the new session's Metadata
        and first records arrive in one segment, the client dispatches the records before
        its reconnect callback, so without this a window could close before the gap is
        known; when the Metadata arrives alone, the callback runs first and has already
        counted (and maybe backfilled) this session's gap: nothing to hold then.
        """
        with self.ingest.lock, self._gap_lock:
            if session_id is not None and session_id == self._reported_session:
                return
            self._gaps_outstanding += 1
            self._pre_held_session = session_id
            self._awaiting_reconnect_since = time.monotonic()
            self.ingest.hold(self.ingest.last_mbo_ts_ns)

    def _on_reconnect(self, gap_start: Any, gap_end: Any) -> None:
        """databento reconnect callback: (last ts_event, new session's start) as Timestamps.

        Runs after the new session authenticated, so the client's session id is the new
        session's: a pre-hold taken for that session already counted this gap.
        """
        live = self._live
        sid = getattr(live, "session_id", None) if live is not None else None
        with self.ingest.lock, self._gap_lock:
            pre_held = self._awaiting_reconnect_since is not None and (
                sid is None or self._pre_held_session in (None, sid)
            )
            if pre_held:
                self._awaiting_reconnect_since = None
                self._pre_held_session = None
            self._reported_session = sid
        self._report_gap(int(gap_start.value), int(gap_end.value), "reconnect", pre_held)

    def _on_sequence_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        self._report_gap(start_ns, end_ns, reason)

    def _report_gap(self, start_ns: int, end_ns: int, reason: str, pre_held: bool = False) -> None:
        log.warning("databento: gap (%s) %s .. %s", reason, _iso(start_ns), _iso(end_ns))
        self.gaps.append((start_ns, end_ns, reason))
        # count and hold together, ordered with _gap_done's release (ingest lock first)
        with self.ingest.lock, self._gap_lock:
            if not pre_held:
                self._gaps_outstanding += 1
            self.ingest.hold(start_ns)
        try:
            self._backfill_pool.submit(self._backfill, start_ns, end_ns)
        except RuntimeError:  # shutting down: nothing more to backfill
            self._gap_done()

    def _backfill(self, start_ns: int, end_ns: int) -> None:
        try:
            if self.backfiller is None:
                self.backfills["skipped_no_source"] = self.backfills.get("skipped_no_source", 0) + 1
                return
            result = self.backfiller.backfill(start_ns, end_ns)
            self.backfills[result.status] = self.backfills.get(result.status, 0) + 1
            for array in result.arrays:
                self.ingest.on_mbo(array, source="backfill", dedupe=True)
        except Exception as exc:
            self.last_error = f"backfill: {exc}"
            log.exception("databento: backfill failed")
        finally:
            self._gap_done()

    def _gap_done(self) -> None:
        # release under the same locks as the count: a gap reported meanwhile either
        # counted first (no release) or holds again after the release
        with self.ingest.lock, self._gap_lock:
            self._gaps_outstanding = max(self._gaps_outstanding - 1, 0)
            if self._gaps_outstanding == 0:
                self.ingest.release()

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
            except Exception as exc:
                self.last_error = f"pump: {exc}"
                log.exception("databento: pump failed")

    # -- health ------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        if self.state == "error":
            return False
        if self.config.mode == "replay":
            return True
        if self.state != "streaming":
            return False
        if not self._last_record_wall:
            return True
        return time.monotonic() - self._last_record_wall < self.config.stale_after_s

    def health(self) -> dict[str, Any]:
        counts = self.ingest.counts()
        budget = self.backfiller.budget_used() if self.backfiller else 0.0
        stats = getattr(self.producer, "stats", {}) or {}
        return {
            "state": self.state,
            "healthy": self.healthy,
            "mode": self.config.mode,
            "last_mbo_at": _iso(self.ingest.last_mbo_ts_ns),
            "last_window_end": self._last_window_end.isoformat() if self._last_window_end else None,
            "records_seen": sum(counts["seen"].values()),
            "records": counts,
            "instruments": len(self.ingest.instruments),
            "open_windows": self.aggregator.open_windows,
            "windows_emitted": self.windows_emitted,
            "windows_sent": self.windows_sent,
            "kinesis": {k: v for k, v in dict(stats).items() if isinstance(v, int | float)},
            "gaps": len(self.gaps),
            "backfills": dict(self.backfills),
            "backfill_budget_used": budget if budget == budget else 0.0,
            "loops": self.loops,
            "last_error": self.last_error,
        }


def from_settings(settings: Any) -> DatabentoSession:
    """The production wiring from gateway_host.settings.GatewaySettings."""
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
    )
    backfiller = None
    if config.mode == "live" and config.api_key is not None:
        import databento as db

        historical = db.Historical(key=config.api_key.get_secret_value())
        backfiller = Backfiller(
            DatabentoHistoricalSource(historical, config.dataset, parents),
            DynamoBudgetLedger(settings.state_table),
            daily_budget_usd=settings.backfill_daily_budget_usd,
        )
    return DatabentoSession(
        config, producer=KinesisFlowProducer(settings.flow_stream), backfiller=backfiller
    )
