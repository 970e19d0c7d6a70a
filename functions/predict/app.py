"""The predict API (FastAPI). functions/predict/handler.py serves it on Lambda via Mangum.

Endpoints: POST /predict, POST /predict/batch, POST /calculate_risk_reward,
GET /market/{symbol}, GET /confidence/history/{symbol}/{strategy}?hours=,
GET /confidence/trends?hours=, GET /health, GET /health/detailed — plus the routers
other capabilities register in ROUTERS below (one line each).

Bad input is never a 5xx: validation errors are 422 {"detail": [{"loc", "msg", "type"}]}
naming the field, an oversized batch (> 100) or body is 413.
The app knows nothing of Lambda or API keys (API Gateway / the local front enforce keys).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.predict.bars_routes import router as bars_router
from functions.predict.monitor_routes import router as monitor_router
from functions.predict.recommend_routes import Recommender, build_recommender
from functions.predict.settings import ApiSettings
from functions.predict.signals_routes import router as signals_router
from magic8.adapters.prediction_service import build_prediction_service
from magic8.domain import prediction_id
from magic8.domain.cache import TTLCache
from magic8.domain.confidence import lines as confidence_lines
from magic8.domain.confidence import series_name
from magic8.domain.plausibility import impossible_reason
from magic8.domain.risk_reward import risk_reward_for
from magic8.domain.service import MAX_BATCH, Prediction, PredictionService
from magic8.domain.trade_shape import (
    EASTERN,
    canonical_strategy,
    canonical_symbol,
    zone_was_assumed,
)
from magic8.domain.trades import Strategy, Symbol, TradeRequest
from magic8.domain.warming import CacheWarmer
from magic8.market_hours import MarketCalendar, default_cme_calendar
from magic8.wiring import Lazy

ServiceFactory = Callable[[ApiSettings], PredictionService]
BatchObserver = Callable[[int, dict[str, Any]], None]

log = logging.getLogger(__name__)

MARKET_SYMBOLS: tuple[str, ...] = (*[s.value for s in Symbol], "VIX")
MAX_HISTORY_HOURS = 24 * 30


# --- request / response models (the OpenAPI contract) -----------------------------------


class ValidatedTrades:
    """Validated trades by their raw JSON form, for a minute: the bot re-sends the same
    trades every few minutes, and a trade's validation (aliases, assumed strikes, bounds,
    the payoff memo) is a third of a cached batch's CPU. The key holds every raw value
    with its type (True never stands for 1), so only an identical trade is reused;
    TradeRequest is frozen. A minute keeps the time-dependent rule (a timestamp at most
    a year ahead) exact to within that minute."""

    TTL_S = 60.0
    MAX = 4096

    def __init__(self) -> None:
        # the project's TTL cache (expired first, then oldest, when full)
        self._cache: TTLCache[tuple[object, ...], TradeRequest] = TTLCache(
            self.TTL_S, self.MAX, name="validated_trades"
        )

    @staticmethod
    def key(raw: object) -> tuple[object, ...] | None:
        if type(raw) is not dict:
            return None
        parts: list[object] = []
        for k, v in raw.items():
            t = type(v)
            if t is list:
                items: list[object] = []
                for x in v:
                    tx = type(x)
                    if tx is not float and tx is not int:
                        return None
                    items.append(tx)
                    items.append(x)
                v = tuple(items)
            elif t not in (str, int, float, bool) and v is not None:
                return None
            parts.append((k, t, v))
        return tuple(parts)

    def validate(
        self, raw: object, handler: Callable[[object], list[TradeRequest]]
    ) -> list[TradeRequest]:
        if type(raw) is not list or not raw or len(raw) > MAX_BATCH:
            return handler(raw)
        keys = [self.key(item) for item in raw]
        get = self._cache.get
        out: list[TradeRequest | None] = [get(k) if k is not None else None for k in keys]
        missing = [i for i, trade in enumerate(out) if trade is None]
        if not missing:
            return out  # type: ignore[return-value]
        if len(missing) == len(raw):
            fresh = handler(raw)
        else:
            try:
                fresh = handler([raw[i] for i in missing])
            except ValidationError:
                return handler(raw)  # the errors located in the whole list
        if len(fresh) != len(missing):
            return handler(raw)
        for i, trade in zip(missing, fresh, strict=True):
            out[i] = trade
            k = keys[i]
            if k is not None:
                self._cache.put(k, trade)
        return out  # type: ignore[return-value]


VALIDATED = ValidatedTrades()


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    requests: Annotated[list[TradeRequest], Field(min_length=1, max_length=MAX_BATCH)]

    @field_validator("requests", mode="wrap")
    @classmethod
    def _reuse_validated(cls, raw: object, handler: Any) -> list[TradeRequest]:
        return VALIDATED.validate(raw, handler)

    share_market_data: bool = True
    recommend: bool = Field(
        default=False,
        description="add a `recommendation` block per prediction (see POST /recommend)",
    )


class TimeUsed(BaseModel):
    at: str = Field(description="the trade's time, US/Eastern")
    source: str = Field(
        description="timestamp | timestamp without zone (read as US/Eastern) | serve time"
    )


class PredictionOut(BaseModel):
    timestamp: str
    symbol: str
    strategy: str
    win_probability: float = Field(
        description="the model's win probability; for a cached answer, decayed toward the"
        " base rate by its age (see decay_factor)"
    )
    prediction: str = Field(
        description="WIN when win_probability >= threshold (positive expected value), else LOSS"
    )
    threshold: float = Field(
        description="the win probability at which this trade's expected value is zero (from"
        " its max profit and max loss), plus the configured margin"
    )
    model_type: str = Field(description="the level of the model hierarchy that answered")
    model_version: str
    data_source: str = Field(description="gateway | seed | replay | stale | unavailable")
    data_age_s: float | None
    n_features: int
    expected_value: float | None = Field(
        default=None,
        description="expected profit in dollars at win_probability (points x 100 x quantity);"
        " null when the trade's profit or loss is unbounded",
    )
    cache_age_s: float = Field(
        description="seconds since the model computed this answer: 0 when computed for this"
        " request, > 0 when served from the prediction cache"
    )
    decay_factor: float = Field(
        description="confidence decay of a cached answer: 2 ** (-cache_age_s / half-life)"
        " (MAGIC8_DECAY_HALF_LIFE_S, default 600 s; 1.0 when fresh or decay is off);"
        " win_probability = base_rate + (probability_undecayed - base_rate) * decay_factor,"
        " base_rate = the model's training win rate for the symbol x strategy"
    )
    probability_undecayed: float = Field(
        description="the model's probability when it was computed (before decay)"
    )
    prediction_id: str = Field(
        description="the answer's handle: POST /outcomes {prediction_id, won} records its result"
    )
    strikes: list[float] = Field(description="the strikes scored (sent or assumed)")
    action: str = Field(description="BUY | SELL (sent or assumed)")
    assumed: list[str] = Field(
        description='what the request left out and the service filled in: "strikes" '
        '(the strategy\'s standard Magic8 strikes around predicted_price), "action"'
    )

    time_used: TimeUsed
    market_open: bool = Field(description="the market was open at time_used.at")
    session: str = Field(description="regular | early_close | closed (NYSE, time_used's date)")
    warnings: list[str] = Field(description="e.g. market closed: answered, not a live trade")


class SinglePredictionOut(PredictionOut):
    cache_hit: bool = Field(description="served from the prediction cache (see cache_age_s)")


class BatchMetricsOut(BaseModel):
    feature_hits: int
    feature_misses: int
    prediction_hits: int
    prediction_misses: int
    market_data_fetches: int
    elapsed_ms: float


class BatchResponse(BaseModel):
    predictions: list[PredictionOut]
    batch_metrics: BatchMetricsOut


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str


TOO_LARGE = "Request too large"

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": f"{TOO_LARGE}: batch or body"},
    422: {"model": ErrorResponse, "description": "invalid input; loc names the field"},
}


# --- helpers ------------------------------------------------------------------------------


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(
        content=json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str),
        status_code=status_code,
        media_type="application/json",
    )


def prediction_response(payload: dict[str, Any]) -> Response:
    """The predict endpoints' answers (plain str / int / float / None / dict / list) through
    pydantic-core's serializer: the same JSON as json_response, 4x faster for a batch of
    100. Probabilities and ages are finite by construction (a NaN would become null)."""
    return Response(
        content=to_json(payload, inf_nan_mode="null"),
        status_code=200,
        media_type="application/json",
    )


def _error_items(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors reduced to JSON-safe {loc, msg, type} (no ctx exceptions,
    no echo of the possibly huge input); a model-level "strikes: ..." error gets the
    field appended to its loc."""
    items = []
    fields = set(TradeRequest.model_fields)
    for err in errors:
        loc = [p if isinstance(p, int) else str(p)[:64] for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))[:300]
        text = msg.removeprefix("Value error, ")
        head = text.split(":", 1)[0].strip()
        if head in fields and (not loc or loc[-1] != head):
            loc.append(head)
        items.append({"loc": loc, "msg": msg, "type": str(err.get("type", "value_error"))})
    return items


