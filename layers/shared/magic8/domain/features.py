"""The one feature module: training and serving build their rows with these functions.

A row = market part (per symbol, from 5-minute bars and VIX bars; computed once per
symbol per batch) + temporal part (from the trade's time) + trade part (strategy, action,
premium, strikes, predicted price, short/long-term targets), all vectorised with numpy.

Training (magic8_dev.ml.data) calls the same lower-level functions this module's
``build_features`` calls: ``market_features_batch`` on bar windows and ``assemble`` on
``TradeArrays``; tests prove a snapshot-built serve-time row equals the training row.

Missing values are NaN (XGBoost treats them as missing); every other value is finite.
Absolute price levels are deliberately not features: every price feature is a ratio to
the current price or to the expected remaining move, so the model transfers across
symbols (SPX vs SPY) and eras (SPX 1,200 in 1999 vs 5,900 today).

Documented defaults:
- fewer bars than a lookback needs -> that feature is NaN (missing);
- no VIX bars -> vix_level = VIX_DEFAULT_LEVEL (17.0), vix_vs_sma20 = 0, vix_change_1h = 0,
  vix_regime from the default level, and the expected move uses the default level;
- no bars of the current session (before the open) -> ret_since_open = 0,
  range_pos = 0.5, session_range = 0;
- trade time: trade.timestamp, else ``now``, else the market context's asof; a naive
  timestamp is taken as UTC.

A request's own risk/reward fields are not features: max profit, max loss and their ratio
are computed from strategy, action, strikes and premium (no unit ambiguity), and
quantity does not change the win probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from magic8.domain.pricing import (
    MINUTES_PER_YEAR,
    STRATEGY_CODE,
    VERTICAL,
    Structures,
    infer_vertical_call,
)
from magic8.domain.trades import Action

if TYPE_CHECKING:
    from magic8.domain.market import MarketSnapshot
    from magic8.domain.trades import TradeRequest

EASTERN = ZoneInfo("America/New_York")
SESSION_OPEN_MIN = 9 * 60 + 30  # 09:30 ET
SESSION_MINUTES = 390  # 09:30-16:00 ET
BAR_SECONDS = 300
BAR_WINDOW = 80  # bars a market row looks at (a full session + lookback); <= SNAPSHOT_BAR_WINDOW
VIX_WINDOW = 24
VIX_DEFAULT_LEVEL = 17.0
VIX_REGIME_EDGES = (15.0, 20.0, 30.0)  # regime 0: <15, 1: 15-20, 2: 20-30, 3: >=30
_BARS_PER_YEAR = 252.0 * 78.0

MARKET_FEATURES: tuple[str, ...] = (
    "ret_since_open",
    "close_vs_sma20",
    "mom_1",
    "mom_6",
    "mom_12",
    "vol_20",
    "rsi_14",
    "range_pos",
    "session_range",
    "vix_level",
    "vix_vs_sma20",
    "vix_change_1h",
    "vix_regime",
)
TEMPORAL_FEATURES: tuple[str, ...] = (
    "minutes_since_open",
    "minutes_to_close",
    "day_of_week",
    "expected_move",
)
TRADE_FEATURES: tuple[str, ...] = (
    "is_butterfly",
    "is_iron_condor",
    "is_vertical",
    "is_sonar",
    "action_sell",
    "net_premium_norm",
    "edge_vs_fair",
    "fair_norm",
    "risk_reward",
    "pop_spot",
    "pop_pred",
    "pred_dist",
    "pred_dist_em",
    "center_dist",
    "center_dist_em",
    "pred_center_em",
    "k1_dist",
    "k2_dist",
    "k3_dist",
    "k4_dist",
    "width_em",
    "body_em",
    "vertical_call",
    "has_short_term",
    "short_term_delta",
    "has_long_term",
    "long_term_delta",
)
FEATURE_NAMES: tuple[str, ...] = MARKET_FEATURES + TEMPORAL_FEATURES + TRADE_FEATURES
# Features the win probability can only rise with, everything else fixed (training passes
# them to XGBoost as monotone constraints): more cash in (or less out) per unit of width,
# a better price than Black-Scholes fair value, a better reward/risk for the same strikes,
# a higher probability of profit under either distribution.
MONOTONE_INCREASING: tuple[str, ...] = (
    "net_premium_norm",
    "edge_vs_fair",
    "risk_reward",
    "pop_spot",
    "pop_pred",
)
N_MARKET = len(MARKET_FEATURES)
_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class MarketContext:
    """Market state for one symbol at one moment."""

    symbol: str
    bars: np.ndarray  # (n, 6) float64: ts, open, high, low, close, volume; 5-min bars to asof
    vix_bars: np.ndarray  # (m, 6) same for VIX (may be empty -> documented defaults)
    last: float
    asof: datetime  # tz-aware UTC
    # market_feature_vector's result, computed once per context (it depends on nothing else)
    _memo: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)


def _bars_array(bars: Sequence[object]) -> np.ndarray:
    if not bars:
        return np.empty((0, 6), dtype=np.float64)
    return np.array(
        [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],  # type: ignore[attr-defined]
        dtype=np.float64,
    )


def market_context_from_snapshots(
    symbol_snapshot: MarketSnapshot, vix_snapshot: MarketSnapshot | None
) -> MarketContext:
    asof = symbol_snapshot.updated_at
    if asof.tzinfo is None:
        asof = asof.replace(tzinfo=UTC)
    return MarketContext(
        symbol=symbol_snapshot.symbol,
        bars=_bars_array(symbol_snapshot.bars),
        vix_bars=_bars_array(vix_snapshot.bars) if vix_snapshot is not None else _bars_array(()),
        last=float(symbol_snapshot.last),
        asof=asof.astimezone(UTC),
    )


# ---------------------------------------------------------------- time helpers


@lru_cache(maxsize=8192)
def _et_offset_for_day(utc_day: int) -> int:
    """Eastern-time UTC offset (seconds) during the session of the given UTC day number."""
    try:
        noon = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=utc_day, hours=17)
        off = noon.astimezone(EASTERN).utcoffset()
    except (OverflowError, ValueError):  # outside datetime's range: standard time
        return -5 * 3600
    return int(off.total_seconds()) if off is not None else -5 * 3600


def session_clock(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For epoch seconds ts: (session open epoch s, minutes since open, ET day of week)."""
    ts = np.asarray(ts, dtype=np.float64)
    days = np.floor(ts / 86400.0).astype(np.int64)
    uniq, inv = np.unique(days, return_inverse=True)
    offsets = np.array([_et_offset_for_day(int(d)) for d in uniq], dtype=np.float64)[inv]
    local = ts + offsets
    local_day = np.floor(local / 86400.0)
    open_ts = local_day * 86400.0 + SESSION_OPEN_MIN * 60.0 - offsets
    minutes = (ts - open_ts) / 60.0
    dow = np.mod(local_day + 3.0, 7.0)  # 1970-01-01 was a Thursday; Monday = 0
    return open_ts, minutes, dow


