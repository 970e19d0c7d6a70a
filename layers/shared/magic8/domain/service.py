"""The prediction service: market data -> features -> XGBoost hierarchy, with three caches.

Used by the predict API (functions/predict) and by the monitor; it knows nothing of HTTP.

One batch:
1. one market-data read for every symbol of the batch that is not cached (+ VIX);
2. per trade, the prediction key = TradeRequest.cache_key() + snapshot identities
   (+ feature time) + model version; cached answers are reused;
3. feature rows for the remaining trades come from the feature cache or from ONE
   vectorised build_features call;
4. one model.predict call for all remaining rows;
5. the new answers are recorded in the confidence history, one point per trade identity
   with its feature row (a cached answer is already there), handed over in one call;
   every answer comes back in request order with its data source and age.

Missing or old market data never fails a batch: the answer says data_source
"unavailable" or "stale" and how old the data is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import partial
from typing import Any, Protocol

import numpy as np

from magic8.domain.cache import (
    CacheConfig,
    FeatureKey,
    PredictionCaches,
    PredictionKey,
    SnapshotIdentity,
    snapshot_identity,
    trade_keys,
)
from magic8.domain.confidence import ConfidencePoint, Trend, epoch_ms, series_name
from magic8.domain.decay import DEFAULT_HALF_LIFE_S, decay_factor, decayed_probability
from magic8.domain.market import MarketSnapshot
from magic8.domain.ports import HistoryRepository, MarketDataRepository
from magic8.domain.risk_reward import (
    CONTRACT_MULTIPLIER,
    PayoffFractions,
    trade_extremes,
)
from magic8.domain.trades import TradeRequest
from magic8.domain.warming import RequestCounter

log = logging.getLogger(__name__)

VIX = "VIX"
MAX_BATCH = 100
_ALL_OR_NOTHING = PayoffFractions()


def _value(member: object) -> str:
    """An enum member's value (a plain str), through a dict: Enum.value is a descriptor
    that costs ~20x a dict lookup, and a batch reads hundreds of them."""
    try:
        return _VALUES[member]
    except KeyError:
        value = str(getattr(member, "value", member))
        if isinstance(member, Enum):
            _VALUES[member] = value
        return value


_VALUES: dict[object, str] = {}


class ModelAnswerLike(Protocol):
    @property
    def win_probability(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def model_type(self) -> str: ...
    @property
    def model_version(self) -> str: ...


class Model(Protocol):
    """What the service needs of magic8.domain.model.ModelHierarchy."""

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> Sequence[str]: ...

    def predict(
        self, features: np.ndarray, symbols: Sequence[str], strategies: Sequence[str]
    ) -> Sequence[ModelAnswerLike]: ...


class FeatureBuilder(Protocol):
    """What the service needs of magic8.domain.features (the one feature module)."""

    def context(
        self, symbol_snapshot: MarketSnapshot, vix_snapshot: MarketSnapshot | None
    ) -> Any: ...

    def build(
        self, trades: Sequence[TradeRequest], contexts: Sequence[Any], now: datetime | None
    ) -> np.ndarray: ...


class DefaultFeatureBuilder:
    """magic8.domain.features, imported when first used."""

    def __init__(self) -> None:
        from magic8.domain import features

        self._features = features

    def context(self, symbol_snapshot: MarketSnapshot, vix_snapshot: MarketSnapshot | None) -> Any:
        return self._features.market_context_from_snapshots(symbol_snapshot, vix_snapshot)

    def build(
        self, trades: Sequence[TradeRequest], contexts: Sequence[Any], now: datetime | None
    ) -> np.ndarray:
        return np.asarray(self._features.build_features(trades, contexts, now=now))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._features.FEATURE_NAMES)


@dataclass(slots=True)
class Prediction:
    """One answer (treat as immutable; not frozen because a batch builds 100 of them and
    frozen dataclasses construct at half the speed)."""

    timestamp: str
    symbol: str
    strategy: str
    win_probability: float
    prediction: str  # WIN | LOSS
    threshold: float
    model_type: str
    model_version: str
    data_source: str
    data_age_s: float | None
    n_features: int
    # dollars: p * wf * max_profit - (1 - p) * lf * max_loss, x multiplier x quantity
    # (None when the trade's max profit or loss is unbounded)
    expected_value: float | None = None
    # confidence decay (magic8.domain.decay): how old the cached answer is (0: computed
    # now), the factor applied, and the model's probability before it
    cache_age_s: float = 0.0
    decay_factor: float = 1.0
    probability_undecayed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "symbol": self.symbol,
            "strategy": self.strategy,
            "win_probability": self.win_probability,
            "prediction": self.prediction,
            "threshold": self.threshold,
            "model_type": self.model_type,
            "model_version": self.model_version,
            "data_source": self.data_source,
            "data_age_s": self.data_age_s,
            "n_features": self.n_features,
            "expected_value": self.expected_value,
            "cache_age_s": self.cache_age_s,
            "decay_factor": self.decay_factor,
            "probability_undecayed": (
                self.win_probability
                if self.probability_undecayed is None
                else self.probability_undecayed
            ),
        }


@dataclass
class BatchMetrics:
    feature_hits: int = 0
    feature_misses: int = 0
    prediction_hits: int = 0
    prediction_misses: int = 0
    market_data_fetches: int = 0
    elapsed_ms: float = 0.0
    history_written: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature_hits": self.feature_hits,
            "feature_misses": self.feature_misses,
            "prediction_hits": self.prediction_hits,
            "prediction_misses": self.prediction_misses,
            "market_data_fetches": self.market_data_fetches,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "history_written": self.history_written,
        }
        if self.errors:
            out["errors"] = list(self.errors)
        return out


@dataclass(frozen=True)
class ServiceConfig:
    caches: CacheConfig = field(default_factory=CacheConfig)
    # market data older than this is served but flagged data_source "stale"
    stale_after_s: float = 900.0
    # Temporal features of a trade without a timestamp use the time of the market snapshot
    # (as in training: a trade at the time of the bars it sees); the snapshot's identity is
    # in the keys. Without any snapshot, the serve time floored to this grid is used, and
    # then it is part of the keys.
    feature_time_bucket_s: int = 300
    record_history: bool = True
    # history points carry the feature row the model scored (GET ...?include_features=true)
    history_features: bool = True
    # a prediction's threshold is its expected-value breakeven win probability plus this
    # margin (probability points): win_probability >= threshold means EV > 0 with room
    ev_margin: float = 0.0
    # a cached answer's probability shrinks toward the model's base rate for its symbol x
    # strategy with this half-life (seconds of cache age); <= 0 turns decay off
    decay_half_life_s: float = DEFAULT_HALF_LIFE_S
    # count requests per trade identity in a table of at most this many trades, for cache
    # warming of the most requested (magic8.domain.warming); 0: not counted
    track_requests: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def trade_points(
    preds: Sequence[Prediction],
    ts_ms: int,
    trades: Sequence[str] | None = None,
    rows: np.ndarray | None = None,
    feature_names: Sequence[str] = (),
) -> list[ConfidencePoint]:
    """The history points of one batch's new answers: one per trade identity (symbol,
    strategy, action, option kind, strikes), so each watched trade is one line of its
    series. Answers of one identity in one batch (premiums or predicted prices differ)
    are one point: their mean win probability (WIN when it reaches the mean threshold),
    count, min and max; the point keeps the feature row of the identity's first answer
    (rows[i] for preds[i]) as name -> value."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(preds):
        groups.setdefault((p.symbol, p.strategy, trades[i] if trades else ""), []).append(i)
    names = tuple(feature_names)
    keep_rows = rows is not None and bool(names) and rows.shape[-1] == len(names)
    points: list[ConfidencePoint] = []
    for (symbol, strategy, trade), idx in groups.items():
        group = [preds[i] for i in idx]
        probs = [p.win_probability for p in group]
        n = len(group)
        mean = probs[0] if n == 1 else math.fsum(probs) / n
        threshold = group[0].threshold if n == 1 else math.fsum(p.threshold for p in group) / n
        last = group[-1]
        points.append(
            ConfidencePoint(
                symbol=symbol,
                strategy=strategy,
                ts_ms=ts_ms,
                win_probability=round(mean, 6),
                prediction="WIN" if mean >= threshold else "LOSS",
                threshold=round(threshold, 6),
                model_type=last.model_type,
                model_version=last.model_version,
                data_source=last.data_source,
                count=n,
                min_probability=min(probs),
                max_probability=max(probs),
                trade=trade,
                # as computed (NaN for a missing input; shown as null): kept as the array
                # row until a writer needs it (the queue message packs the rows at once)
                feature_row=rows[idx[0]] if keep_rows and rows is not None else None,
                feature_names=names if keep_rows else (),
            )
        )
    return points


