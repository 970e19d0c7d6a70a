"""One monitoring sweep: re-score every watched trade, say what changed, check the gateway.

`run_sweep` is pure domain code. It reads the active watchlist, asks the SAME prediction
service the API uses for one batch prediction (one market-data read for the batch, so at
most one per symbol; the service records confidence history), and compares each trade's
win probability with the previous sweep's:

- crossing its threshold (either way) publishes ONE `confidence_cross` alert; while the
  probability stays on the same side nothing more is said about the crossing;
- moving more than `move_threshold` since the previous sweep also publishes one alert
  (one alert per trade per sweep, listing every reason);
- the first sweep of a trade only records a baseline.

During market hours it checks the gateway heartbeat: a heartbeat older than
`stale_after_s` (or none at all) opens an incident and publishes ONE `gateway_stale`
alert; a fresh heartbeat closes the incident, so the next staleness is a new incident.
An incident still open on a later session counts as a new one. The gateway's session is
CME Globex's (the NQ feed trades there; `gateway_session="nyse"` for NYSE hours): the
check, its alert and the sweep summary say which session it used.

If a publish fails, the trade's previous state is kept so the next sweep tries again.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from magic8.domain.alerts import Alert
from magic8.domain.ports import AlertPublisher
from magic8.domain.trades import TradeRequest
from magic8.market_hours import MarketCalendar, StreamingWindow, default_cme_calendar
from magic8.monitor.calendar import MARKET_CLOSE, MARKET_OPEN, is_market_hours, trading_day
from magic8.monitor.drift import DriftAccumulator, DriftMonitor, DriftReport, drift_alert
from magic8.monitor.push import ConfidenceUpdate, PushResult
from magic8.monitor.watchlist import WatchlistEntry, WatchlistStore

Clock = Callable[[], datetime]
_NYSE = MarketCalendar()


def utc_now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- ports


class PredictionService(Protocol):
    """The domain prediction service (magic8.domain.service.PredictionService)."""

    def predict_batch(
        self, requests: Sequence[TradeRequest], share_market_data: bool = True
    ) -> tuple[Sequence[Any], Any]:
        """(predictions in request order, batch metrics)."""
        ...


class HeartbeatReader(Protocol):
    def last_beat(self) -> datetime | None:
        """When the gateway last reported itself alive (None: never / unknown)."""
        ...


# Feature rows (names, matrix) the prediction service builds for these trades; None if
# it cannot say (e.g. no market data).
FeatureRowsFn = Callable[[Sequence[TradeRequest]], "tuple[Sequence[str], np.ndarray] | None"]


@dataclass
class DriftCheck:
    """Live feature distributions vs the training manifest, accumulated per trading day."""

    monitor: DriftMonitor
    rows: FeatureRowsFn


class UpdatePusher(Protocol):
    def push(self, messages: Sequence[ConfidenceUpdate]) -> PushResult: ...


# ----------------------------------------------------------------------------- config/state


class SweepConfig(BaseModel):
    """What the sweep needs to know (built from the monitor's settings)."""

    model_config = ConfigDict(frozen=True)

    move_threshold: float = Field(default=0.10, gt=0, le=1)
    stale_after_s: float = Field(default=180.0, gt=0)
    market_open: time = MARKET_OPEN
    market_close: time = MARKET_CLOSE
    share_market_data: bool = True
    # the gateway's session for stale checks: the CME Globex calendar (its streaming
    # window) or NYSE regular hours
    gateway_session: Literal["cme", "nyse"] = "cme"
    # keep an expired trade's last score this long (outcomes arrive after the close)
    retain_after_expiry_s: float = Field(default=36 * 3600, ge=0)


class CrossingState(BaseModel):
    """What the previous sweep saw for one watched trade."""

    model_config = ConfigDict(frozen=True)

    probability: float
    threshold: float
    above: bool
    at: datetime
    expires_at: datetime | None = None


class StaleIncident(BaseModel):
    model_config = ConfigDict(frozen=True)

    started_at: datetime
    day: date
    last_beat: datetime | None = None


class SweepState(BaseModel):
    """Everything one sweep hands to the next (one small item in the state table)."""

    crossings: dict[str, CrossingState] = Field(default_factory=dict)
    stale_incident: StaleIncident | None = None
    last_sweep_at: datetime | None = None
    drift: DriftAccumulator | None = None


class SweepStateStore(Protocol):
    def load(self) -> SweepState: ...

    def save(self, state: SweepState) -> None: ...


class InMemorySweepStateStore:
    def __init__(self) -> None:
        self.state = SweepState()
        self.saves = 0

    def load(self) -> SweepState:
        return self.state.model_copy(deep=True)

    def save(self, state: SweepState) -> None:
        self.state = state.model_copy(deep=True)
        self.saves += 1


# ----------------------------------------------------------------------------- result


@dataclass
class GatewayCheck:
    market_hours: bool
    last_beat: datetime | None
    age_s: float | None
    stale: bool
    alerted: bool = False
    incident_open: bool = False
    error: str | None = None
    # the calendar the check used: CME Globex (the NQ feed) or NYSE, and its session now
    session: dict[str, object] = field(default_factory=dict)


@dataclass
class SweepResult:
    started_at: datetime
    entries: int = 0
    symbols: list[str] = field(default_factory=list)
    updates: list[ConfidenceUpdate] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    crossings: int = 0
    moves: int = 0
    market_data_fetches: int | None = None
    gateway: GatewayCheck | None = None
    push: PushResult | None = None
    drift: DriftReport | None = None
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def stale_alerts(self) -> int:
        return sum(1 for a in self.alerts if a.kind == "gateway_stale")

    def summary(self) -> dict[str, Any]:
        g = self.gateway
        return {
            "started_at": self.started_at.isoformat(),
            "entries": self.entries,
            "symbols": self.symbols,
            "crossings": self.crossings,
            "moves": self.moves,
            "alerts": [a.kind for a in self.alerts],
            "market_data_fetches": self.market_data_fetches,
            "gateway_stale": bool(g and g.stale and g.market_hours),
            "gateway_age_s": None if g is None or g.age_s is None else round(g.age_s, 1),
            "gateway_session": g.session if g is not None else None,
            "pushed_connections": self.push.delivered if self.push else 0,
            "drift_max_psi": None if self.drift is None else round(self.drift.max_psi, 4),
            "drifted": [] if self.drift is None else [f.feature for f in self.drift.drifted],
            "errors": self.errors,
            "duration_ms": round(self.duration_ms, 2),
            "updates": [
                {
                    "entry_id": u.entry_id,
                    "symbol": u.symbol,
                    "strategy": u.strategy,
                    "strikes": _strikes_label(u.strikes),
                    "win_probability": u.win_probability,
                    "threshold": u.threshold,
                    "prediction": u.prediction,
                    "crossed": u.crossed,
                    "moved": u.moved,
                    "data_source": u.data_source,
                }
                for u in self.updates
            ],
        }


# ----------------------------------------------------------------------------- helpers


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a prediction / metrics field whether it is a model or a plain dict."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _strikes_label(strikes: Sequence[float]) -> str:
    return "/".join(f"{s:g}" for s in sorted(strikes))


def _cross_alert(
    entry: WatchlistEntry,
    update: ConfidenceUpdate,
    reasons: list[str],
    now: datetime,
) -> Alert:
    p, thr = update.win_probability, update.threshold
    if update.crossed:
        what = f"crossed {update.crossed} {thr:.2f}"
    else:
        prev = update.previous_probability or 0.0
        what = f"moved {p - prev:+.2f} (thr {thr:.2f})"
    subject = (
        f"{entry.symbol.value} {entry.strategy.value} {_strikes_label(entry.strikes)}: "
        f"win {p:.2f} {what}"
    )[:99]
    return Alert(
        kind="confidence_cross",
        symbol=entry.symbol.value,
        severity="warning" if update.crossed else "info",
        subject=subject,
        payload={
            "entry_id": entry.id,
            "reasons": reasons,
            "win_probability": p,
            "previous_probability": update.previous_probability,
            "threshold": thr,
            "prediction": update.prediction,
            "crossed": update.crossed,
            "model_type": update.model_type,
            "data_source": update.data_source,
            "entry": entry.model_dump(mode="json"),
            "sweep_at": now.isoformat(),
        },
        dedupe_key=f"confidence_cross:{entry.id}:{int(now.timestamp())}",
        created_at=now,
    )


def _publish(publisher: AlertPublisher, alert: Alert, result: SweepResult) -> bool:
    try:
        publisher.publish(alert)
    except Exception as exc:  # the next sweep retries: state for this item is not advanced
        result.errors.append(f"publish {alert.kind} {alert.symbol}: {exc}")
        return False
    result.alerts.append(alert)
    return True


def gateway_session_open(now: datetime, config: SweepConfig) -> bool:
    """Whether the gateway should be streaming now: its window on the CME Globex calendar
    (magic8/data/cme_sessions.json, from exchange_calendars' CMES) or NYSE hours."""
    if config.gateway_session == "nyse":
        return is_market_hours(now, config.market_open, config.market_close)
    return StreamingWindow(config.market_open, config.market_close).is_open(now)


def gateway_session(now: datetime, config: SweepConfig) -> tuple[date, dict[str, object]]:
    """(the day a stale incident belongs to, what the check says of the session): the CME
    Globex session (NQ futures and options trade on Globex) or the NYSE trading day."""
    if config.gateway_session == "nyse":
        day = trading_day(now, config.market_close)
        described = _NYSE.describe(now)
        return day, {"exchange": "NYSE", **described}
    cme = default_cme_calendar()
    return cme.session_day(now), cme.describe(now)


def check_gateway(
    heartbeat_reader: HeartbeatReader,
    state: SweepState,
    publisher: AlertPublisher,
    now: datetime,
    config: SweepConfig,
    result: SweepResult,
) -> GatewayCheck:
    in_hours = gateway_session_open(now, config)
    session_day, session = gateway_session(now, config)
    try:
        beat = heartbeat_reader.last_beat()
    except Exception as exc:  # cannot tell: say so, change nothing
        check = GatewayCheck(in_hours, None, None, False, error=str(exc), session=session)
        check.incident_open = state.stale_incident is not None
        result.errors.append(f"heartbeat: {exc}")
        return check
    age = None if beat is None else max(0.0, (now - beat).total_seconds())
    stale = age is None or age > config.stale_after_s
    # a live heartbeat over a feed that delivers no MBO (only Databento heartbeats) is stale
    # too: the data's own age, not the process's, during the streaming window
    full = getattr(heartbeat_reader, "last", None)
    mbo_at = getattr(full, "last_mbo_at", None)
    streaming = str(getattr(full, "databento_state", "")).startswith("streaming")
    data_age = None if mbo_at is None else max(0.0, (now - mbo_at).total_seconds())
    no_data = bool(
        not stale
        and in_hours
        and streaming
        and (data_age is None or data_age > config.stale_after_s)
    )
    stale = stale or no_data
    check = GatewayCheck(in_hours, beat, age, stale, session=session)
    if not stale:
        state.stale_incident = None  # fresh again: the incident (if any) is over
    elif in_hours:
        day = session_day
        incident = state.stale_incident
        if incident is None or incident.day != day:
            age_txt = "never" if age is None else f"{age:.0f}s ago"
            if no_data:
                mbo_txt = "never" if data_age is None else f"{data_age:.0f}s ago"
                subject = f"magic8 gateway streaming but no MBO data (last {mbo_txt})"
            else:
                subject = f"magic8 gateway heartbeat stale (last {age_txt})"
            alert = Alert(
                kind="gateway_stale",
                symbol="GATEWAY",
                severity="critical",
                subject=subject,
                payload={
                    "reason": "no_mbo_data" if no_data else "heartbeat",
                    "mbo_age_s": data_age,
                    "last_beat": beat.isoformat() if beat else None,
                    "age_s": age,
                    "stale_after_s": config.stale_after_s,
                    "detected_at": now.isoformat(),
                    "session": session,
                },
                dedupe_key=f"gateway_stale:{int(now.timestamp())}",
                created_at=now,
            )
            if _publish(publisher, alert, result):
                state.stale_incident = StaleIncident(started_at=now, day=day, last_beat=beat)
                check.alerted = True
    check.incident_open = state.stale_incident is not None
    return check


def check_drift_step(
    drift: DriftCheck,
    state: SweepState,
    entries: Sequence[WatchlistEntry],
    publisher: AlertPublisher,
    now: datetime,
    config: SweepConfig,
    result: SweepResult,
) -> None:
    """Add this sweep's feature rows to the rolling window's counts; while the window's
    PSI is over the threshold, one `drift` alert per trading day."""
    if not is_market_hours(now, config.market_open, config.market_close):
        return  # after the close the market features stand still: nothing new to count
    day = trading_day(now, config.market_close)
    acc = state.drift or DriftAccumulator()
    try:
        got = drift.rows([e.trade_request() for e in entries])
    except Exception as exc:
        result.errors.append(f"drift rows: {exc}")
        return
    if got is None:
        return
    names, matrix = got
    acc = drift.monitor.accumulate(acc, day, names, matrix)
    report = drift.monitor.report(acc)
    result.drift = report
    if report.drifted and acc.alerted_day != day:
        alert = drift_alert(report, now, drift.monitor.model_version)
        if alert is not None and _publish(publisher, alert, result):
            acc = acc.model_copy(update={"alerted_day": day})
    state.drift = acc


# ----------------------------------------------------------------------------- the sweep


def run_sweep(
    watchlist_store: WatchlistStore,
    prediction_service: PredictionService,
    crossing_state_store: SweepStateStore,
    publisher: AlertPublisher,
    heartbeat_reader: HeartbeatReader,
    clock: Clock = utc_now,
    settings: SweepConfig | None = None,
    pusher: UpdatePusher | None = None,
    drift: DriftCheck | None = None,
) -> SweepResult:
    config = settings or SweepConfig()
    t0 = _time.perf_counter()
    now = clock()
    result = SweepResult(started_at=now)
    state = crossing_state_store.load()

    entries = watchlist_store.list_active(now)
    result.entries = len(entries)
    result.symbols = sorted({e.symbol.value for e in entries})
    predictions: Sequence[Any] = []
    if entries:
        try:
            predictions, metrics = prediction_service.predict_batch(
                [e.trade_request() for e in entries], config.share_market_data
            )
            result.market_data_fetches = _field(metrics, "market_data_fetches")
            if len(predictions) != len(entries):
                raise RuntimeError(f"{len(predictions)} predictions for {len(entries)} entries")
        except Exception as exc:
            result.errors.append(f"predict_batch: {exc}")
            predictions = []

    new_crossings: dict[str, CrossingState] = {}
    for entry, pred in zip(entries, predictions, strict=False):
        p = float(_field(pred, "win_probability"))
        thr = float(_field(pred, "threshold", 0.5))
        above = p >= thr
        prev = state.crossings.get(entry.id)
        crossed: Literal["above", "below"] | None = None
        moved = False
        if prev is not None:
            if prev.above != above:
                crossed = "above" if above else "below"
            moved = abs(p - prev.probability) > config.move_threshold
        update = ConfidenceUpdate(
            sweep_at=now,
            entry_id=entry.id,
            symbol=entry.symbol.value,
            strategy=entry.strategy.value,
            strikes=list(entry.strikes),
            win_probability=p,
            threshold=thr,
            prediction=str(_field(pred, "prediction", "WIN" if above else "LOSS")),
            previous_probability=None if prev is None else prev.probability,
            crossed=crossed,
            moved=moved,
            model_type=_opt_str(_field(pred, "model_type")),
            data_source=_opt_str(_field(pred, "data_source")),
        )
        result.updates.append(update)
        current = CrossingState(
            probability=p, threshold=thr, above=above, at=now, expires_at=entry.expiry
        )
        if crossed or moved:
            reasons = ([f"crossed_{crossed}"] if crossed else []) + (["moved"] if moved else [])
            if _publish(publisher, _cross_alert(entry, update, reasons, now), result):
                result.crossings += bool(crossed)
                result.moves += bool(moved)
            else:
                assert prev is not None
                current = prev  # not said yet: say it next sweep
        new_crossings[entry.id] = current

    if predictions or not entries:
        # Trades no longer watched: keep their last score for a while (POST /outcomes
        # reads it), then forget. Trades we failed to score keep their old state.
        retain = timedelta(seconds=config.retain_after_expiry_s)
        for key, old in state.crossings.items():
            if key not in new_crossings and old.expires_at and old.expires_at + retain > now:
                new_crossings[key] = old
        state.crossings = new_crossings
    if drift is not None and predictions:
        check_drift_step(drift, state, entries, publisher, now, config, result)
    result.gateway = check_gateway(heartbeat_reader, state, publisher, now, config, result)
    state.last_sweep_at = now
    try:
        crossing_state_store.save(state)
    except Exception as exc:
        result.errors.append(f"save state: {exc}")

    if pusher is not None and result.updates:
        try:
            result.push = pusher.push(result.updates)
        except Exception as exc:
            result.errors.append(f"push: {exc}")
    result.duration_ms = (_time.perf_counter() - t0) * 1000.0
    return result


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(getattr(v, "value", v))