def session_open_utc(day: date) -> datetime:
    """09:30 America/New_York on `day`, as UTC."""
    local = datetime(day.year, day.month, day.day, 9, 30, tzinfo=EASTERN)
    return local.astimezone(UTC)


# ---------------------------------------------------------------- market part


def _window(bars: np.ndarray, width: int) -> np.ndarray:
    """Last `width` bars, NaN-padded at the front: (width, 6)."""
    out = np.full((width, 6), np.nan)
    if len(bars):
        tail = bars[-width:]
        out[width - len(tail) :] = tail
    return out


def market_features_batch(
    windows: np.ndarray, last: np.ndarray, asof_ts: np.ndarray, vix_windows: np.ndarray
) -> np.ndarray:
    """Market features for k contexts: windows (k, BAR_WINDOW, 6), vix_windows
    (k, VIX_WINDOW, 6), both NaN-padded at the front; last, asof_ts (k,)."""
    k = windows.shape[0]
    out = np.full((k, N_MARKET), np.nan)
    last = np.asarray(last, dtype=np.float64)
    closes = windows[:, :, 4]
    with np.errstate(divide="ignore", invalid="ignore"):
        sma20 = closes[:, -20:].mean(axis=1)
        out[:, 1] = last / sma20 - 1.0
        for col, n in ((2, 1), (3, 6), (4, 12)):
            out[:, col] = last / closes[:, -1 - n] - 1.0
        logret = np.diff(np.log(closes[:, -21:]), axis=1)
        out[:, 5] = logret.std(axis=1) * np.sqrt(_BARS_PER_YEAR)
        d = np.diff(closes[:, -15:], axis=1)
        gain = np.where(d > 0, d, 0.0).sum(axis=1)
        loss = np.where(d < 0, -d, 0.0).sum(axis=1)
        tot = gain + loss
        rsi = np.where(tot > 0, 100.0 * gain / np.where(tot > 0, tot, 1.0), 50.0)
        out[:, 6] = np.where(np.isnan(d).any(axis=1), np.nan, rsi)

        # current session: bars whose start is at/after today's 09:30 ET
        open_ts, _, _ = session_clock(asof_ts)
        in_session = windows[:, :, 0] >= open_ts[:, None]  # NaN ts compare False
        has = in_session.any(axis=1)
        first = np.argmax(in_session, axis=1)
        sess_open = windows[np.arange(k), first, 1]
        hi = np.where(in_session, windows[:, :, 2], -np.inf).max(axis=1)
        lo = np.where(in_session, windows[:, :, 3], np.inf).min(axis=1)
        hi = np.maximum(hi, last)
        lo = np.minimum(lo, last)
        rng = hi - lo
        out[:, 0] = np.where(has, last / np.where(has, sess_open, 1.0) - 1.0, 0.0)
        out[:, 7] = np.where(has & (rng > 0), (last - lo) / np.where(rng > 0, rng, 1.0), 0.5)
        out[:, 8] = np.where(has, rng / last, 0.0)

        vix = vix_windows[:, :, 4]
        vlast = vix[:, -1]
        has_vix = np.isfinite(vlast)
        level = np.where(has_vix, vlast, VIX_DEFAULT_LEVEL)
        out[:, 9] = level
        out[:, 10] = np.where(has_vix, vlast / vix[:, -20:].mean(axis=1) - 1.0, 0.0)
        out[:, 11] = np.where(has_vix, vlast / vix[:, -13] - 1.0, 0.0)
        out[:, 12] = np.searchsorted(np.array(VIX_REGIME_EDGES), level, side="right")
    out[~np.isfinite(out)] = np.nan
    return out


