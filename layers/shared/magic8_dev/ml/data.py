"""Training data: Magic8-style 0DTE trades generated on real days (see datacard.md).

Real: daily open/high/low/close of the S&P 500 and the NASDAQ Composite (1999-2018) and
the VIX close (2014-2019), all shipped inside the `arch` package.
Derived (causal by construction, see build_market): 5-minute intraday paths, a Brownian
bridge in log price from the day's real open to its real close ONLY (never pinned to the
real high or low), with a per-day volatility chosen so that the close is a typical draw
of the path (then what the path shows at entry says nothing about the rest of the day
beyond a martingale); intraday VIX, a bridge from the previous real close to today's,
its increments correlated with the S&P path's; VIX before 2014 (a realized-volatility
proxy fitted on 2014-2015); the forecasts (predicted_price, short_term, long_term) drawn
with a stated information level (INFO_LEVELS); the trades (strikes placed so that the
per-strategy win rates sit near the real Magic8 record's); and labels (profit > 0 at the
day's REAL close, which the path ends on).

Rows are built with the same functions the service uses (magic8.domain.features).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magic8.domain import features as F
from magic8.domain.pricing import (
    BUTTERFLY,
    IRON_CONDOR,
    MINUTES_PER_YEAR,
    SONAR,
    STRATEGY_ORDER,
    VERTICAL,
    infer_vertical_call,
    profit_at_expiry,
    structure_extremes,
    structure_value,
)

BARS_PER_DAY = 78
MINUTES_PER_DAY = 390

# symbol -> (family, price scale vs the family's index, strike increment, premium tick)
SYMBOLS: dict[str, tuple[str, float, float, float]] = {
    "SPX": ("sp500", 1.0, 5.0, 0.05),
    "SPY": ("sp500", 0.1, 1.0, 0.01),
    "XSP": ("sp500", 0.1, 1.0, 0.01),
    "NDX": ("nasdaq", 1.0, 10.0, 0.05),
    "QQQ": ("nasdaq", 1.0 / 40.0, 1.0, 0.01),
}
FAMILY_SYMBOLS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "sp500": (("SPX", "SPY", "XSP"), (0.5, 0.25, 0.25)),
    "nasdaq": (("NDX", "QQQ"), (0.5, 0.5)),
}
FAMILIES = ("sp500", "nasdaq")
# Implied vol used to price trades: VIX for the S&P family, VIX x 1.25 for NASDAQ
# (VXN has historically run ~1.2-1.3x VIX).
VOL_MULT = {"sp500": 1.0, "nasdaq": 1.25}
PROXY_FIT_END = pd.Timestamp("2015-12-31")
SELL_SHARE = {BUTTERFLY: 0.1, IRON_CONDOR: 0.95, VERTICAL: 0.5, SONAR: 0.9}

# Forecast information levels: the probability that the forecast's direction
# (predicted - spot) agrees with the rest of the day's move (close - spot). A Gaussian
# forecast with correlation r to the standardised remaining move agrees with probability
# 1/2 + asin(r)/pi, so r = sin(pi * (agreement - 1/2)).
INFO_LEVELS: dict[str, float] = {"none": 0.5, "default": 0.55, "strong": 0.60}
DEFAULT_INFO_LEVEL = "default"
# the short- and long-term targets carry less of the same information
SHORT_TERM_SHARE = 0.7
LONG_TERM_SHARE = 0.4

# Real Magic8 record (the earlier predictor's analysis of 1.08 M trades, 2023-2025):
# win rate per strategy, the targets of the strike placement below.
REAL_WIN_RATES: dict[str, float] = {
    "Butterfly": 0.529,
    "Iron Condor": 0.921,
    "Sonar": 0.802,
    "Vertical": 0.819,
}

# Per-day path volatility: sigma^2 = w * parkinson(today)^2 + (1 - w) * mean of the
# previous 20 days' parkinson^2, rescaled so that E[z^2] = 1 for z = log(close/open) /
# (sigma sqrt(T)). w = 0.15 makes z close to Gaussian (kurtosis ~3 on 1999-2018): with
# w = 1 z is bounded (|z| <= 1.67: mean reversion at entry), with w = 0 fat-tailed
# (kurtosis 5: momentum at entry); a Gaussian endpoint makes the bridge a martingale.
TODAY_RANGE_WEIGHT = 0.15


def info_correlation(level: str | float) -> tuple[str, float, float]:
    """(name, direction agreement, correlation r) of an information level."""
    if isinstance(level, str):
        if level not in INFO_LEVELS:
            raise ValueError(f"information level {level!r}: one of {sorted(INFO_LEVELS)}")
        name, agree = level, INFO_LEVELS[level]
    else:
        name, agree = f"agreement_{float(level):.3f}", float(level)
    if not 0.5 <= agree < 1.0:
        raise ValueError("direction agreement must be in [0.5, 1)")
    return name, agree, float(np.sin(np.pi * (agree - 0.5)))


@dataclass
class DailyData:
    dates: np.ndarray  # datetime64[D]
    ohlc: dict[str, np.ndarray]  # family -> (D, 4) open, high, low, close
    volume: dict[str, np.ndarray]
    vix: np.ndarray  # (D,) close (real or proxy)
    vix_real: np.ndarray  # (D,) bool
    proxy_coef: tuple[float, float]  # vix = a + b * rv20

    def tail(self, n: int) -> DailyData:
        """The most recent n days."""
        s = slice(max(0, len(self.dates) - n), len(self.dates))
        return DailyData(
            dates=self.dates[s],
            ohlc={k: v[s] for k, v in self.ohlc.items()},
            volume={k: v[s] for k, v in self.volume.items()},
            vix=self.vix[s],
            vix_real=self.vix_real[s],
            proxy_coef=self.proxy_coef,
        )


def _arch_csv(name: str) -> pd.DataFrame:
    """The csv that `arch.data.<name>.load()` reads, read directly (importing arch costs
    seconds: it pulls in statsmodels)."""
    spec = importlib.util.find_spec("arch")
    if spec is None or spec.origin is None:
        raise RuntimeError("the `arch` package is not installed (it ships the training data)")
    path = Path(spec.origin).parent / "data" / name / f"{name}.csv.gz"
    data = pd.read_csv(path)
    data["Date"] = pd.to_datetime(data["Date"])
    data = data.set_index("Date")
    for col in data:
        data[col] = pd.to_numeric(data[col], errors="coerce")
    return data


def load_daily() -> DailyData:
    """Real daily data from the `arch` package, with the VIX proxy before 2014."""
    sp = _arch_csv("sp500")
    nq = _arch_csv("nasdaq")
    vx = _arch_csv("vix")["vix"]
    idx = sp.index.intersection(nq.index)
    sp, nq = sp.loc[idx], nq.loc[idx]
    cols = ["Open", "High", "Low", "Close"]
    closes = sp["Close"].to_numpy(dtype=np.float64)
    logret = np.diff(np.log(closes), prepend=np.nan)
    rv20 = pd.Series(logret).rolling(20).std().to_numpy() * np.sqrt(252.0) * 100.0
    real = vx.reindex(idx)
    # fit the proxy on 2014-2015 only: before the default test split (2016-2018) begins
    fit_window = np.asarray(idx <= PROXY_FIT_END)
    have = real.notna().to_numpy() & np.isfinite(rv20) & fit_window
    b, a = np.polyfit(rv20[have], real.to_numpy()[have], 1)
    proxy = a + b * rv20
    vix_close = np.where(real.notna().to_numpy(), real.to_numpy(), proxy)
    vix_close = np.where(np.isfinite(vix_close), vix_close, np.nanmedian(vix_close))
    return DailyData(
        dates=idx.to_numpy().astype("datetime64[D]"),
        ohlc={
            "sp500": sp[cols].to_numpy(dtype=np.float64),
            "nasdaq": nq[cols].to_numpy(dtype=np.float64),
        },
        volume={
            "sp500": sp["Volume"].to_numpy(dtype=np.float64),
            "nasdaq": nq["Volume"].to_numpy(dtype=np.float64),
        },
        vix=vix_close,
        vix_real=real.notna().to_numpy(),
        proxy_coef=(float(a), float(b)),
    )


def bars_from_paths(paths: np.ndarray, open_ts: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """(D * 78, 6) 5-minute bars [ts, o, h, l, c, v] from (D, 391) minute paths."""
    d = paths.shape[0]
    j = np.arange(BARS_PER_DAY)
    seg = np.stack([paths[:, 5 * j + i] for i in range(6)], axis=2)  # (D, 78, 6 points)
    prof = 1.0 + 1.5 * ((j - 38.5) / 38.5) ** 2
    prof = prof / prof.sum()
    bars = np.empty((d, BARS_PER_DAY, 6))
    bars[:, :, 0] = open_ts[:, None] + j[None, :] * F.BAR_SECONDS
    bars[:, :, 1] = seg[:, :, 0]
    bars[:, :, 2] = seg.max(axis=2)
    bars[:, :, 3] = seg.min(axis=2)
    bars[:, :, 4] = seg[:, :, 5]
    bars[:, :, 5] = np.round(volume[:, None] * prof[None, :])
    return bars.reshape(d * BARS_PER_DAY, 6)


@dataclass
class Market:
    """Generated intraday market for all days: bars per family (index scale) and VIX."""

    daily: DailyData
    open_ts: np.ndarray  # (D,) epoch s of 09:30 ET
    bars: dict[str, np.ndarray]  # family -> (D*78, 6)
    vix_bars: np.ndarray  # (D*78, 6)
    notes: dict[str, Any] = field(default_factory=dict)

    def window(self, family: str, idx: np.ndarray, width: int, scale: np.ndarray) -> np.ndarray:
        """(k, width, 6) windows ending at global bar idx, NaN-padded, prices scaled."""
        src = self.bars[family] if family != "vix" else self.vix_bars
        pos = idx[:, None] + np.arange(-width + 1, 1)[None, :]
        out = src[np.clip(pos, 0, None)].copy()
        out[pos < 0] = np.nan
        out[:, :, 1:5] *= scale[:, None, None]
        return out


def _parkinson(h: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Daily log-volatility from the day's range (Parkinson 1980)."""
    out: np.ndarray = np.log(np.maximum(h, 1e-12) / np.maximum(lo, 1e-12)) / (
        2.0 * np.sqrt(np.log(2.0))
    )
    return out