class PredictionService:
    def __init__(
        self,
        market_repo: MarketDataRepository,
        model: Model,
        history_repo: HistoryRepository | None = None,
        clock: Callable[[], datetime] = _utc_now,
        config: ServiceConfig | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        features: FeatureBuilder | None = None,
    ) -> None:
        self.market_repo = market_repo
        self.model = model
        self.history_repo = history_repo
        self.clock = clock
        self.config = config or ServiceConfig()
        self.monotonic = monotonic
        self.features: FeatureBuilder = features or DefaultFeatureBuilder()
        self.caches = PredictionCaches(self.config.caches, monotonic)
        self.n_features = len(model.feature_names)
        names = getattr(self.features, "names", None)
        if names is not None and tuple(names) != tuple(model.feature_names):
            raise ValueError(
                "model features do not match the feature module: retrain (magic8 train) "
                f"model has {len(model.feature_names)}, module builds {len(names)}"
            )
        self._contexts: dict[tuple[object, ...], Any] = {}
        self._base_rates: dict[tuple[str, str], float] = {}
        tracked = self.config.track_requests
        self.requests: RequestCounter | None = RequestCounter(tracked) if tracked > 0 else None
        payoff = getattr(model, "payoff", None)
        self._fractions: dict[str, PayoffFractions] = {
            str(k): PayoffFractions(float(v["win_fraction"]), float(v["loss_fraction"]))
            for k, v in (payoff if isinstance(payoff, dict) else {}).items()
        }
        self.started_at = clock()
        self.totals = BatchMetrics()
        self.batches = 0
        self.history_failures = 0  # deferred hand-overs that failed (after the response)

    # --- market data ----------------------------------------------------------------

    def _fetch(
        self, symbols: list[str], metrics: BatchMetrics
    ) -> tuple[dict[str, MarketSnapshot], bool]:
        """(snapshots, ok): a failed read degrades to no data, never fails the batch."""
        metrics.market_data_fetches += 1
        try:
            return dict(self.market_repo.get_snapshots(symbols)), True
        except Exception as exc:
            log.warning("market data read failed for %s: %s", symbols, exc)
            metrics.errors.append(f"market_data: {type(exc).__name__}")
            return {}, False

    def _market_for(
        self, symbols: Sequence[str], share: bool, metrics: BatchMetrics
    ) -> dict[str, MarketSnapshot | None]:
        """Snapshots for the symbols (+ VIX) through the market cache."""
        cache = self.caches.market
        wanted = list(dict.fromkeys([*symbols, VIX]))
        out: dict[str, MarketSnapshot | None] = {}
        missing: list[str] = []
        for sym in wanted:
            found, snap = cache.lookup(sym)
            if found:
                out[sym] = snap
            else:
                missing.append(sym)
        if missing:
            groups = [missing] if share else [[s] for s in missing]
            for group in groups:
                fetched, ok = self._fetch(group, metrics)
                for sym in group:
                    snap = fetched.get(sym)
                    out[sym] = snap
                    if not ok:
                        continue  # a failed read is not remembered
                    if snap is None:
                        cache.put(sym, None, self.config.caches.missing_market_ttl_s)
                    elif snap.source != "stale":  # a fallback is not remembered either
                        cache.put(sym, snap)
        return out

    def market_snapshot(self, symbol: str) -> MarketSnapshot | None:
        return self.market_read(symbol)[0]

    def market_read(self, symbol: str) -> tuple[MarketSnapshot | None, list[str]]:
        """The snapshot and the read errors (none: a None snapshot means "no data")."""
        metrics = BatchMetrics()
        return self._market_for([symbol], True, metrics).get(symbol), list(metrics.errors)

    def _context(
        self,
        symbol: str,
        snap: MarketSnapshot | None,
        vix: MarketSnapshot | None,
        trade: TradeRequest,
        key: tuple[object, ...] | None = None,
        feature_time: datetime | None = None,
    ) -> Any:
        if snap is None:
            # no market data: the context carries only what the trade itself says, at the
            # (bucketed) serve time
            placeholder = MarketSnapshot(
                symbol=symbol,
                last=trade.predicted_price,
                bars=(),
                updated_at=feature_time or self.feature_time(self.clock()),
                source="unavailable",
            )
            return self.features.context(placeholder, vix)
        if key is None:
            key = (snapshot_identity(symbol, snap), snapshot_identity(VIX, vix))
        ctx = self._contexts.get(key)
        if ctx is None:
            if len(self._contexts) > 256:
                self._contexts.clear()
            ctx = self.features.context(snap, vix)
            self._contexts[key] = ctx
        return ctx

    def data_source(self, snap: MarketSnapshot | None, now: datetime) -> tuple[str, float | None]:
        if snap is None:
            return "unavailable", None
        age = snap.age_seconds(now)
        if age > self.config.stale_after_s:
            return "stale", round(age, 1)
        return snap.source, round(age, 1)

    def feature_time(self, now: datetime) -> datetime:
        bucket = max(1, int(self.config.feature_time_bucket_s))
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % bucket, UTC)

    # --- prediction -----------------------------------------------------------------

    def predict_one(self, request: TradeRequest) -> tuple[Prediction, dict[str, Any]]:
        preds, metrics = self.predict_batch([request])
        return preds[0], metrics

    def prefetch_market(self, symbols: Sequence[str]) -> int:
        """Read the symbols' snapshots (+ VIX) into the market cache ahead of requests (cache
        warming); how many of them have data."""
        market = self._market_for(list(symbols), True, BatchMetrics())
        return sum(1 for sym in symbols if market.get(sym) is not None)

    def predict_batch(
        self,
        requests: Sequence[TradeRequest],
        share_market_data: bool = True,
        count_requests: bool = True,
        settle_history: bool = True,
        defer: Callable[[Callable[[], object]], None] | None = None,
    ) -> tuple[list[Prediction], dict[str, Any]]:
        """Answers in request order and the batch's metrics. count_requests: count the
        trades toward the most requested (when tracked; a warm-up is not counted).
        settle_history=False: the history hand-over may still be in flight on return; the
        caller overlaps it with its own work and calls settle_history() after.
        defer: the history hand-over (points built, sent, settled) is given to it as one
        task, to run after the response (magic8.after_response); history_written then
        counts the points the task will hand over."""
        started = time.perf_counter()
        metrics = BatchMetrics()
        if not requests:
            return [], metrics.to_dict()
        now = self.clock()
        ftime = self.feature_time(now)
        symbols = [_value(r.symbol) for r in requests]
        strategies = [_value(r.strategy) for r in requests]
        market = self._market_for(symbols, share_market_data, metrics)
        vix = market.get(VIX)
        vix_id = snapshot_identity(VIX, vix)
        version = self.model.version
        n = len(requests)

        # per symbol: the snapshot identity and, only without a snapshot, the serve time
        # (see ServiceConfig); both are part of the keys
        ftime_iso = ftime.isoformat()
        keyed: dict[str, tuple[SnapshotIdentity, str | None]] = {}
        for sym in set(symbols):
            ident = snapshot_identity(sym, market.get(sym))
            keyed[sym] = (ident, ftime_iso if ident[1] is None else None)
        fkeys: list[FeatureKey] = []
        pkeys: list[PredictionKey] = []
        for req, sym in zip(requests, symbols, strict=True):
            ident, ft = keyed[sym]
            fk, pk = trade_keys(req, ident, vix_id, ft, version)
            fkeys.append(fk)
            pkeys.append(pk)
        counter = self.requests
        if counter is not None and count_requests:
            tally = counter.count
            for req, fk in zip(requests, fkeys, strict=True):
                tally(fk.parts[0], req)  # the trade's cache key, already built
        pcache = self.caches.predictions
        pentry = pcache.entry
        # cached entries (expires_at, answer): the answer's age comes from expires_at
        entries = [pentry(pk) for pk in pkeys]
        answers: list[Any] = [None if e is None else e[1] for e in entries]
        todo = [i for i, ans in enumerate(answers) if ans is None]
        metrics.prediction_misses = len(todo)
        metrics.prediction_hits = n - len(todo)

        fresh: list[int] = []
        x: np.ndarray | None = None
        if todo:
            # unique prediction keys among the misses (a batch may repeat a trade)
            first_of: dict[PredictionKey, int] = {}
            for i in todo:
                first_of.setdefault(pkeys[i], i)
            uniq = list(first_of.values())
            fcache = self.caches.features
            fget = fcache.get
            cached_rows = [fget(fkeys[i]) for i in uniq]
            build_pos = [pos for pos, row in enumerate(cached_rows) if row is None]
            metrics.feature_misses = len(build_pos)
            metrics.feature_hits = len(uniq) - len(build_pos)
            if build_pos:
                build = [uniq[pos] for pos in build_pos]
                trades = [requests[i] for i in build]
                # one context per symbol with a snapshot; without one, per trade
                by_symbol: dict[str, Any] = {}
                contexts: list[Any] = []
                for i in build:
                    sym = symbols[i]
                    snap = market.get(sym)
                    if snap is None:
                        contexts.append(self._context(sym, None, vix, requests[i], None, ftime))
                        continue
                    ctx = by_symbol.get(sym)
                    if ctx is None:
                        key = (keyed[sym][0], vix_id)
                        ctx = by_symbol[sym] = self._context(
                            sym, snap, vix, requests[i], key, ftime
                        )
                    contexts.append(ctx)
                # now=None: each row's time is its trade's timestamp, else its context's asof
                matrix = np.asarray(self.features.build(trades, contexts, None), dtype=np.float64)
                matrix.setflags(write=False)  # cached rows are views of it: never mutated
                fput = fcache.put
                for j, i in enumerate(build):
                    fput(fkeys[i], matrix[j])
            if len(build_pos) == len(uniq):
                x = matrix
            else:
                x = np.empty((len(uniq), self.n_features))
                for pos, row in enumerate(cached_rows):
                    if row is not None:
                        x[pos] = row
                if build_pos:
                    x[build_pos] = matrix
            model_answers = self.model.predict(
                x, [symbols[i] for i in uniq], [strategies[i] for i in uniq]
            )
            pput = pcache.put
            for i, ans in zip(uniq, model_answers, strict=True):
                answers[i] = ans
                pput(pkeys[i], ans)
            if len(uniq) < len(todo):  # repeats in the batch share the first one's answer
                for i in todo:
                    answers[i] = answers[first_of[pkeys[i]]]
            fresh = uniq

        ts = now.isoformat()
        sources = {sym: self.data_source(market.get(sym), now) for sym in keyed}
        nf = self.n_features
        # confidence decay of cached answers (magic8.domain.decay): O(1) per answer
        half_life = self.config.decay_half_life_s
        mono = self.monotonic()
        ttl = pcache.ttl_s
        out: list[Prediction] = []
        for i in range(n):
            ans = answers[i]
            p0 = p = float(ans.win_probability)
            cache_age = 0.0
            factor = 1.0
            cached = entries[i]
            if cached is not None:
                cache_age = max(0.0, mono - (cached[0] - ttl))
                factor = decay_factor(cache_age, half_life)
                if factor != 1.0:
                    p = decayed_probability(p0, self._base_rate(symbols[i], strategies[i]), factor)
            thr, ev = self._ev(requests[i], strategies[i], p, float(ans.threshold), pkeys[i])
            source, age = sources[symbols[i]]
            out.append(
                Prediction(
                    ts,
                    symbols[i],
                    strategies[i],
                    round(p, 6),
                    "WIN" if p >= thr else "LOSS",
                    round(thr, 6),
                    str(ans.model_type),
                    str(ans.model_version),
                    source,
                    age,
                    nf,
                    ev,
                    round(cache_age, 3),
                    round(factor, 6),
                    round(p0, 6),
                )
            )
        if fresh and self.history_repo is not None and self.config.record_history:
            fresh_preds = [out[i] for i in fresh]
            identities = [requests[i].identity for i in fresh]
            # row pos of x = position of the trade in fresh (uniq)
            if defer is None:
                self._record(fresh_preds, now, metrics, identities, x)
            else:
                groups = zip(fresh_preds, identities, strict=True)
                metrics.history_written = len({(p.symbol, p.strategy, t) for p, t in groups})
                task = partial(self._record_after, fresh_preds, now, identities, x)
                task.label = "history"  # type: ignore[attr-defined]
                defer(task)
        if settle_history:
            self.settle_history()
        metrics.elapsed_ms = (time.perf_counter() - started) * 1000.0
        self._add_totals(metrics)
        return out, metrics.to_dict()

    def _base_rate(self, symbol: str, strategy: str) -> float:
        """The model's training win rate for (symbol, strategy), what a cached answer decays
        toward (model.base_rate when it has one, else 0.5); remembered per pair."""
        key = (symbol, strategy)
        rate = self._base_rates.get(key)
        if rate is None:
            fn = getattr(self.model, "base_rate", None)
            try:
                rate = float(fn(symbol, strategy)) if callable(fn) else 0.5
            except Exception:  # a model without usable rates: the uninformed prior
                rate = 0.5
            if not 0.0 <= rate <= 1.0:
                rate = 0.5
            self._base_rates[key] = rate
        return rate

    def _ev(
        self,
        trade: TradeRequest,
        strategy: str,
        p: float,
        model_threshold: float,
        key: object = None,
    ) -> tuple[float, float | None]:
        """(threshold, expected value in dollars) of one trade at win probability p: the
        EV-breakeven win probability + ServiceConfig.ev_margin, from the trade's max profit
        and max loss and the model's payoff fractions (manifest `payoff`). A trade whose
        profit or loss is unbounded keeps the model's threshold and has no EV."""
        # the trade's max profit / loss, computed once per validated trade (the
        # impossible-premium check already read it)
        wl = trade_extremes(trade)
        w, loss = wl
        if not (math.isfinite(w) and math.isfinite(loss)):
            return model_threshold, None
        frac = self._fractions.get(strategy, _ALL_OR_NOTHING)
        # scalar arithmetic of risk_reward.ev_breakeven / expected_value (no numpy here)
        gain, lose = w * frac.win_fraction, loss * frac.loss_fraction
        if gain < 0 or lose < 0 or gain + lose <= 1e-9:
            return model_threshold, None
        thr = min(1.0, max(0.0, lose / (gain + lose) + self.config.ev_margin))
        ev = (p * gain - (1.0 - p) * lose) * CONTRACT_MULTIPLIER * trade.quantity
        return thr, round(ev, 2)

    def _record(
        self,
        preds: list[Prediction],
        now: datetime,
        metrics: BatchMetrics,
        trades: Sequence[str] | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        """One history point per trade identity of the batch (see trade_points), handed
        to the history repository in one call (in AWS one SQS message: one round trip,
        whatever the batch size; a consumer writes them)."""
        assert self.history_repo is not None
        names = self.model.feature_names if self.config.history_features else ()
        points = trade_points(preds, epoch_ms(now), trades, rows, names)
        try:
            metrics.history_written = self.history_repo.record(points)
        except Exception as exc:  # history is best effort: the answer matters more
            log.warning("confidence history write failed: %s", exc)
            metrics.errors.append(f"history: {type(exc).__name__}")

    def _record_after(
        self,
        preds: list[Prediction],
        now: datetime,
        trades: Sequence[str],
        rows: np.ndarray | None,
    ) -> None:
        """The deferred form of _record + settle_history (after the response: a failure
        is logged and counted in history_failures, the answer has gone)."""
        metrics = BatchMetrics()
        self._record(preds, now, metrics, trades, rows)
        self.settle_history()
        if metrics.errors:
            self.history_failures += 1

    def settle_history(self, timeout_s: float | None = None) -> None:
        """Wait (at most the repository's budget) for history hand-overs still in flight:
        the API calls it after serialising its answer, so the send overlaps that work."""
        settle = getattr(self.history_repo, "settle", None)
        if callable(settle):
            try:
                settle(timeout_s)
            except Exception as exc:  # best effort, as _record
                log.warning("confidence history hand-over failed: %s", exc)

    def _add_totals(self, m: BatchMetrics) -> None:
        t = self.totals
        self.batches += 1
        t.feature_hits += m.feature_hits
        t.feature_misses += m.feature_misses
        t.prediction_hits += m.prediction_hits
        t.prediction_misses += m.prediction_misses
        t.market_data_fetches += m.market_data_fetches
        t.history_written += m.history_written
        t.elapsed_ms += m.elapsed_ms

    # --- history --------------------------------------------------------------------

    def history(self, symbol: str, strategy: str, hours: float) -> list[ConfidencePoint]:
        if self.history_repo is None:
            return []
        now = self.clock()
        start = now - timedelta(hours=hours)
        return self.history_repo.query(
            series_name(symbol, strategy), epoch_ms(start), epoch_ms(now)
        )

    def trends(self, hours: float, series: Sequence[str] | None = None) -> list[Trend]:
        if self.history_repo is None:
            return []
        return self.history_repo.trends(hours, epoch_ms(self.clock()), series)

    # --- health ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "model_version": self.model.version,
            "n_features": self.n_features,
            "uptime_s": round((now - self.started_at).total_seconds(), 1),
            "batches": self.batches,
            "history_failures": self.history_failures,
            "totals": self.totals.to_dict(),
            "caches": self.caches.stats(),
        }
