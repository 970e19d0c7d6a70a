"""GatewayReplayComponent: the Databento half of the gateway host, on the local stack.

Replays the shipped sample session (magic8_dev/data/sessions/sample: generated NQ options
definitions + MBO, real DBN files) through the gateway's DatabentoSession, paced and
looping, into the Kinesis `flow` stream on moto, where the Kinesis poller hands the
windows to the ifd handler.

Wall-clock mapping ("stamped now"): every window is shifted by one constant offset
(`live_shift`), whole days plus a multiple of 5 minutes, chosen so that the last replayed
day's session close lands on now (rounded down to 5 minutes): the most recent replayed
windows, signals and alerts are stamped within the last minutes, every earlier day on the
days before. One constant offset keeps everything the IFD compares intact: the order and
spacing of the days and the time-of-day buckets of the baselines, which move together for
every day (the same windows share a bucket on every day). The close lands on now at any
time of day: in the New York night a shifted session straddles midnight, so each day splits
into two exchange-local dates the same way; measured on the sample (the detector offline,
`make run`'s two afternoons and all eight whole days, now = 19:00, 05:30, 06:40 and 07:55
UTC), the same signals and alerts as with the session inside one date. (Landing the close
on the previous New York evening instead, as before, left `make run` without a signal of
the last hour between midnight and 06:30 New York time; CI hit it.) An early window's cut
time (`emitted_at`) moves with its window. The window identities stay
stable across loops (idempotent signals). A shift re-anchored as the replay runs faster
than real time would merge the days into one: measured, the e2e pipeline then produced no
alert at all.

What is replayed: by default (`make run`) the afternoons (from MAGIC8_REPLAY_FROM_UTC,
default 17:00 UTC session time) of the sample's last two days (MAGIC8_REPLAY_DAYS=2: a
quiet day that warms the afternoon baselines, then the last day, whose episodes end about
25 and 110 minutes before its close). Records before that time of day are fast-forwarded
(read, not paced, their windows not sent): the detector's baselines are per time-of-day
bucket from earlier days, so an afternoon needs only earlier afternoons. The first signals
stamped within the last hour then arrive well within 90 s of healthy.
MAGIC8_REPLAY_DAYS=all and MAGIC8_REPLAY_FROM_UTC= (empty) replay all eight whole days
(the earlier ones stamped on the days before; the last day's signals after ~6 minutes).

Pacing: the replay runs at MAGIC8_REPLAY_SPEED times real time (default DEMO_SPEED in demo
mode, 1 with --no-demo), a rate the local pipeline keeps up with; the producer also waits
while the stream holds more than MAX_KINESIS_LAG records not yet read by the ifd event
source, and the session's outbox (windows waiting for the sender) holds at most
OUTBOX_BATCHES batches, so a replay that outruns the pipeline waits instead of queueing
without end (measured before: a 9,774-window backlog after 8 minutes). Backlog and lag
are in the status line.

NQ price: the sample's `ohlcv-1m` files (the NQ future's 1-minute bars, generated on the
options' price path) go through the same session into the same 5-minute bar aggregator as
live, released on the options' clock, shifted by the same whole days as the windows, and
written to the local bars table (GET /nq/bars, the dashboard's candlestick chart). The
status line and the heartbeat carry a spend estimate: the replayed records priced as if
they had been streamed live (the gateway's SpendTracker, in-memory ledger).

gateway_host is loaded by name (importlib), as the local runner does for handlers:
`magic8` never imports gateway_host at module level.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from magic8.domain.bars import Bar
from magic8.domain.flow import PressureWindow
from magic8.domain.heartbeat import GatewayHeartbeat
from magic8.settings import AwsSettings
from magic8_dev.local.context import LocalContext

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL_S = 5.0

SAMPLE_SESSION = Path(__file__).resolve().parents[1] / "data" / "sessions" / "sample"
DEMO_SPEED = 480.0  # one 6.5-hour session day in about 50 s
REAL_SPEED = 1.0
LOCAL_MAX_BUFFERED = 5_000  # windows in memory (producer) and in the session's outbox
LOCAL_FLUSH_TIMEOUT_S = 3.0
SPEED_ENV = "MAGIC8_REPLAY_SPEED"
MAX_KINESIS_LAG = 2000  # records put but not yet read by the event source
OUTBOX_BATCHES = 64  # batches of windows waiting for the session's sender


def shift_for(paths: Iterable[str], now: datetime | None = None) -> timedelta:
    """Whole days moving the replayed session's last day onto the last ended UTC day."""
    from magic8_dev.dashboard import session_days

    days = session_days([Path(p) for p in paths])
    if not days:
        return timedelta(0)
    now = now or datetime.now(UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC)
    return timedelta(days=(now - end) // timedelta(days=1))


SESSION_CLOSE_UTC = time_of_day(20, 0)  # the sample's regular close (truth.json generator)
SHIFT_GRID = timedelta(minutes=5)
DAYS_ENV = "MAGIC8_REPLAY_DAYS"
DEFAULT_LIVE_DAYS = 2


def live_shift(paths: Iterable[str], now: datetime | None = None) -> timedelta:
    """The constant offset that lands the last replayed day's session close on `now`
    (rounded down to SHIFT_GRID), whatever the time of day."""
    from magic8_dev.dashboard import session_days

    days = session_days([Path(p) for p in paths])
    if not days:
        return timedelta(0)
    now = now or datetime.now(UTC)
    close = datetime.combine(days[-1], SESSION_CLOSE_UTC, UTC)
    target = now - (now - datetime(2000, 1, 1, tzinfo=UTC)) % SHIFT_GRID
    return target - close


FROM_ENV = "MAGIC8_REPLAY_FROM_UTC"
DEFAULT_FROM_UTC = "17:00"


def live_from(raw: str | None = None) -> time_of_day | None:
    """The session time of day (UTC) from which the live replay sends windows (None: all)."""
    text = (raw if raw is not None else os.environ.get(FROM_ENV, DEFAULT_FROM_UTC)).strip()
    if not text:
        return None
    hours, _, minutes = text.partition(":")
    return time_of_day(int(hours), int(minutes or 0))


def _tod_ns(ts_ns: int) -> int:
    return ts_ns % 86_400_000_000_000


def fast_forward_pacer(module: Any, skip_before: time_of_day) -> type:
    """The replay's Pacer that does not pace records earlier in their (UTC) day than
    `skip_before`: they are read at full speed (their windows are dropped by
    WallClockProducer), and pacing starts afresh at the first record after it."""
    cutoff_ns = (skip_before.hour * 3600 + skip_before.minute * 60) * 1_000_000_000

    class FastForwardPacer(module.Pacer):  # type: ignore[misc,name-defined]
        def wait_until(self, ts_ns: int) -> None:
            if _tod_ns(ts_ns) < cutoff_ns:
                self._anchor_wall = None
                return
            super().wait_until(ts_ns)

    return FastForwardPacer


def fast_forward_session(module: Any, skip_before: time_of_day) -> type:
    """The gateway's DatabentoSession replaying with fast_forward_pacer."""
    pacer_class = fast_forward_pacer(module, skip_before)

    class FastForwardSession(module.DatabentoSession):  # type: ignore[misc,name-defined]
        def _pacer(self) -> Any:
            return pacer_class(
                speed=self.config.speed or None,
                max_idle_seconds=self.config.max_idle_seconds,
                stop=self._stop.is_set,
            )

    return FastForwardSession


def live_paths(session: Path, days_env: str | None = None) -> tuple[str, ...]:
    """The day folders `make run` replays: the last MAGIC8_REPLAY_DAYS (default 2) of the
    session, or the whole session for "all"."""
    raw = (days_env if days_env is not None else os.environ.get(DAYS_ENV, "")).strip().lower()
    folders = sorted(p for p in session.iterdir() if p.is_dir() and p.name.startswith("day-"))
    if raw == "all" or not folders:
        return (str(session),)
    n = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_LIVE_DAYS
    return tuple(str(p) for p in folders[-n:])


class WallClockProducer:
    """A FlowProducer that shifts the windows by `shift` before the real one sends them,
    and holds the sender while the stream's unread lag is over max_lag."""

    def __init__(
        self,
        inner: Any,
        shift: timedelta = timedelta(0),
        lag: Callable[[], int] | None = None,
        max_lag: int = MAX_KINESIS_LAG,
        stop: threading.Event | None = None,
        send_from: time_of_day | None = None,
    ) -> None:
        self.inner = inner
        self.shift = shift
        # windows that start earlier in their (session) day are not sent (fast-forwarded)
        self.send_from = send_from
        self.skipped = 0
        self.lag = lag
        self.max_lag = max_lag
        self.stop = stop or threading.Event()
        self.waits = 0

    @property
    def pending(self) -> int:
        return int(getattr(self.inner, "pending", 0))

    def shifted(self, windows: list[PressureWindow]) -> list[PressureWindow]:
        if self.send_from is not None:
            keep = [w for w in windows if w.window_start.astimezone(UTC).time() >= self.send_from]
            self.skipped += len(windows) - len(keep)
            windows = keep
        d = self.shift
        if not d:
            return windows
        return [
            w.model_copy(
                update={
                    "window_start": w.window_start + d,
                    "window_end": w.window_end + d,
                    # an early window's cut time moves with it (as_of = min(cut, end))
                    "emitted_at": w.emitted_at + d if w.emitted_at is not None else None,
                }
            )
            for w in windows
        ]

    def _wait_for_lag(self) -> None:
        if self.lag is None:
            return
        while not self.stop.is_set() and self.lag() > self.max_lag:
            self.waits += 1
            self.stop.wait(0.1)

    def send(self, windows: Iterable[PressureWindow]) -> int:
        batch = self.shifted(list(windows))
        if not batch:
            return 0
        self._wait_for_lag()
        return int(self.inner.send(batch))

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        # the rest of the producer's surface (pending, interrupt, close, ...) is the inner one's
        return getattr(self.inner, name)


class ShiftedBarSink:
    """Bars shifted by the replay's whole days, then upserted into the bars table."""

    def __init__(self, store: Any, shift: timedelta = timedelta(0)) -> None:
        self.store = store
        self.shift = shift

    def __call__(self, bars: list[Bar]) -> None:
        self.store.put([b.shifted(self.shift) for b in bars])


class GatewayReplayComponent:
    name = "gateway"

    def __init__(
        self,
        paths: tuple[str, ...] | None = None,
        speed: float | None = None,
        loop: bool = True,
        wall_clock: bool = True,
    ) -> None:
        # default: the sample's last days, stamped now (wall_clock); the whole sample with
        # its own timestamps otherwise
        self.paths = paths or (live_paths(SAMPLE_SESSION) if wall_clock else (str(SAMPLE_SESSION),))
        # make run's default (the sample's last afternoons); explicit paths replay whole days
        self.live_default = paths is None and wall_clock
        self.wall_clock = wall_clock  # False: the session's own timestamps (scoring tests)
        self.speed = speed
        self.loop = loop
        self.session: Any = None
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._seen_records = 0
        self._last_mbo_wall: datetime | None = None
        self.heartbeats = 0
        self.producer: WallClockProducer | None = None
        self.spend: Any = None
        self._ctx: LocalContext | None = None

    def start(self, ctx: LocalContext) -> None:
        from magic8.adapters.bars_dynamo import DynamoBarStore
        from magic8.adapters.kinesis_flow import KinesisFlowProducer

        module = importlib.import_module("gateway_host.databento.session")
        spend_module = importlib.import_module("gateway_host.databento.spend")
        default = DEMO_SPEED if ctx.demo else REAL_SPEED
        speed = self.speed if self.speed is not None else float(os.environ.get(SPEED_ENV, default))
        self._ctx = ctx
        config = module.DatabentoConfig(
            mode="replay",
            replay_paths=self.paths,
            speed=speed,
            loop_replay=self.loop,
            max_idle_seconds=0.2,
            outbox_max_windows=LOCAL_MAX_BUFFERED,
        )
        # bounded: when moto cannot keep up, the replay waits (backpressure); Ctrl-C gives
        # the sender LOCAL_FLUSH_TIMEOUT_S to deliver what is buffered (make run stops <= 5 s)
        producer = KinesisFlowProducer(
            AwsSettings().flow_stream,
            max_buffered=LOCAL_MAX_BUFFERED,
            flush_timeout_s=LOCAL_FLUSH_TIMEOUT_S,
        )
        shift = live_shift(self.paths) if self.wall_clock else timedelta(0)
        send_from = live_from() if self.live_default else None
        self.producer = WallClockProducer(
            producer, shift=shift, lag=self.kinesis_lag, send_from=send_from
        )
        session_class = module.DatabentoSession
        if send_from is not None:
            session_class = fast_forward_session(module, send_from)
        ctx.facts["flow_shift_days"] = str(shift.days)
        ctx.facts["flow_shift_seconds"] = str(int(shift.total_seconds()))
        bars = ShiftedBarSink(DynamoBarStore(AwsSettings().bars_table), shift)
        # the replayed records' cost had they been streamed live ($25/day budget, $/GB est.)
        self.spend = spend_module.SpendTracker(budget=spend_module.SpendBudget(persist_every_s=5.0))
        self.session = session_class(config, producer=self.producer, bar_sink=bars)
        self.session.start()
        ctx.facts["flow_replay"] = ", ".join(self.paths)
        self._beat_thread = threading.Thread(
            target=self._heartbeat_loop, name="gateway-heartbeat", daemon=True
        )
        self._beat_thread.start()

    def heartbeat(self, final: bool = False) -> GatewayHeartbeat:
        """The heartbeat the real gateway host writes, from the replaying session's health.

        IB is not part of the local stack (snapshots are seeded), so its state is "disabled";
        last_mbo_at is the wall time the replay last delivered MBO records."""
        h = self.session.health()
        now = datetime.now(UTC)
        spend: dict[str, Any] = {}
        if self.spend is not None:
            self.spend.observe(h.get("records", {}).get("seen", {}))
            spend = {**self.spend.facts(), "estimate": "replayed records priced as if live"}
        if h.get("records_seen", 0) > self._seen_records:
            self._seen_records = h["records_seen"]
            self._last_mbo_wall = now
        return GatewayHeartbeat(
            updated_at=now,
            last_mbo_at=self._last_mbo_wall,
            ib_state="disabled",
            databento_state=f"{h.get('state', 'unknown')} ({h.get('mode', 'replay')})",
            connections={"ib": "disabled (seeded snapshots)", "databento": str(h.get("state"))},
            backfill_budget_used=float(h.get("backfill_budget_used", 0.0) or 0.0),
            spend={k: v for k, v in spend.items() if isinstance(v, bool | int | float | str)},
            healthy=bool(h.get("healthy", True)) and not final,
            final=final,
        )

    def _write_heartbeat(self, final: bool = False) -> None:
        from magic8.adapters.aws import resource

        table = resource("dynamodb").Table(AwsSettings().state_table)
        table.put_item(Item=self.heartbeat(final).to_item())
        self.heartbeats += 1

    def _heartbeat_loop(self) -> None:
        while not self._beat_stop.is_set():
            try:
                self._write_heartbeat()
            except Exception as exc:  # the next beat retries; the replay goes on
                log.warning("gateway heartbeat write failed: %s", exc)
            self._beat_stop.wait(HEARTBEAT_INTERVAL_S)

    def kinesis_lag(self) -> int:
        """Records in the stream not yet read by the ifd event source (0 without one)."""
        ctx = self._ctx
        if ctx is None or self.session is None:
            return 0
        polled = ctx.counters.get("ifd_polled")
        if polled is None:
            return 0
        return max(0, int(self.session.windows_sent) - polled())

    def backlog(self) -> int:
        """Windows emitted by the replay and not yet accepted by Kinesis."""
        if self.session is None:
            return 0
        skipped = self.producer.skipped if self.producer is not None else 0
        return max(0, int(self.session.windows_emitted) - int(self.session.windows_sent) - skipped)

    def status(self) -> str:
        if self.session is None:
            return "not started"
        h = self.session.health()
        reached = (h.get("last_mbo_at") or "-")[:16].replace("T", " ")
        shift = self.producer.shift if self.producer is not None else None
        shown = ""
        if shift:
            hours, rem = divmod(int(shift.total_seconds()) % 86400, 3600)
            shown = f" (stamped +{shift.days} d {hours} h {rem // 60} min: last close = now)"
        return (
            f"{h['state']} {h['mode']} x{self.session.config.speed:g} loop {h['loops'] + 1}: "
            f"{h['records_seen']:,} records, "
            f"{h['windows_sent']:,}/{h['windows_emitted']:,} windows sent, "
            f"backlog {self.backlog():,}, kinesis lag {self.kinesis_lag():,}, "
            f"session time {reached} UTC{shown}"
            + (f" (error: {h['last_error']})" if h.get("last_error") else "")
            + (f"; NQ bars {h['futures']['bars_written']:,} written" if h.get("futures") else "")
            + f"; {self.heartbeats} heartbeats"
        )

    def stop(self) -> None:
        if self.session is None:
            return
        self._beat_stop.set()
        if self.producer is not None:
            self.producer.stop.set()  # a sender waiting for the lag to shrink gives up
        if self._beat_thread is not None:
            self._beat_thread.join(timeout=5)
        self.session.stop()
        self.session.flush()
        with contextlib.suppress(Exception):
            self._write_heartbeat(final=True)