def _past_mean(x: np.ndarray, n: int = 20) -> np.ndarray:
    """Mean of the previous n values (not including today); the first day uses itself."""
    out = pd.Series(x).rolling(n, min_periods=1).mean().shift(1).to_numpy(copy=True)
    out[0] = x[0]
    return np.asarray(out, dtype=np.float64)


def day_volatility(h: np.ndarray, lo: np.ndarray, move: np.ndarray) -> np.ndarray:
    """Per-day log-volatility of the whole session (see TODAY_RANGE_WEIGHT)."""
    pk2 = _parkinson(h, lo) ** 2
    var = TODAY_RANGE_WEIGHT * pk2 + (1.0 - TODAY_RANGE_WEIGHT) * _past_mean(pk2)
    var = np.maximum(var, 1e-10)
    k2 = float(np.mean(move**2 / var))  # one global scale: E[z^2] = 1
    out: np.ndarray = np.sqrt(var * k2)
    return out


def log_bridge(
    start: np.ndarray, end: np.ndarray, sigma_day: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """(D, T + 1) paths exp(log start -> log end): a Brownian bridge with per-step
    volatility sigma_day / sqrt(T) driven by the standard normals z (D, T). Only the end
    points are pinned."""
    d, n = z.shape
    w = np.concatenate([np.zeros((d, 1)), np.cumsum(z, axis=1)], axis=1)
    frac = np.arange(n + 1, dtype=np.float64)[None, :] / n
    a, b = np.log(start)[:, None], np.log(end)[:, None]
    step = (sigma_day / np.sqrt(n))[:, None]
    out: np.ndarray = np.exp(a + frac * (b - a) + step * (w - frac * w[:, -1:]))
    return out


def build_market(daily: DailyData, rng: np.random.Generator) -> Market:
    """Causal intraday market: log-Brownian bridges to the real closes only.

    Index paths run from the real open to the real close; the VIX path from the
    previous real close to today's, its increments correlated with the S&P path's by
    the correlation of the standardised daily moves (so the pair is a 2-D Brownian
    bridge whose end points are typical draws: nothing at entry predicts the rest of
    the day beyond what a martingale allows; tests/unit/test_causal_world.py measures
    it)."""
    days = [date.fromisoformat(str(d)) for d in daily.dates]
    open_ts = np.array([F.session_open_utc(d).timestamp() for d in days])
    d = len(days)
    bars: dict[str, np.ndarray] = {}
    z_sp = rng.standard_normal((d, MINUTES_PER_DAY))
    std_moves: dict[str, np.ndarray] = {}
    for fam in FAMILIES:
        o, h, lo, c = daily.ohlc[fam].T
        move = np.log(c / o)
        sig = day_volatility(h, lo, move)
        std_moves[fam] = move / sig
        z = z_sp if fam == "sp500" else rng.standard_normal((d, MINUTES_PER_DAY))
        paths = log_bridge(o, c, sig, z)
        bars[fam] = bars_from_paths(paths, open_ts, daily.volume[fam])
    vprev = np.concatenate([[daily.vix[0]], daily.vix[:-1]])
    vmove = np.log(daily.vix / vprev)
    vol2 = vmove**2
    vvar = TODAY_RANGE_WEIGHT * vol2 + (1.0 - TODAY_RANGE_WEIGHT) * _past_mean(vol2)
    vvar = np.maximum(vvar, 1e-8)
    vsig = np.sqrt(vvar * float(np.mean(vol2 / vvar)))
    zv_end = vmove / vsig
    # one correlation for the real-VIX era and one for the proxy era (the proxy moves
    # with realised volatility, not with the sign of the day)
    rho = np.empty(d)
    rhos: dict[str, float] = {}
    for name, era in (("real", daily.vix_real), ("proxy", ~daily.vix_real)):
        r = float(np.mean(zv_end[era] * std_moves["sp500"][era])) if era.any() else 0.0
        rhos[name] = float(np.clip(r, -0.95, 0.95))
        rho[era] = rhos[name]
    rho = rho[:, None]
    zv = rho * z_sp + np.sqrt(1.0 - rho**2) * rng.standard_normal((d, MINUTES_PER_DAY))
    vpaths = np.maximum(log_bridge(vprev, daily.vix, vsig, zv), 5.0)
    vix_bars = bars_from_paths(vpaths, open_ts, np.zeros(d))
    return Market(
        daily=daily,
        open_ts=open_ts,
        bars=bars,
        vix_bars=vix_bars,
        notes={"vix_sp500_increment_corr": rhos},
    )


@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    day: np.ndarray  # day index into market.daily.dates
    symbol: np.ndarray  # str
    strategy: np.ndarray  # int codes
    action_sell: np.ndarray
    profit: np.ndarray
    feature_names: tuple[str, ...] = F.FEATURE_NAMES
    dates: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="datetime64[D]"))
    trades: F.TradeArrays | None = None
    ctx_index: np.ndarray | None = None  # row -> context
    contexts: dict[str, np.ndarray] = field(default_factory=dict)  # day, slot, family, symbol
    notes: dict[str, Any] = field(default_factory=dict)


