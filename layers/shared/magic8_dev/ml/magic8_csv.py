"""A user's own Magic8 trade export (the earlier predictor's CSV schema) -> Dataset.

Columns (case-insensitive): date, time, symbol, strategy, price, premium, predicted,
risk, reward, profit, strike1..strike4, short_term, long_term; optional: action
(BUY/SELL), option_type (C/P/call/put), vix. Other columns are ignored.

- Times are America/New_York wall-clock times (Magic8 prints Eastern time).
- Label: profit > 0.
- action missing -> Butterfly BUY, Iron Condor SELL, Sonar SELL, Vertical SELL (Magic8's
  usual debit fly / credit condor / credit spread).
- Market context comes from the export itself, never from the future: each symbol's
  `price` observations form 5-minute bars (first/max/min/last per bucket; empty buckets
  carry the last close forward within a session) and a row sees only bars that closed at
  or before its time, with `price` as the last price; a `vix` column forms VIX bars the
  same way. Without a `vix` column the export cannot give the VIX features: loading
  refuses (MissingColumnError) unless allow_missing_vix, and then it warns on stderr,
  trains with the documented no-VIX defaults of magic8.domain.features on every row
  (vix_level 17, vix_vs_sma20 0, vix_change_1h 0; the expected move uses VIX 17) and
  records that in the dataset notes (manifest.json `data.vix`).
- Rows whose strikes do not fit their strategy, or with an unknown strategy/symbol, are
  dropped and counted.

The rows are built with the service's own feature functions (market_features_batch,
assemble), so training and serving agree.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from magic8.domain import features as F
from magic8.domain.pricing import STRATEGY_CODE
from magic8.domain.trades import Strategy, Symbol
from magic8_dev.ml.data import Dataset

DEFAULT_SELL = {"Butterfly": 0.0, "Iron Condor": 1.0, "Sonar": 1.0, "Vertical": 1.0}
_STRATEGY_ALIASES = {
    s.value.casefold().replace(" ", ""): s.value for s in Strategy
}  # "ironcondor" -> "Iron Condor"


def _strategy(value: object) -> str | None:
    key = str(value).strip().casefold().replace("_", "").replace(" ", "").replace("-", "")
    return _STRATEGY_ALIASES.get(key)


def _bars_from_prices(ts: np.ndarray, price: np.ndarray, open_ts: np.ndarray) -> np.ndarray:
    """(m, 6) 5-minute bars from (ts, price) observations sorted by ts: first/max/min/last
    per bucket; from a session's first observation to its close, empty buckets carry the
    last close forward."""
    bucket = np.floor((ts - open_ts) / F.BAR_SECONDS)
    ok = (bucket >= 0) & (bucket < 78) & np.isfinite(price)
    ts, price, open_ts, bucket = ts[ok], price[ok], open_ts[ok], bucket[ok].astype(np.int64)
    if len(ts) == 0:
        return np.empty((0, 6))
    out: list[np.ndarray] = []
    for sess in np.unique(open_ts):
        m = open_ts == sess
        b, p = bucket[m], price[m]
        first_b = int(b.min())
        o = np.full(78, np.nan)
        h = np.full(78, -np.inf)
        lo = np.full(78, np.inf)
        c = np.full(78, np.nan)
        np.maximum.at(h, b, p)
        np.minimum.at(lo, b, p)
        o[b[::-1]] = p[::-1]  # first observation in each bucket wins
        c[b] = p  # last observation in each bucket wins
        seen = np.isfinite(c)
        idx = np.where(seen, np.arange(78), 0)
        np.maximum.accumulate(idx, out=idx)
        close = c[idx]
        bars = np.column_stack(
            [
                sess + np.arange(78) * F.BAR_SECONDS,
                np.where(seen, o, close),
                np.where(seen, h, close),
                np.where(seen, lo, close),
                close,
                np.zeros(78),
            ]
        )
        out.append(bars[first_b:])
    return np.vstack(out)


def _windows(bars: np.ndarray, upto_ts: np.ndarray, width: int) -> np.ndarray:
    """(k, width, 6): for each time, the last `width` bars that closed at or before it."""
    k = len(upto_ts)
    if len(bars) == 0:
        return np.full((k, width, 6), np.nan)
    ends = bars[:, 0] + F.BAR_SECONDS
    idx = np.searchsorted(ends, upto_ts, side="right") - 1  # last closed bar
    pos = idx[:, None] + np.arange(-width + 1, 1)[None, :]
    out = bars[np.clip(pos, 0, None)].copy()
    out[pos < 0] = np.nan
    return out


class MissingColumnError(ValueError):
    """The export lacks a column the features need."""


VIX_MISSING_NOTE = (
    "no vix column: every row uses the documented no-VIX defaults (vix_level ="
    f" {F.VIX_DEFAULT_LEVEL:g}, vix_vs_sma20 = 0, vix_change_1h = 0; expected move and"
    " probability-of-profit features computed at that VIX), so the model cannot see"
    " the volatility regime"
)


def load_csv_dataset(path: Path, allow_missing_vix: bool = False) -> Dataset:
    raw = pd.read_csv(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = {"date", "time", "symbol", "strategy", "price", "premium", "predicted", "profit"}
    missing -= set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    notes: dict[str, object] = {}
    if "vix" not in raw.columns:
        if not allow_missing_vix:
            raise MissingColumnError(
                f"{path}: no `vix` column. The features need the VIX at each trade's time;"
                " add a vix column (the VIX level when the trade was entered), or pass"
                f" --allow-missing-vix to train anyway ({VIX_MISSING_NOTE})."
            )
        warnings.warn(f"{path}: {VIX_MISSING_NOTE}", stacklevel=2)
        print(f"WARNING magic8 train: {path}: {VIX_MISSING_NOTE}", file=sys.stderr)
        notes["vix"] = VIX_MISSING_NOTE
    else:
        vix_values = pd.to_numeric(raw["vix"], errors="coerce")
        n_bad = int((~np.isfinite(vix_values.to_numpy(dtype=np.float64))).sum())
        notes["vix"] = f"from the export's vix column ({n_bad} rows without a value)"
        if n_bad:
            print(
                f"WARNING magic8 train: {path}: {n_bad} of {len(raw)} rows have no vix value;"
                " their VIX bars carry the last known value forward within the session",
                file=sys.stderr,
            )
    df = raw.copy()
    df["strategy_name"] = df["strategy"].map(_strategy)
    df["symbol"] = df["symbol"].astype(str).str.strip().str.upper()
    stamp = pd.to_datetime(df["date"].astype(str) + " " + df["time"].astype(str), errors="coerce")
    local = stamp.dt.tz_localize(F.EASTERN, ambiguous="NaT", nonexistent="NaT")
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    df["ts"] = (local.dt.tz_convert("UTC") - epoch).dt.total_seconds()
    df.loc[local.isna(), "ts"] = np.nan
    strike_cols = [c for c in ("strike1", "strike2", "strike3", "strike4") if c in df.columns]
    strikes = df[strike_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    strikes = np.where(strikes > 0, strikes, np.nan)
    strikes = np.sort(strikes, axis=1)  # NaN sort last
    if strikes.shape[1] < 4:
        strikes = np.hstack([strikes, np.full((len(df), 4 - strikes.shape[1]), np.nan)])
    n_strikes = np.isfinite(strikes).sum(axis=1)
    need = df["strategy_name"].map({"Butterfly": 3, "Iron Condor": 4, "Vertical": 2, "Sonar": 4})
    distinct = np.array(
        [len(set(r[np.isfinite(r)].tolist())) == int(np.isfinite(r).sum()) for r in strikes]
    )
    numeric = {
        c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        for c in ("price", "premium", "predicted", "profit")
    }
    valid = (
        df["strategy_name"].notna().to_numpy()
        & df["symbol"].isin([s.value for s in Symbol]).to_numpy()
        & np.isfinite(df["ts"].to_numpy(dtype=np.float64))
        & (n_strikes == need.fillna(-1).to_numpy())
        & distinct
        & (numeric["price"] > 0)
        & (numeric["premium"] >= 0)
        & (numeric["predicted"] > 0)
        & np.isfinite(numeric["profit"])
    )
    if not valid.any():
        raise ValueError(f"{path}: no usable rows")
    keep = np.flatnonzero(valid)
    df = df.iloc[keep].reset_index(drop=True)
    strikes = strikes[keep]
    numeric = {k: v[keep] for k, v in numeric.items()}
    ts = df["ts"].to_numpy(dtype=np.float64)
    open_ts, _, _ = F.session_clock(ts)
    n = len(df)

    def opt_col(name: str) -> np.ndarray:
        if name not in df.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)

    # market part: per symbol, bars from its own price observations
    market = np.empty((n, F.N_MARKET))
    order = np.argsort(ts, kind="stable")
    vix_px = opt_col("vix")
    vix_bars = _bars_from_prices(ts[order], vix_px[order], open_ts[order])
    for sym in sorted(set(df["symbol"])):
        rows = np.flatnonzero(df["symbol"].to_numpy() == sym)
        rows = rows[np.argsort(ts[rows], kind="stable")]
        bars = _bars_from_prices(ts[rows], numeric["price"][rows], open_ts[rows])
        win = _windows(bars, ts[rows], F.BAR_WINDOW)
        vwin = _windows(vix_bars, ts[rows], F.VIX_WINDOW)
        market[rows] = F.market_features_batch(win, numeric["price"][rows], ts[rows], vwin)

    strategy = np.array([STRATEGY_CODE[Strategy(s)] for s in df["strategy_name"]], dtype=np.int64)
    sell: np.ndarray
    if "action" in df.columns:
        act = df["action"].astype(str).str.strip().str.upper()
        sell = np.where(
            act == "SELL",
            1.0,
            np.where(act == "BUY", 0.0, df["strategy_name"].map(DEFAULT_SELL).to_numpy()),
        ).astype(np.float64)
    else:
        sell = df["strategy_name"].map(DEFAULT_SELL).to_numpy(dtype=np.float64)
    option_call = np.full(n, np.nan)
    if "option_type" in df.columns:
        ot = df["option_type"].astype(str).str.strip().str.lower()
        option_call = np.where(
            ot.str.startswith("p"), 0.0, np.where(ot.str.startswith("c"), 1.0, np.nan)
        )
    trades = F.TradeArrays(
        strategy=strategy,
        action_sell=sell,
        premium=numeric["premium"],
        predicted=numeric["predicted"],
        strikes=strikes,
        option_call=option_call,
        short_term=opt_col("short_term"),
        long_term=opt_col("long_term"),
        ts=ts,
    )
    X = F.assemble(trades, market, numeric["price"])
    days = pd.to_datetime(open_ts, unit="s").normalize().to_numpy().astype("datetime64[D]")
    uniq, day_idx = np.unique(days, return_inverse=True)
    return Dataset(
        X=X,
        y=(numeric["profit"] > 0).astype(np.float64),
        day=day_idx.astype(np.int64),
        symbol=df["symbol"].to_numpy().astype(str),
        strategy=strategy,
        action_sell=sell,
        profit=numeric["profit"],
        dates=uniq,
        trades=trades,
        notes={"rows_read": len(raw), "rows_dropped": int(len(raw) - n), **notes},
    )
