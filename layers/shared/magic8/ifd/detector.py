"""The IFD use case: one pressure window in, at most one signal (and alert) out.

Order of side effects makes redelivery safe: analyse -> alert (idempotent, rate-capped)
-> store the signal (idempotent put) -> fold the window into the option's state last.
A final window at or before the option's high-water mark is a redelivery and is skipped;
a failure before the state is saved recomputes the same signal on retry.
Early-emitted (``final=False``) windows are analysed and may alert, but only final
windows update baselines. A window alerts at most once: when an early version of it
alerted, later versions (more early cuts, the final window) update the stored signal and
never dispatch again; later windows of the same option and direction within
``realert_minutes`` of the alert or of its last continuation are continuations (stored,
not sent): one alert per episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from magic8.domain.flow import WINDOW_SECONDS, PressureWindow
from magic8.ifd.analysis import AnalysisConfig, Assessment, analyze
from magic8.ifd.baselines import (
    Baseline,
    BaselineConfig,
    baseline_stats,
    log_volume,
    tod_bucket,
    trading_day,
)
from magic8.ifd.ports import BaselineStore, SignalDispatch, SignalStore, WindowStore
from magic8.ifd.values import AlertStatus, OptionState, Signal, SignalPolicy, WindowLite


@dataclass(frozen=True)
class IfdConfig:
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    policy: SignalPolicy = field(default_factory=SignalPolicy)


@dataclass(frozen=True)
class Outcome:
    window_key: str
    assessment: Assessment | None = None
    signal: Signal | None = None
    skipped: str = ""  # "duplicate" | "not_an_option"

    @property
    def alert_status(self) -> AlertStatus:
        return self.signal.alert_status if self.signal else "none"


@dataclass
class IfdDetector:
    """The use case: its ports (stores and the alert dispatch) and its configuration."""

    baselines: BaselineStore
    windows: WindowStore
    signals: SignalStore
    dispatch: SignalDispatch
    config: IfdConfig = field(default_factory=IfdConfig)

    def observe(self, windows: Sequence[PressureWindow]) -> None:
        """Make a batch's windows visible as peers before any of them is analysed."""
        options = [w for w in windows if w.option_type is not None and w.strike is not None]
        if options:
            step = timedelta(seconds=WINDOW_SECONDS)
            for underlying in sorted({w.underlying for w in options}):
                mine = {w.window_start for w in options if w.underlying == underlying}
                # each window's own slot and the one before it (its "previous" peers)
                self.windows.prefetch(underlying, sorted(mine | {t - step for t in mine}))
            keys = {(w.underlying, w.option_type or "", float(w.strike or 0)) for w in options}
            self.baselines.prefetch(sorted(keys))
            # each window's volume against its own baseline: a neighbour coordinates only
            # when it is unusual for itself
            self.windows.put_many(options, {w.window_key: self._volume_z(w) for w in options})

    def _volume_z(self, w: PressureWindow) -> float:
        cfg = self.config
        state = self.baselines.load_option(w.underlying, w.option_type or "", w.strike or 0.0)
        prior = self.baselines.load_prior(w.underlying, w.option_type or "")
        stats = baseline_stats(
            state.baseline if state is not None else Baseline(),
            prior or Baseline(),
            trading_day(w.window_start),
            tod_bucket(w.window_start, cfg.baseline.bucket_minutes),
            cfg.baseline,
        )
        return stats.volume_z(w.total_volume, cfg.analysis.logvol_std_floor)

    def flush(self) -> None:
        """End of a batch: persist buffered state (call it even when records failed)."""
        self.baselines.flush()

    def handle(self, w: PressureWindow) -> Outcome:
        if w.option_type is None or w.strike is None:
            return Outcome(w.window_key, skipped="not_an_option")
        cfg = self.config
        ws = int(w.window_start.timestamp())
        state = self.baselines.load_option(w.underlying, w.option_type, w.strike) or OptionState(
            w.underlying, w.option_type, w.strike
        )
        prior = None
        day = trading_day(w.window_start)
        bucket = tod_bucket(w.window_start, cfg.baseline.bucket_minutes)
        if state.last_ws is not None and ws <= state.last_ws and w.final:
            old = state.recorded(ws)
            if old is None or old == WindowLite.of(w):
                return Outcome(w.window_key, skipped="duplicate")
            # a revised window (late trades / backfill re-emit it): replace its contribution
            prior = self.baselines.load_prior(w.underlying, w.option_type) or Baseline()
            for b in (state.baseline, prior):
                b.remove(day, bucket, old.ratio, log_volume(old.volume))
        if prior is None:
            prior = self.baselines.load_prior(w.underlying, w.option_type) or Baseline()
        stats = baseline_stats(state.baseline, prior, day, bucket, cfg.baseline)
        peers = self.windows.peers(w.underlying, w.window_start)
        previous = self.windows.peers(
            w.underlying, w.window_start - timedelta(seconds=WINDOW_SECONDS)
        )
        history = [h for h in state.recent if h.ws < ws]
        assessment = analyze(w, history, peers, stats, cfg.analysis, previous)

        signal: Signal | None = None
        alerted = False
        # an early version of this window alerted already: this one updates the signal
        sent_before = state.last_alert_ws == ws and (
            assessment.direction is None or state.last_alert_direction == assessment.direction
        )
        if assessment.direction is not None and (
            assessment.confidence >= cfg.policy.store_threshold or sent_before
        ):
            signal = Signal.from_assessment(w, assessment)
            status: AlertStatus = "none"
            if sent_before:
                status = "sent"
            elif assessment.confidence >= cfg.policy.alert_threshold:
                if self._continuation(state, ws, assessment.direction):
                    status = "continuation"
                    state.last_chain_ws = max(state.last_chain_ws or ws, ws)
                else:
                    status = self.dispatch(signal).status
                    alerted = status == "sent"
            signal = signal.with_status(status)
            self.signals.put(signal)

        if alerted:
            state.last_alert_ws, state.last_alert_direction = ws, assessment.direction
            state.last_chain_ws = ws
        if w.final:
            state.apply(w, cfg.baseline.bucket_minutes)
            state.baseline.roll(day, cfg.baseline.trading_days)
            prior.add_window(w, cfg.baseline.bucket_minutes)
            prior.roll(day, cfg.baseline.trading_days)
            self.baselines.save_prior(w.underlying, w.option_type, prior)
        if w.final or alerted or (signal is not None and signal.alert_status == "continuation"):
            self.baselines.save_option(state)
        return Outcome(w.window_key, assessment, signal)

    def _continuation(self, state: OptionState, ws: int, direction: str) -> bool:
        if state.last_alert_ws is None or state.last_alert_direction != direction:
            return False
        chain = max(state.last_alert_ws, state.last_chain_ws or state.last_alert_ws)
        return (
            ws - state.last_alert_ws > 0 and ws - chain <= self.config.policy.realert_minutes * 60
        )
