"""Monitor endpoints of the predict API: watchlist, outcomes, live accuracy.

POST /watchlist          add a trade to watch (201, the entry with id and expiry)
GET  /watchlist          active entries (?symbol=SPX)
GET  /watchlist/{id}     one entry (404 if unknown)
DELETE /watchlist/{id}   stop watching (204; 404 if unknown)
POST /outcomes           record a trade's real result (201): {prediction_id, won} for any
                         answer (its probability and served threshold), or entry_id
                         for a watched trade, or symbol/strategy/win_probability
GET  /accuracy           accuracy, Brier score, calibration per symbol x strategy over
                         rolling windows (?windows=1&windows=7&windows=30&symbol=&strategy=)

Stores come through `get_monitor_deps` (override it in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status

from magic8.domain import prediction_id as prediction_ids
from magic8.domain.trades import Strategy, Symbol
from magic8.monitor.accuracy import (
    AccuracyReport,
    Outcome,
    OutcomeError,
    OutcomeIn,
    OutcomeStore,
    accuracy_report,
    resolve_outcome,
)
from magic8.monitor.sweep import Clock, SweepStateStore, utc_now
from magic8.monitor.watchlist import WatchlistAdd, WatchlistEntry, WatchlistStore
from magic8.settings import AwsSettings

MAX_ACTIVE_ENTRIES = 500
MAX_WINDOW_DAYS = 365
# a watched trade is a 0DTE trade: it expires with its trading day, a few days at most
MAX_WATCH_AHEAD = timedelta(days=7)


@dataclass
class MonitorDeps:
    watchlist: WatchlistStore
    outcomes: OutcomeStore
    sweep_state: SweepStateStore
    clock: Clock = field(default=utc_now)


@lru_cache(maxsize=1)
def _default_deps() -> MonitorDeps:
    from magic8.adapters.aws import client
    from magic8.adapters.outcomes_dynamo import DynamoOutcomeStore
    from magic8.adapters.watchlist_dynamo import DynamoSweepStateStore, DynamoWatchlistStore

    table = AwsSettings().state_table
    ddb = client("dynamodb", fast=True)  # request path: a short timeout budget
    return MonitorDeps(
        watchlist=DynamoWatchlistStore(table, ddb),
        outcomes=DynamoOutcomeStore(table, ddb),
        sweep_state=DynamoSweepStateStore(table, ddb),
    )


def get_monitor_deps() -> MonitorDeps:
    return _default_deps()


Deps = Annotated[MonitorDeps, Depends(get_monitor_deps)]
EntryId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(tags=["monitor"])


def _unprocessable(loc: list[str], msg: str) -> HTTPException:
    """The same shape FastAPI uses for validation errors, naming the field."""
    return HTTPException(
        status_code=422,
        detail=[{"loc": loc, "msg": msg, "type": "value_error"}],
    )


def _symbol(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip().upper()
    if value not in {s.value for s in Symbol}:
        raise _unprocessable(["query", "symbol"], f"symbol: unknown {raw!r}")
    return value


@router.post("/watchlist", status_code=status.HTTP_201_CREATED, response_model=WatchlistEntry)
def add_watch(body: WatchlistAdd, deps: Deps) -> WatchlistEntry:
    now = deps.clock()
    entry = WatchlistEntry.from_add(body, now)
    if not entry.is_active(now):
        raise _unprocessable(["body", "expiry"], "expiry: must be in the future")
    if entry.expires_at > now + MAX_WATCH_AHEAD:
        raise _unprocessable(
            ["body", "expiry"], f"expiry: at most {MAX_WATCH_AHEAD.days} days ahead"
        )
    if len(deps.watchlist.list_active(now)) >= MAX_ACTIVE_ENTRIES:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"watchlist: at most {MAX_ACTIVE_ENTRIES} active entries"
        )
    deps.watchlist.add(entry)
    return entry


@router.get("/watchlist")
def list_watch(
    deps: Deps, symbol: Annotated[str | None, Query(max_length=16)] = None
) -> dict[str, Any]:
    wanted = _symbol(symbol)
    entries = deps.watchlist.list_active(deps.clock())
    if wanted is not None:
        entries = [e for e in entries if e.symbol.value == wanted]
    return {"count": len(entries), "entries": [e.model_dump(mode="json") for e in entries]}


@router.get("/watchlist/{entry_id}", response_model=WatchlistEntry)
def get_watch(entry_id: EntryId, deps: Deps) -> WatchlistEntry:
    entry = deps.watchlist.get(entry_id)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist entry {entry_id!r} not found")
    return entry


@router.delete("/watchlist/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_watch(entry_id: EntryId, deps: Deps) -> Response:
    if not deps.watchlist.remove(entry_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"watchlist entry {entry_id!r} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/outcomes", status_code=status.HTTP_201_CREATED, response_model=Outcome)
def add_outcome(body: OutcomeIn, deps: Deps) -> Outcome:
    now = deps.clock()
    entry_symbol = entry_strategy = None
    last_p = last_thr = None
    if body.prediction_id is not None:
        try:
            ref = prediction_ids.decode(body.prediction_id)
        except prediction_ids.PredictionIdError as exc:
            raise _unprocessable(["body", "prediction_id"], str(exc)) from exc
        entry_symbol, entry_strategy = ref.symbol, ref.strategy
        last_p, last_thr = ref.win_probability, ref.threshold
    elif body.entry_id is not None:
        entry = deps.watchlist.get(body.entry_id)
        if entry is not None:
            entry_symbol, entry_strategy = entry.symbol.value, entry.strategy.value
        last = deps.sweep_state.load().crossings.get(body.entry_id)
        if last is not None:
            last_p, last_thr = last.probability, last.threshold
        if entry is None and last is None and body.win_probability is None:
            raise _unprocessable(["body", "entry_id"], f"entry_id: unknown {body.entry_id!r}")
    try:
        outcome = resolve_outcome(body, now, entry_symbol, entry_strategy, last_p, last_thr)
    except OutcomeError as exc:
        field_name = str(exc).split(":", 1)[0]
        raise _unprocessable(["body", field_name], str(exc)) from exc
    if outcome.closed_at > now + timedelta(minutes=5):
        raise _unprocessable(["body", "closed_at"], "closed_at: must not be in the future")
    deps.outcomes.add(outcome)
    return outcome


@router.get("/accuracy", response_model=AccuracyReport)
def get_accuracy(
    deps: Deps,
    windows: Annotated[list[int] | None, Query(description="window lengths in days")] = None,
    symbol: Annotated[str | None, Query(max_length=16)] = None,
    strategy: Annotated[str | None, Query(max_length=32)] = None,
    bins: Annotated[int, Query(ge=2, le=50)] = 10,
) -> AccuracyReport:
    days = windows or [1, 7, 30]
    for d in days:
        if not 1 <= d <= MAX_WINDOW_DAYS:
            raise _unprocessable(["query", "windows"], f"windows: days in 1..{MAX_WINDOW_DAYS}")
    symbol_value = _symbol(symbol)
    strategy_value: str | None = None
    if strategy is not None:
        folded = strategy.strip().replace("_", " ").casefold()
        match = [s for s in Strategy if s.value.casefold() == folded]
        if not match:
            raise _unprocessable(["query", "strategy"], f"strategy: unknown {strategy!r}")
        strategy_value = match[0].value
    now = deps.clock()
    outcomes = deps.outcomes.list_since(now - timedelta(days=max(days)))
    report = accuracy_report(outcomes, now, days, bins)
    if symbol_value is not None or strategy_value is not None:
        report.groups = [
            g
            for g in report.groups
            if (symbol_value is None or g.symbol == symbol_value)
            and (strategy_value is None or g.strategy == strategy_value)
        ]
    return report