def _rnd(x: np.ndarray, inc: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.round(x / inc) * inc
    return out


def generate_trades(
    market: Market,
    day_idx: np.ndarray,
    slots_per_day: int,
    rng: np.random.Generator,
    chunk: int = 4096,
    progress: object | None = None,
    info_level: str | float = DEFAULT_INFO_LEVEL,
) -> Dataset:
    """One context per (day, slot, family) with a random symbol of the family, and one
    trade per strategy in each context; forecasts at the given information level."""
    daily = market.daily
    # contexts
    ctx_day = np.repeat(day_idx, slots_per_day * len(FAMILIES))
    nctx = len(ctx_day)
    ctx_slot = rng.integers(0, BARS_PER_DAY - 2, size=nctx)  # entry at close of bar slot
    ctx_fam = np.tile(np.repeat(np.arange(len(FAMILIES)), slots_per_day), len(day_idx))
    ctx_sym = np.empty(nctx, dtype=object)
    for fi, fam in enumerate(FAMILIES):
        names, weights = FAMILY_SYMBOLS[fam]
        m = ctx_fam == fi
        ctx_sym[m] = rng.choice(np.array(names, dtype=object), size=int(m.sum()), p=weights)
    scale = np.array([SYMBOLS[s][1] for s in ctx_sym])
    gidx = ctx_day * BARS_PER_DAY + ctx_slot
    asof = market.open_ts[ctx_day] + (ctx_slot + 1) * F.BAR_SECONDS
    last = np.empty(nctx)
    mfeat = np.empty((nctx, F.N_MARKET))
    for fi, fam in enumerate(FAMILIES):
        sel = np.flatnonzero(ctx_fam == fi)
        last[sel] = market.bars[fam][gidx[sel], 4] * scale[sel]
        for start in range(0, len(sel), chunk):
            s = sel[start : start + chunk]
            win = market.window(fam, gidx[s], F.BAR_WINDOW, scale[s])
            vwin = market.window("vix", gidx[s], F.VIX_WINDOW, np.ones(len(s)))
            mfeat[s] = F.market_features_batch(win, last[s], asof[s], vwin)
            if progress is not None:
                progress.update(len(s))  # type: ignore[attr-defined]

    # trades: one per strategy per context
    n = nctx * 4
    ci = np.repeat(np.arange(nctx), 4)
    strat = np.tile(np.arange(4), nctx)
    sym = ctx_sym[ci]
    inc = np.array([SYMBOLS[s][2] for s in sym])
    tick = np.array([SYMBOLS[s][3] for s in sym])
    fam_i = ctx_fam[ci]
    spot = last[ci]
    close = daily.ohlc["sp500"][ctx_day[ci], 3]
    close = np.where(fam_i == 1, daily.ohlc["nasdaq"][ctx_day[ci], 3], close) * scale[ci]
    vix_now = market.vix_bars[gidx[ci], 4]
    sigma = vix_now / 100.0 * np.where(fam_i == 1, VOL_MULT["nasdaq"], VOL_MULT["sp500"])
    minutes_left = MINUTES_PER_DAY - (ctx_slot[ci] + 1) * 5.0
    t_years = np.maximum(minutes_left, 1.0) / MINUTES_PER_YEAR
    em = spot * sigma * np.sqrt(t_years)
    # forecasts with a stated information level: a Gaussian mix of the standardised
    # remaining move (its share r) and independent noise
    level_name, agreement, r = info_correlation(info_level)
    rest = (close - spot) / em
    rest_z = rest / max(float(np.std(rest)), 1e-9)

    def forecast(share: float, size: np.ndarray) -> np.ndarray:
        rr = r * share
        z = rr * rest_z + np.sqrt(1.0 - rr**2) * rng.standard_normal(n)
        return spot + z * size * em

    predicted = np.maximum(np.round(forecast(1.0, rng.uniform(0.3, 1.0, n)), 2), 0.01)
    sell = (rng.random(n) < np.array([SELL_SHARE[int(s)] for s in range(4)])[strat]).astype(float)

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    # Strike placement (in units of the expected remaining move em) is tuned so that the
    # per-strategy win rates sit near REAL_WIN_RATES; the forecast only shifts centres.
    lean = spot + 0.5 * (predicted - spot)  # centres lean half-way to the forecast
    strikes = np.full((n, 4), np.nan)
    # Butterfly: centred on the lean, wide wings (a wide debit fly wins often, small)
    k2 = _rnd(lean + rng.standard_normal(n) * 0.1 * em, inc)
    w = np.maximum(inc, _rnd(u(0.7, 1.5) * em, inc))
    bf = strat == BUTTERFLY
    strikes[bf, :3] = np.stack([k2 - w, k2, k2 + w], axis=1)[bf]
    # Iron Condor: far short strikes either side of the lean, narrow wings
    c0 = _rnd(lean, inc)
    b = np.maximum(inc, _rnd(u(1.5, 2.6) * em, inc))
    w = np.maximum(inc, _rnd(u(0.3, 1.0) * em, inc))
    ic = strat == IRON_CONDOR
    strikes[ic] = np.stack([c0 - b - w, c0 - b, c0 + b, c0 + b + w], axis=1)[ic]
    # Sonar: iron-condor shape, nearer body, wide wings
    c0 = _rnd(lean + rng.standard_normal(n) * 0.1 * em, inc)
    b = np.maximum(inc, _rnd(u(0.85, 1.6) * em, inc))
    w = np.maximum(inc, _rnd(u(0.6, 1.6) * em, inc))
    so = strat == SONAR
    strikes[so] = np.stack([c0 - b - w, c0 - b, c0 + b, c0 + b + w], axis=1)[so]
    # Vertical, in the forecast's direction: SELL = credit spread behind spot (OTM),
    # BUY = debit spread in the money; both win if the price does not run far against it
    direction = np.where(predicted >= spot, 1.0, -1.0)
    w = np.maximum(inc, _rnd(u(0.3, 1.0) * em, inc))
    near = _rnd(spot - direction * u(0.7, 1.6) * em, inc)
    far = near + np.where(sell > 0.5, -direction, direction) * w
    ve = strat == VERTICAL
    strikes[ve, :2] = np.sort(np.stack([near, far], axis=1), axis=1)[ve]

    is_call = infer_vertical_call(sell, strikes, predicted)
    fair = structure_value(strat, strikes, is_call, spot, t_years, sigma)
    vmin, vmax = structure_extremes(strat, strikes, is_call)
    premium = fair * np.exp(rng.normal(0.0, 0.25, n)) + rng.normal(0.0, 0.02, n) * (vmax - vmin)
    premium = np.clip(_rnd(premium, tick), tick, np.maximum(vmax - vmin - tick, tick))
    option_call = np.where(ve & (rng.random(n) < 0.5), is_call, np.nan)
    has_st = rng.random(n) < 0.5
    has_lt = rng.random(n) < 0.5
    short_term = np.where(has_st, np.round(forecast(SHORT_TERM_SHARE, np.full(n, 0.8)), 2), np.nan)
    long_term = np.where(has_lt, np.round(forecast(LONG_TERM_SHARE, np.full(n, 1.5)), 2), np.nan)
    trades = F.TradeArrays(
        strategy=strat,
        action_sell=sell,
        premium=premium,
        predicted=predicted,
        strikes=strikes,
        option_call=option_call,
        short_term=short_term,
        long_term=long_term,
        ts=asof[ci],
    )
    X = F.assemble(trades, mfeat[ci], spot)
    profit = profit_at_expiry(strat, sell, strikes, is_call, premium, close)
    return Dataset(
        X=X,
        y=(profit > 0).astype(np.float64),
        day=ctx_day[ci],
        symbol=sym.astype(str),
        strategy=strat,
        action_sell=sell,
        profit=profit,
        dates=daily.dates,
        trades=trades,
        ctx_index=ci,
        contexts={
            "day": ctx_day,
            "slot": ctx_slot,
            "family": ctx_fam,
            "symbol": ctx_sym.astype(str),
            "gidx": gidx,
            "asof": asof,
            "last": last,
            "close": close[::4],
        },
        notes={
            "profit_per_share": True,
            "info_level": level_name,
            "info_direction_agreement_target": agreement,
            "info_correlation": r,
            "forecast_direction_agreement": float(
                np.mean(np.sign(predicted - spot) == np.sign(close - spot))
            ),
            "forecast_corr": float(np.corrcoef(predicted - spot, close - spot)[0, 1]),
            **market.notes,
        },
    )


def strategy_name(code: int) -> str:
    return STRATEGY_ORDER[code].value


def direction_auc(ds: Dataset, train: np.ndarray, test: np.ndarray, seed: int = 7) -> float:
    """Causality check: AUC of an XGBoost on the market and time features at entry (one
    row per context) for the direction of the rest of the day (close - spot), fitted on
    the train rows' contexts and scored on the test rows'. A martingale world gives ~0.5."""
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    assert ds.ctx_index is not None
    ci = ds.ctx_index
    first = np.unique(ci, return_index=True)[1]
    n_cols = F.N_MARKET + len(F.TEMPORAL_FEATURES)
    x = ds.X[first][:, :n_cols]
    y = (ds.contexts["close"] > ds.contexts["last"]).astype(np.float64)
    tr, te = train[first], test[first]
    if len(np.unique(y[te])) < 2 or len(np.unique(y[tr])) < 2:
        return float("nan")
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.1,
        "subsample": 0.8,
        "min_child_weight": 5,
        "nthread": 1,
        "seed": seed,
    }
    booster = xgb.train(params, xgb.DMatrix(x[tr], label=y[tr]), num_boost_round=150)
    return float(roc_auc_score(y[te], booster.predict(xgb.DMatrix(x[te]))))