def unprocessable(loc: list[str | int], msg: str, type_: str = "value_error") -> Response:
    return json_response({"detail": [{"loc": loc, "msg": msg, "type": type_}]}, 422)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    items = _error_items(errors)
    for item in items:
        if item["type"] == "too_long" and item["loc"][:2] == ["body", "requests"]:
            too_big = {
                "loc": ["body", "requests"],
                "msg": f"{TOO_LARGE}: at most {MAX_BATCH} trades per batch",
                "type": "too_long",
            }
            return json_response({"detail": [too_big]}, 413)
    return json_response({"detail": items}, 422)


class BodyLimit:
    """Pure ASGI middleware: a body over max_bytes is a 413 before anything parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return buffered
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"{TOO_LARGE}: body over {self.max_bytes} bytes",
                        "type": "too_large",
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestStats:
    """Pure ASGI middleware: requests and latency over the last 60 s (for /health/detailed:
    requests_per_minute, avg_latency_ms), per warm container."""

    WINDOW_S = 60.0

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.samples: deque[tuple[float, float]] = deque(maxlen=100_000)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            end = time.monotonic()
            self.samples.append((end, (end - started) * 1000.0))

    def summary(self) -> dict[str, float | int | None]:
        cutoff = time.monotonic() - self.WINDOW_S
        while self.samples and self.samples[0][0] < cutoff:
            self.samples.popleft()
        n = len(self.samples)
        return {
            "requests_per_minute": n,
            "avg_latency_ms": round(sum(ms for _, ms in self.samples) / n, 3) if n else None,
        }


def build_warmer(service: PredictionService, settings: ApiSettings) -> CacheWarmer:
    """The cache warmer over the configured trades (a trade that does not validate is left
    out with a warning) and symbols, plus the most requested."""
    trades: list[TradeRequest] = []
    for i, raw in enumerate(settings.warm_trades):
        try:
            trades.append(TradeRequest.model_validate(raw))
        except ValueError as exc:
            log.warning("MAGIC8_WARM_TRADES[%d] left out: %s", i, str(exc)[:200])
    symbols = [str(canonical_symbol(s)).strip().upper() for s in settings.warm_symbols]
    return CacheWarmer(service, trades, symbols, top_n=settings.warm_top_n, max_batch=MAX_BATCH)


class ServiceHolder:
    """Builds the service on first use (the model loads on the first prediction, not on
    /health), then reuses it while the container is warm; remembers why a build failed.
    Right after the build, the configured trades and symbols are warmed (cache warming at
    init; nothing to do unless MAGIC8_WARM_TRADES / MAGIC8_WARM_SYMBOLS are set)."""

    def __init__(self, settings: ApiSettings, factory: ServiceFactory) -> None:
        self.settings = settings
        self.warmer: CacheWarmer | None = None
        self._service = Lazy(lambda: self._build(factory))
        self.error: str | None = None

    def _build(self, factory: ServiceFactory) -> PredictionService:
        service = _long_lived(factory(self.settings))
        self.warmer = build_warmer(service, self.settings)
        if self.warmer.trades or self.warmer.symbols:
            self.warmer.warm()
        return service

    def warm(self) -> dict[str, Any]:
        """One warm-up now (the predict function's 5-minute warm event)."""
        self.get()
        assert self.warmer is not None
        return self.warmer.warm().to_dict()

    @property
    def loaded(self) -> bool:
        return self._service.built

    def get(self) -> PredictionService:
        try:
            service = self._service()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        self.error = None
        return service


_FROZEN: list[bool] = []


def _long_lived(service: PredictionService) -> PredictionService:
    """The service (model, tables, clients) lives as long as the container: moved out of
    the garbage collector's generations (gc.freeze), a full collection during a request no
    longer walks it (those collections were the slow tail of a batch). Once per process:
    a process that builds many services (tests) would otherwise freeze their garbage too."""
    if not _FROZEN:
        _FROZEN.append(True)
        gc.collect()
        gc.freeze()
    return service


def _holder(request: Request) -> ServiceHolder:
    holder: ServiceHolder = request.app.state.service
    return holder


class ServiceUnavailable(Exception):
    """The service could not be built (model missing or not matching the feature module)."""


def _service(request: Request) -> PredictionService:
    holder = _holder(request)
    try:
        return holder.get()
    except Exception as exc:
        raise ServiceUnavailable(holder.error or type(exc).__name__) from exc


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's own HTTP errors, with an unparseable body reported like any invalid body."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    if status == 400 and detail == "There was an error parsing the body":
        return unprocessable(["body"], "the body is not valid JSON", "json_invalid")
    headers = getattr(exc, "headers", None)
    if status in (204, 304):
        return Response(status_code=status, headers=headers)
    response = json_response({"detail": detail}, status)
    if headers:
        response.headers.update(headers)
    return response


async def service_unavailable_handler(request: Request, exc: Exception) -> Response:
    return json_response({"detail": f"prediction service unavailable: {exc}"}, 503)


RETRY_AFTER_S = 5


def store_unavailable(detail: str, error: str) -> Response:
    response = json_response(
        {"detail": detail, "error": error, "retry_after_s": RETRY_AFTER_S}, 503
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def store_unavailable_handler(request: Request, exc: Exception) -> Response:
    """AWS unreachable, timing out or refusing (botocore error) on a route that cannot
    answer without its store: 503 with Retry-After and a JSON body, never a 500."""
    return store_unavailable("a backing store is unavailable; retry later", type(exc).__name__)


def _symbol_or_422(raw: str, allowed: tuple[str, ...], loc: list[str | int]) -> str | Response:
    sym = str(canonical_symbol(raw)).strip().upper()  # aliases: SPXW, $SPX, ...
    if sym not in allowed:
        return unprocessable(
            loc, f"unknown symbol {raw[:16]!r}; one of {', '.join(allowed)}", "enum"
        )
    return sym


def _strategy_or_422(raw: str, loc: list[str | int] | None = None) -> Strategy | Response:
    folded = str(canonical_strategy(raw)).strip().replace("_", " ").replace("-", " ").casefold()
    for member in Strategy:
        if member.value.casefold() == folded:
            return member
    names = ", ".join(s.value for s in Strategy)
    return unprocessable(
        loc or ["path", "strategy"], f"unknown strategy {raw[:24]!r}; one of {names}", "enum"
    )


CALENDAR = MarketCalendar()
CME_CALENDAR = default_cme_calendar()
TimeCache = dict[tuple[datetime, str], tuple[dict[str, Any], dict[str, Any]]]


class AnswerContext:
    """What the answers of one batch share: the serve time (parsed once), the id stamp
    and the market session per time used (a batch has few distinct times)."""

    __slots__ = ("served", "served_iso", "stamp", "times")

    def __init__(self, served_iso: str, expected: int = 1) -> None:
        self.served_iso = served_iso
        self.served = datetime.fromisoformat(served_iso)
        self.stamp = prediction_id.Stamp(self.served, expected)
        self.times: TimeCache = {}

    def time_and_session(
        self, at: datetime, source: str
    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """(time_used, market session, warnings) for a trade time."""
        hit = self.times.get((at, source))
        if hit is None:
            used = {"at": at.astimezone(EASTERN).isoformat(), "source": source}
            market = CALENDAR.describe(at)
            hit = self.times[at, source] = (used, market)
        used, market = hit
        if market["market_open"]:
            return used, market, []
        return (
            used,
            market,
            [
                f"market closed at {used['at']} ({market['session']} session): answered, "
                "but not a live trade"
            ],
        )


SERVE_TIME = "serve time (no timestamp sent)"
NAIVE_TIME = "timestamp without zone (read as US/Eastern)"


def answer(
    pred: Prediction, trade: TradeRequest, ctx: AnswerContext | None = None
) -> dict[str, Any]:
    """One prediction as the API answers it: the service's fields, the answer's id, the
    trade as scored (strikes and action, sent or assumed), the time used and the market
    session at that time (a closed session is answered, and flagged)."""
    if ctx is None or ctx.served_iso != pred.timestamp:
        ctx = AnswerContext(pred.timestamp)
    out = pred.to_dict()
    out["prediction_id"] = ctx.stamp.encode(
        pred.symbol, pred.strategy, pred.win_probability, pred.threshold
    )
    out["strikes"] = trade.strikes
    out["action"] = trade.action.value
    out["assumed"] = list(trade.assumed)
    ts = trade.timestamp
    if ts is None:
        used, market, warnings = ctx.time_and_session(ctx.served, SERVE_TIME)
    else:
        source = NAIVE_TIME if zone_was_assumed(ts) else "timestamp"
        used, market, warnings = ctx.time_and_session(ts, source)
    out["time_used"] = used
    out["market_open"] = market["market_open"]
    out["session"] = market["session"]
    out["warnings"] = warnings
    return out


def impossible(trades: list[TradeRequest], batch: bool) -> Response | None:
    """422 naming each trade whose premium makes it impossible (and why), else None."""
    items = []
    for i, trade in enumerate(trades):
        reason = impossible_reason(trade)
        if reason is not None:
            where: list[str | int] = (
                ["body", "requests", i, "premium"] if batch else ["body", "premium"]
            )
            items.append({"loc": where, "msg": reason, "type": "impossible_premium"})
    return json_response({"detail": items}, 422) if items else None


# --- routers ------------------------------------------------------------------------------

predict_router = APIRouter(tags=["predict"])
market_router = APIRouter(tags=["market"])
confidence_router = APIRouter(tags=["confidence"])
health_router = APIRouter(tags=["health"])


def _predict_one(
    trade: TradeRequest, request: Request
) -> Response | tuple[Any, dict[str, Any], dict[str, Any]]:
    """One trade as /predict and /recommend serve it: the impossible-premium 422, or the
    service's prediction, its answer and the batch metrics (observed and counted)."""
    rejected = impossible([trade], batch=False)
    if rejected is not None:
        return rejected
    preds, metrics = _service(request).predict_batch([trade], defer=_deferrer(request))
    observer: BatchObserver | None = request.app.state.observer
    if observer:
        observer(1, metrics)
    _observe_trades(request, preds)
    return preds[0], answer(preds[0], trade), metrics


@predict_router.post("/predict", response_model=SinglePredictionOut, responses=ERRORS)
async def predict(trade: TradeRequest, request: Request) -> Response:
    served = _predict_one(trade, request)
    if isinstance(served, Response):
        return served
    _, out, metrics = served
    out["cache_hit"] = metrics["prediction_hits"] == 1
    return prediction_response(out)


BATCH_PATH = "/predict/batch"


def _observe_trades(request: Request, preds: list[Prediction]) -> None:
    """Counts per symbol x strategy to the prediction observer (EMF dimensions)."""
    observer = getattr(request.app.state, "prediction_observer", None)
    if observer is None:
        return
    counts: dict[tuple[str, str], int] = {}
    for p in preds:
        key = (p.symbol, p.strategy)
        counts[key] = counts.get(key, 0) + 1
    observer(counts)


def _deferrer(request: Request | None) -> Callable[[Callable[[], object]], None] | None:
    """Where the history hand-over goes: after the response (magic8.after_response, set
    by deps.build_handler), else None (the service settles it before returning)."""
    after = getattr(request.app.state, "after_response", None) if request is not None else None
    return None if after is None else after.defer


def _batch_answer(
    service: PredictionService,
    batch: BatchRequest,
    observer: BatchObserver | None,
    recommender: Recommender | None = None,
    request: Request | None = None,
) -> bytes:
    defer = _deferrer(request)
    if defer is not None:
        # the history hand-over (points, one SendMessage) runs after the response
        preds, metrics = service.predict_batch(batch.requests, batch.share_market_data, defer=defer)
        return _serialise(preds, metrics, batch, observer, recommender, request)
    # without a host for after-response work: overlapped with serialising, settled before
    preds, metrics = service.predict_batch(
        batch.requests, batch.share_market_data, settle_history=False
    )
    try:
        return _serialise(preds, metrics, batch, observer, recommender, request)
    finally:
        service.settle_history()


def _serialise(
    preds: list[Prediction],
    metrics: dict[str, Any],
    batch: BatchRequest,
    observer: BatchObserver | None,
    recommender: Recommender | None,
    request: Request | None,
) -> bytes:
    if observer:
        observer(len(preds), metrics)
    if request is not None:
        _observe_trades(request, preds)
    ctx = AnswerContext(preds[0].timestamp, len(preds)) if preds else None
    answers = [answer(p, t, ctx) for p, t in zip(preds, batch.requests, strict=True)]
    if recommender is not None:
        for out, p, t in zip(answers, preds, batch.requests, strict=True):
            out["recommendation"] = recommender.for_trade(t, p.win_probability).to_dict()
    payload = {"predictions": answers, "batch_metrics": metrics}
    return to_json(payload, inf_nan_mode="null")


@predict_router.post(BATCH_PATH, response_model=BatchResponse, responses=ERRORS)
async def predict_batch(batch: BatchRequest, request: Request) -> Response:
    rejected = impossible(batch.requests, batch=True)
    if rejected is not None:
        return rejected
    recommender = request.app.state.recommender() if batch.recommend else None
    body = _batch_answer(_service(request), batch, request.app.state.observer, recommender, request)
    return Response(content=body, status_code=200, media_type="application/json")


class SourceScoreOut(BaseModel):
    score: float
    confidence: float


class RecommendationOut(BaseModel):
    decision: str = Field(description="EXECUTE | SKIP")
    reason: str
    final_score: float | None = Field(description="weighted mean of the sources' scores")
    confidence: float | None = Field(description="weighted mean of the sources' confidences")
    sources_used: list[str]
    scores: dict[str, SourceScoreOut]
    weights_used: dict[str, float] = Field(description="renormalised over the sources used")
    left_out: dict[str, str] = Field(description="source -> why (off, timeout, down, ...)")
    thresholds: dict[str, float]


class RecommendOut(BaseModel):
    prediction: PredictionOut
    recommendation: RecommendationOut


@predict_router.post("/recommend", response_model=RecommendOut, responses=ERRORS)
async def recommend_trade(trade: TradeRequest, request: Request) -> Response:
    """One recommendation for the trade from every enabled predictor: magic8's model
    (weight 0.5), MLOptionTrading (0.3) and Magic8-Companion (0.2) by default; flags and
    weights from feature flags (AppConfig in AWS, a JSON file locally). EXECUTE when
    final_score >= 0.7 and confidence >= 0.8. A source that is off, slow or down is left
    out and named, and the weights renormalise."""
    served = _predict_one(trade, request)
    if isinstance(served, Response):
        return served
    pred, out, _ = served
    rec = request.app.state.recommender().for_trade(trade, pred.win_probability)
    return prediction_response({"prediction": out, "recommendation": rec.to_dict()})


@predict_router.post("/calculate_risk_reward", responses=ERRORS)
async def calculate_risk_reward(trade: TradeRequest) -> Response:
    """Max profit, max loss (dollars: points x 100 x quantity, and points) and breakevens at
    expiry. BUY pays the premium, SELL receives it; strikes in any order."""
    try:
        rr = risk_reward_for(trade)
    except ValueError as exc:
        text = str(exc)
        field = text.split(":", 1)[0] if ":" in text else "body"
        return unprocessable(["body", field], text)
    if rr.max_loss < 0:  # a sure profit: the premium is more than the structure can be worth
        return unprocessable(
            ["body", "premium"],
            f"premium: {trade.premium:g} is more than this structure can be worth at expiry",
        )
    return json_response(rr.to_dict())


@market_router.get("/market/{symbol}", responses={404: {"model": ErrorResponse}, **ERRORS})
async def market(
    request: Request,
    symbol: Annotated[str, Path(max_length=16)],
    bars: Annotated[int, Query(ge=0, le=96, description="how many recent bars to include")] = 12,
) -> Response:
    sym = _symbol_or_422(symbol, MARKET_SYMBOLS, ["path", "symbol"])
    if isinstance(sym, Response):
        return sym
    service = _service(request)
    snap, errors = service.market_read(sym)
    if snap is None and errors:  # the table could not be read: not the same as "no data"
        return store_unavailable(f"market data for {sym} unavailable", errors[0])
    if snap is None:
        return json_response({"detail": f"no market data for {sym}"}, 404)
    now = service.clock()
    source, age = service.data_source(snap, now)
    recent = snap.bars[-bars:] if bars else ()
    return json_response(
        {
            "symbol": sym,
            "last": snap.last,
            "bid": snap.bid,
            "ask": snap.ask,
            "updated_at": snap.updated_at.isoformat(),
            "source": snap.source,
            "data_source": source,
            "data_age_s": age,
            "n_bars": len(snap.bars),
            "bars": [[b.ts, b.open, b.high, b.low, b.close, b.volume] for b in recent],
        }
    )


Hours = Annotated[float, Query(gt=0, le=MAX_HISTORY_HOURS, allow_inf_nan=False)]


@confidence_router.get("/confidence/history/{symbol}/{strategy}", responses=ERRORS)
async def confidence_history(
    request: Request,
    symbol: Annotated[str, Path(max_length=16)],
    strategy: Annotated[str, Path(max_length=32)],
    hours: Hours = 24.0,
    trade: Annotated[
        str | None,
        Query(
            max_length=80,
            description='one trade\'s line only, e.g. "BUY 5805/5855/5905" (see lines[].trade)',
        ),
    ] = None,
    include_features: Annotated[
        bool,
        Query(description="each point with the feature row the model scored (name -> value)"),
    ] = False,
) -> Response:
    """Points of the symbol x strategy series, oldest first, each naming its trade, and the
    same points grouped into `lines`, one per trade identity (action, option kind,
    strikes): unrelated trades never share a line. One Query on the series' partition."""
    sym = _symbol_or_422(symbol, tuple(s.value for s in Symbol), ["path", "symbol"])
    if isinstance(sym, Response):
        return sym
    strat = _strategy_or_422(strategy)
    if isinstance(strat, Response):
        return strat
    points = _service(request).history(sym, strat.value, hours)
    if trade is not None:
        wanted = " ".join(trade.split())
        points = [p for p in points if p.trade == wanted]
    return json_response(
        {
            "series": f"{sym}#{strat.value}",
            "symbol": sym,
            "strategy": strat.value,
            "hours": hours,
            "count": len(points),
            "include_features": include_features,
            "points": [p.to_dict(include_features) for p in points],
            "lines": confidence_lines(points, include_features),
        }
    )


WINDOW_UNITS = {"m": 1 / 60, "h": 1.0, "d": 24.0}


def _csv(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


@confidence_router.get("/confidence/trends", responses=ERRORS)
async def confidence_trends(
    request: Request,
    hours: Hours = 1.0,
    symbols: Annotated[
        str | None, Query(max_length=200, description="comma-separated, e.g. SPX,SPY")
    ] = None,
    strategies: Annotated[
        str | None,
        Query(max_length=200, description="comma-separated, e.g. Butterfly,Iron Condor"),
    ] = None,
    window: Annotated[
        str | None,
        Query(
            pattern=r"^\d{1,4}(\.\d+)?[mhd]$",
            description="look-back instead of hours: 15m, 4h, 2d",
        ),
    ] = None,
) -> Response:
    """Per symbol x strategy series: the latest point against the latest point at or
    before the window's start, filtered by symbols and strategies (aliases accepted)."""
    if window is not None:
        hours = float(window[:-1]) * WINDOW_UNITS[window[-1]]
        if not 0 < hours <= MAX_HISTORY_HOURS:
            return unprocessable(["query", "window"], f"window: at most {MAX_HISTORY_HOURS} h")
    syms: list[str] = []
    for raw in _csv(symbols):
        sym = _symbol_or_422(raw, tuple(s.value for s in Symbol), ["query", "symbols"])
        if isinstance(sym, Response):
            return sym
        syms.append(sym)
    strats: list[str] = []
    for raw in _csv(strategies):
        strat = _strategy_or_422(raw, ["query", "strategies"])
        if isinstance(strat, Response):
            return strat
        strats.append(strat.value)
    series = None
    if syms or strats:
        series = [
            series_name(sym, strat)
            for sym in (syms or [s.value for s in Symbol])
            for strat in (strats or [s.value for s in Strategy])
        ]
    trends = _service(request).trends(hours, series)
    return json_response(
        {
            "hours": hours,
            "symbols": syms or None,
            "strategies": strats or None,
            "count": len(trends),
            "trends": [t.to_dict() for t in trends],
        }
    )


@health_router.get("/health")
async def health(request: Request) -> Response:
    holder = _holder(request)
    return json_response(
        {
            "status": "ok",
            "service": "magic8-predict",
            "time": datetime.now(UTC).isoformat(),
            "model_loaded": holder.loaded,
        }
    )


HEALTH_BUDGET_S = 1.6


@health_router.get("/health/detailed")
def health_detailed(request: Request) -> Response:
    """Model, market data, gateway heartbeat and history table, probed in parallel with one
    short attempt each (answers within 2 s even when AWS is black-holed). Each store is
    "reachable" or "unreachable"; market data and the heartbeat, when reachable, are
    "fresh" or "stale" (old data) — an unreachable store is never reported as stale."""
    holder = _holder(request)
    settings = holder.settings
    out: dict[str, Any] = {"service": "magic8-predict", "time": datetime.now(UTC).isoformat()}
    problems: list[str] = []
    try:
        service = holder.get()
    except Exception:
        out.update(status="error", model={"loaded": False, "error": holder.error})
        return json_response(out)
    out["model"] = {
        "loaded": True,
        "version": service.model.version,
        "n_features": service.n_features,
        "model_dir": str(settings.model_dir),
    }
    out["stats"] = service.status()
    now = service.clock()
    probes = _health_probes(settings)
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(fn) for name, fn in probes.items()}
        results: dict[str, Any] = {}
        for name, fut in futures.items():
            try:
                results[name] = fut.result(timeout=HEALTH_BUDGET_S)
            except Exception as exc:
                results[name] = exc
    snaps = results["market"]
    market: dict[str, Any] = {}
    if isinstance(snaps, Exception):
        out["market_table"] = {"reachable": False, "error": type(snaps).__name__}
        problems.append("market table unreachable")
    else:
        out["market_table"] = {"reachable": True}
        for sym in MARKET_SYMBOLS:
            source, age = service.data_source(snaps.get(sym), now)
            market[sym] = {"data_source": source, "data_age_s": age}
            if source in ("stale", "unavailable") and sym != "RUT":
                problems.append(f"market data {sym}: {source}")
    out["market"] = market
    out["gateway"] = _gateway_health(settings, now, problems, results["heartbeat"])
    hist = results["history"]
    if isinstance(hist, Exception):
        out["history"] = {"reachable": False, "error": type(hist).__name__}
        problems.append("history table unreachable")
    else:
        out["history"] = {"reachable": True}
    out["status"] = "degraded" if problems else "ok"
    out["problems"] = problems
    stats: RequestStats | None = getattr(request.app.state, "request_stats", None)
    out.update(stats.summary() if stats else {"requests_per_minute": None, "avg_latency_ms": None})
    out["config"] = {
        "cache_ttl_s": {
            "market": settings.cache_market_ttl_s,
            "features": settings.cache_features_ttl_s,
            "predictions": settings.cache_predictions_ttl_s,
        },
        "stale_after_s": settings.stale_after_s,
        "decay_half_life_s": settings.decay_half_life_s,
        "max_batch": MAX_BATCH,
    }
    out["cache_warming"] = holder.warmer.status() if holder.warmer else None
    after = request.app.state.after_response
    out["after_response"] = after.stats() if after is not None else None
    post_gc = getattr(request.app.state, "post_response_gc", None)
    if post_gc is not None and out["after_response"] is not None:
        out["after_response"]["gc"] = post_gc.stats()
    return json_response(json.loads(json.dumps(out, default=_finite)))


def _health_probes(settings: ApiSettings) -> dict[str, Callable[[], Any]]:
    """One read per store, on a probe client (one attempt, 1.5 s at most)."""
    from magic8.adapters.aws import client
    from magic8.adapters.dynamo_state import DynamoKeyValueState
    from magic8.adapters.history_dynamo import DynamoHistoryRepository
    from magic8.adapters.market_dynamo import DynamoMarketRepository
    from magic8.monitor.gateway_health import StateHeartbeatReader

    ddb = client("dynamodb", probe=True)

    def market() -> Any:
        return DynamoMarketRepository(settings.market_table, ddb=ddb).get_snapshots(
            list(MARKET_SYMBOLS)
        )

    def heartbeat() -> Any:
        state = DynamoKeyValueState(settings.state_table, table=_ProbeTable(ddb, settings))
        return StateHeartbeatReader(state).read()

    def history() -> Any:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        repo = DynamoHistoryRepository(settings.history_table, ddb=ddb)
        return repo.query(f"SPX#{Strategy.BUTTERFLY.value}", now_ms - 1000, now_ms)

    return {"market": market, "heartbeat": heartbeat, "history": history}


class _ProbeTable:
    """The get_item of a boto3 Table on the probe client (all the heartbeat reader uses)."""

    def __init__(self, ddb: Any, settings: ApiSettings) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._ddb, self._name = ddb, settings.state_table
        self._ser, self._de = TypeSerializer(), TypeDeserializer()

    def get_item(self, Key: dict[str, Any]) -> dict[str, Any]:
        raw = self._ddb.get_item(
            TableName=self._name, Key={k: self._ser.serialize(v) for k, v in Key.items()}
        )
        item = raw.get("Item")
        if item is None:
            return {}
        return {"Item": {k: self._de.deserialize(v) for k, v in item.items()}}


def _gateway_health(
    settings: ApiSettings, now: datetime, problems: list[str], beat: Any
) -> dict[str, Any]:
    """The gateway host's heartbeat (state table), as the monitor's stale check reads it:
    unreachable (the read failed), unavailable (no heartbeat), stale or fresh."""
    if isinstance(beat, Exception):
        problems.append("gateway heartbeat unreachable")
        return {"available": False, "reachable": False, "error": type(beat).__name__}
    if beat is None:
        return {"available": False, "reachable": True}
    age = round(beat.age_seconds(now), 1)
    stale = age > settings.gateway_stale_after_s
    if not beat.healthy or stale:
        problems.append(f"gateway: {'unhealthy' if not beat.healthy else 'stale'} ({age} s)")
    return {
        "available": True,
        "reachable": True,
        # the feed's exchange session now (NQ trades on CME Globex): a stale heartbeat
        # while Globex is closed is expected (the monitor alerts only inside it)
        "session": CME_CALENDAR.describe(now),
        "freshness": "stale" if stale else "fresh",
        "age_s": age,
        "healthy": beat.healthy,
        "ib_state": beat.ib_state,
        "databento_state": beat.databento_state,
        "last_quote_at": beat.last_quote_at.isoformat() if beat.last_quote_at else None,
        "last_mbo_at": beat.last_mbo_at.isoformat() if beat.last_mbo_at else None,
        "backfill_budget_used": beat.backfill_budget_used,
        "spend": dict(beat.spend) or None,
        "final": beat.final,
    }


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)


# --- the app ------------------------------------------------------------------------------


def create_app(
    settings: ApiSettings | None = None,
    service_factory: ServiceFactory | None = None,
    observer: BatchObserver | None = None,
) -> FastAPI:
    settings = settings or ApiSettings()
    app = FastAPI(
        title="magic8 predict API",
        version="1.0.0",
        description="Win probability of 0DTE Magic8 trades (batch of up to 100), risk/reward, "
        "market snapshots, confidence history.\n\n"
        "**Confidence decay**: an answer served from the prediction cache says its "
        "`cache_age_s`; its `win_probability` is shrunk toward the model's base rate for the "
        "symbol x strategy, `base + (probability_undecayed - base) * decay_factor`, "
        "`decay_factor = 2 ** (-cache_age_s / half_life)` (MAGIC8_DECAY_HALF_LIFE_S, 600 s).\n\n"
        "**Cache warming**: configured trades (MAGIC8_WARM_TRADES) and the most requested "
        "ones are predicted at start and every 5 minutes; `/health/detailed` reports it "
        "under `cache_warming`.\n\n"
        "**Market calendar**: answers say `market_open` and `session` (NYSE); futures (the "
        "gateway's NQ feed in `/health/detailed`, `GET /signals`) say CME Globex's session.\n\n"
        "**Live push** (WebSocket API, not in this document): send "
        '`{"action":"subscribe","symbols":["SPX"],"strategies":["Butterfly"]}`, '
        '`{"action":"unsubscribe","symbols":[...],"strategies":[...]}` (both optional) and '
        '`{"action":"ping"}` (answered `pong`; API Gateway closes a connection idle for '
        "10 minutes); at most MAGIC8_WS_MAX_CONNECTIONS connections (429 "
        '`connection_limit` beyond). See the README, "WebSocket (live push)".',
    )
    # /predict/batch/ is a plain 404, never a redirect (behind API Gateway a redirect would
    # name the wrong scheme and host)
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.service = ServiceHolder(settings, service_factory or build_prediction_service)
    app.state.observer = observer
    app.state.prediction_observer = None  # deps.build_handler: EMF per symbol x strategy
    app.state.after_response = None  # deps.build_handler: history hand-over after the answer
    app.state.recommender = Lazy(lambda: build_recommender(settings))
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ServiceUnavailable, service_unavailable_handler)
    app.add_exception_handler(BotoCoreError, store_unavailable_handler)
    app.add_exception_handler(ClientError, store_unavailable_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)

    # ---- ROUTERS: one line per capability; add yours below ------------------------------
    app.include_router(predict_router)
    app.include_router(market_router)
    app.include_router(confidence_router)
    app.include_router(health_router)
    app.include_router(monitor_router)  # watchlist, outcomes, accuracy (issue 5)
    app.include_router(signals_router)  # GET /signals (issue 4)
    app.include_router(bars_router)  # GET /nq/bars (issue 13)
    # ---- end of ROUTERS -----------------------------------------------------------------

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StatsHook, app_ref=app)
    return app


class StatsHook(RequestStats):
    """RequestStats registered on the app's state (the outermost middleware, so rejected
    bodies count too)."""

    def __init__(self, app: ASGIApp, app_ref: FastAPI) -> None:
        super().__init__(app)
        app_ref.state.request_stats = self