def market_feature_vector(ctx: MarketContext) -> np.ndarray:
    """The per-symbol part of a row (N_MARKET values); memoised on the context."""
    cached = ctx._memo.get("market")
    if cached is not None:
        return cached
    row: np.ndarray = market_features_batch(
        _window(ctx.bars, BAR_WINDOW)[None],
        np.array([ctx.last]),
        np.array([ctx.asof.timestamp()]),
        _window(ctx.vix_bars, VIX_WINDOW)[None],
    )[0]
    row.setflags(write=False)
    ctx._memo["market"] = row
    return row


# ---------------------------------------------------------------- trade part


@dataclass(frozen=True)
class TradeArrays:
    """Trades as column arrays (n rows)."""

    strategy: np.ndarray  # int codes, magic8.domain.pricing.STRATEGY_ORDER
    action_sell: np.ndarray  # 1.0 SELL, 0.0 BUY
    premium: np.ndarray
    predicted: np.ndarray
    strikes: np.ndarray  # (n, 4) sorted ascending, NaN-padded
    option_call: np.ndarray  # 1.0 call, 0.0 put, NaN not given
    short_term: np.ndarray  # NaN when absent
    long_term: np.ndarray  # NaN when absent
    ts: np.ndarray  # epoch seconds of the trade (temporal features)


def _naive_utc(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


_NO_STRIKES = (float("nan"),) * 4


def trade_arrays(
    trades: Sequence[TradeRequest], default_ts: np.ndarray | Sequence[float]
) -> TradeArrays:
    """Column arrays of the trades: one pass over them, one numpy conversion."""
    nan = float("nan")
    sell_action = Action.SELL
    codes = STRATEGY_CODE
    rows = []
    for t in trades:
        ks = sorted(t.strikes)
        ot = t.option_type
        st, lt, when = t.short_term, t.long_term, t.timestamp
        rows.append(
            (
                codes[t.strategy],
                1.0 if t.action == sell_action else 0.0,
                t.premium,
                t.predicted_price,
                nan if ot is None else (0.0 if ot[:1].lower() == "p" else 1.0),
                nan if st is None else st,
                nan if lt is None else lt,
                nan if when is None else _naive_utc(when),
                *ks[:4],
                *_NO_STRIKES[len(ks) :],
            )
        )
    n = len(rows)
    table = np.array(rows, dtype=np.float64).reshape(n, 12)
    cols = table.T.copy()  # contiguous columns
    given_ts = cols[7]
    ts = np.asarray(default_ts, dtype=np.float64).copy()
    has_ts = ~np.isnan(given_ts)
    ts[has_ts] = given_ts[has_ts]
    return TradeArrays(
        cols[0].astype(np.int64),
        cols[1],
        cols[2],
        cols[3],
        np.ascontiguousarray(table[:, 8:12]),
        cols[4],
        cols[5],
        cols[6],
        ts,
    )


def assemble(trades: TradeArrays, market: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Full rows: market (n, N_MARKET) for each trade's symbol, last (n,) its price."""
    n = len(trades.strategy)
    x = np.full((n, len(FEATURE_NAMES)), np.nan)
    x[:, :N_MARKET] = market
    last = np.asarray(last, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # temporal
        _, minutes, dow = session_clock(trades.ts)
        to_close = SESSION_MINUTES - minutes
        vix = np.where(np.isfinite(market[:, 9]), market[:, 9], VIX_DEFAULT_LEVEL)
        t_years = np.clip(to_close, 1.0, SESSION_MINUTES) / MINUTES_PER_YEAR
        sigma = vix / 100.0
        em = last * sigma * np.sqrt(t_years)  # expected remaining move, points
        x[:, _IDX["minutes_since_open"]] = minutes
        x[:, _IDX["minutes_to_close"]] = to_close
        x[:, _IDX["day_of_week"]] = dow
        x[:, _IDX["expected_move"]] = em / last

        # trade
        s = trades.strategy
        k = trades.strikes
        for j, name in enumerate(("is_butterfly", "is_iron_condor", "is_vertical", "is_sonar")):
            x[:, _IDX[name]] = (s == j).astype(np.float64)
        x[:, _IDX["action_sell"]] = trades.action_sell
        is_call = np.where(
            np.isfinite(trades.option_call),
            trades.option_call,
            infer_vertical_call(trades.action_sell, k, trades.predicted),
        )
        st = Structures.of(s, k, is_call, trades.action_sell)
        at_k = st.values_at_strikes()
        vmin, vmax = st.extremes(at_k)
        width = vmax - vmin
        width = np.where(width > 0, width, np.nan)
        prem = trades.premium
        fair = st.bs_value(last, t_years, sigma)
        sell = trades.action_sell > 0.5
        max_profit = np.where(sell, prem - vmin, vmax - prem)
        max_loss = np.where(sell, vmax - prem, prem - vmin)
        cash = np.where(sell, 1.0, -1.0)  # + credit received, - debit paid
        x[:, _IDX["net_premium_norm"]] = cash * prem / width
        x[:, _IDX["edge_vs_fair"]] = cash * (prem - fair) / width
        x[:, _IDX["fair_norm"]] = fair / width
        x[:, _IDX["risk_reward"]] = np.clip(
            max_profit / np.where(max_loss > 0, max_loss, np.nan), -1.0, 100.0
        )
        # probability of profit if the close is Normal(spot | predicted, expected move)
        sd = np.maximum(em, 1e-9 * last)
        pop_spot, pop_pred = st.prob_profit_many(prem, (last, trades.predicted), sd, at_k)
        x[:, _IDX["pop_spot"]] = pop_spot
        x[:, _IDX["pop_pred"]] = pop_pred
        known = np.isfinite(k)
        nk = known.sum(axis=1)
        # the mean of the given strikes (np.nanmean's arithmetic: sum with zeros / count)
        center = np.where(known, k, 0.0).sum(axis=1) / nk
        pred = trades.predicted
        x[:, _IDX["pred_dist"]] = (pred - last) / last
        x[:, _IDX["pred_dist_em"]] = (pred - last) / em
        x[:, _IDX["center_dist"]] = (center - last) / last
        x[:, _IDX["center_dist_em"]] = (center - last) / em
        x[:, _IDX["pred_center_em"]] = (pred - center) / em
        for j in range(4):
            x[:, _IDX[f"k{j + 1}_dist"]] = (k[:, j] - last) / last
        span = k[np.arange(n), nk - 1] - k[:, 0]
        x[:, _IDX["width_em"]] = span / em
        inner = np.where(nk == 4, k[:, 2] - k[:, 1], 0.0)
        x[:, _IDX["body_em"]] = inner / em
        x[:, _IDX["vertical_call"]] = np.where(s == VERTICAL, is_call, np.nan)
        for flag, val, src in (
            ("has_short_term", "short_term_delta", trades.short_term),
            ("has_long_term", "long_term_delta", trades.long_term),
        ):
            present = np.isfinite(src)
            x[:, _IDX[flag]] = present.astype(np.float64)
            x[:, _IDX[val]] = np.where(present, (src - last) / last, np.nan)
    x[~np.isfinite(x)] = np.nan
    return x


def build_features(
    trades: Sequence[TradeRequest],
    contexts: Sequence[MarketContext],
    now: datetime | None = None,
) -> np.ndarray:
    """(len(trades), len(FEATURE_NAMES)) float64; row i uses contexts[i].

    The market part is computed once per distinct context object."""
    if len(trades) != len(contexts):
        raise ValueError("build_features: one context per trade")
    n = len(trades)
    # distinct contexts (a batch usually has a handful of symbols): market part once each
    slot: dict[int, int] = {}
    distinct: list[MarketContext] = []
    index: list[int] = []
    for ctx in contexts:
        j = slot.get(id(ctx))
        if j is None:
            j = slot[id(ctx)] = len(distinct)
            distinct.append(ctx)
        index.append(j)
    if n == 0:
        return assemble(trade_arrays(trades, np.empty(0)), np.empty((0, N_MARKET)), np.empty(0))
    rows = np.array(index, dtype=np.intp)
    market = np.stack([market_feature_vector(c) for c in distinct])[rows]
    last = np.array([c.last for c in distinct], dtype=np.float64)[rows]
    if now is not None:
        default_ts = np.full(n, _naive_utc(now))
    else:
        default_ts = np.array([c.asof.timestamp() for c in distinct], dtype=np.float64)[rows]
    return assemble(trade_arrays(trades, default_ts), market, last)
