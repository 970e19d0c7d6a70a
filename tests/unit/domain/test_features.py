"""The one feature module: serve-time rows equal training rows; NaN/inf never leak."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from magic8.domain import features as F
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar, MarketSnapshot
from magic8.domain.pricing import STRATEGY_ORDER
from magic8.domain.trades import TradeRequest
from magic8_dev.ml import data as D
from tests.factories import IRON_CONDOR
from tests.factories import trade as make_trade


@pytest.fixture(scope="module")
def generated() -> tuple[D.Market, D.Dataset]:
    rng = np.random.default_rng(11)
    market = D.build_market(D.load_daily(), rng)
    ds = D.generate_trades(market, np.arange(3000, 3006), 2, rng)
    return market, ds


def _with(trade: TradeRequest, update: dict[str, object]) -> TradeRequest:
    """A validated copy (model_copy(update=) skips validation)."""
    return TradeRequest(**{**trade.model_dump(), **update})


def _bars(win: np.ndarray) -> tuple[Bar, ...]:
    return tuple(
        Bar(ts=int(b[0]), open=b[1], high=b[2], low=b[3], close=b[4], volume=b[5])
        for b in win
        if np.isfinite(b[0])
    )


def _snapshots(market: D.Market, ds: D.Dataset, c: int) -> tuple[MarketSnapshot, MarketSnapshot]:
    ctx = ds.contexts
    sym = str(ctx["symbol"][c])
    fam = D.FAMILIES[int(ctx["family"][c])]
    gidx = np.array([ctx["gidx"][c]])
    win = market.window(fam, gidx, SNAPSHOT_BAR_WINDOW, np.array([D.SYMBOLS[sym][1]]))[0]
    vwin = market.window("vix", gidx, SNAPSHOT_BAR_WINDOW, np.ones(1))[0]
    asof = datetime.fromtimestamp(float(ctx["asof"][c]), UTC)
    snap = MarketSnapshot(
        symbol=sym, last=float(ctx["last"][c]), bars=_bars(win), updated_at=asof, source="seed"
    )
    vix = MarketSnapshot(
        symbol="VIX", last=float(vwin[-1, 4]), bars=_bars(vwin), updated_at=asof, source="seed"
    )
    return snap, vix


def _request(ds: D.Dataset, r: int) -> TradeRequest:
    t = ds.trades
    assert t is not None
    code = int(t.strategy[r])
    ks = [float(k) for k in t.strikes[r] if np.isfinite(k)]
    opt = t.option_call[r]
    return TradeRequest(
        strategy=STRATEGY_ORDER[code],
        symbol=str(ds.symbol[r]),
        premium=float(t.premium[r]),
        predicted_price=float(t.predicted[r]),
        strikes=ks[::-1],  # descending, as DiscordTrading sends them
        action="SELL" if t.action_sell[r] > 0.5 else "BUY",
        option_type=None if np.isnan(opt) else ("C" if opt > 0.5 else "P"),
        short_term=None if np.isnan(t.short_term[r]) else float(t.short_term[r]),
        long_term=None if np.isnan(t.long_term[r]) else float(t.long_term[r]),
    )


def test_serve_row_equals_training_row(generated: tuple[D.Market, D.Dataset]) -> None:
    market, ds = generated
    assert ds.ctx_index is not None
    rows = np.arange(0, len(ds.y), 5)  # every strategy, both families, many entry times
    checked = set()
    for r in rows:
        c = int(ds.ctx_index[r])
        snap, vix = _snapshots(market, ds, c)
        ctx = F.market_context_from_snapshots(snap, vix)
        served = F.build_features([_request(ds, int(r))], [ctx])[0]
        np.testing.assert_allclose(served, ds.X[r], rtol=1e-12, atol=1e-12, equal_nan=True)
        checked.add((str(ds.symbol[r]), int(ds.strategy[r])))
    assert len({s for _, s in checked}) == 4


def test_batch_rows_equal_single_rows(generated: tuple[D.Market, D.Dataset]) -> None:
    market, ds = generated
    assert ds.ctx_index is not None
    rows = list(range(0, 40))
    ctxs = {}
    for r in rows:
        c = int(ds.ctx_index[r])
        if c not in ctxs:
            ctxs[c] = F.market_context_from_snapshots(*_snapshots(market, ds, c))
    reqs = [_request(ds, r) for r in rows]
    contexts = [ctxs[int(ds.ctx_index[r])] for r in rows]
    batch = F.build_features(reqs, contexts)
    single = np.vstack([F.build_features([q], [c]) for q, c in zip(reqs, contexts, strict=True)])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_allclose(batch, ds.X[rows], rtol=1e-12, atol=1e-12, equal_nan=True)


def test_strike_order_does_not_matter() -> None:
    ctx = _flat_context()
    a = make_trade(IRON_CONDOR)
    b = _with(a, {"strikes": [5835, 5880, 5830, 5875]})
    x = F.build_features([a, b], [ctx, ctx])
    np.testing.assert_array_equal(x[0], x[1])
    assert x[0, F.FEATURE_NAMES.index("k1_dist")] == pytest.approx((5830 - 5850) / 5850)


def _flat_context(n_bars: int = 90, with_vix: bool = True) -> F.MarketContext:
    asof = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)  # 14:00 ET
    ts = asof.timestamp() - F.BAR_SECONDS * np.arange(n_bars, 0, -1)
    px = 5850 + np.sin(np.arange(n_bars) / 5.0) * 10
    bars = np.column_stack([ts, px, px + 2, px - 2, px, np.full(n_bars, 1000.0)])
    vbars = np.column_stack([ts, *(np.full((4, n_bars), 15.0)), np.zeros(n_bars)])
    return F.MarketContext(
        symbol="SPX",
        bars=bars[:, :6],
        vix_bars=vbars if with_vix else np.empty((0, 6)),
        last=5850.0,
        asof=asof,
    )


def test_missing_data_gives_documented_defaults_not_inf() -> None:
    trade = make_trade()
    empty = F.MarketContext("SPX", np.empty((0, 6)), np.empty((0, 6)), 5850.0, datetime.now(UTC))
    x = F.build_features([trade], [empty])[0]
    assert not np.isinf(x).any()
    assert x[F.FEATURE_NAMES.index("vix_level")] == F.VIX_DEFAULT_LEVEL
    assert x[F.FEATURE_NAMES.index("vix_change_1h")] == 0.0
    assert np.isnan(x[F.FEATURE_NAMES.index("close_vs_sma20")])  # too little history
    assert x[F.FEATURE_NAMES.index("has_short_term")] == 0.0
    assert np.isnan(x[F.FEATURE_NAMES.index("short_term_delta")])
    # a short history still yields the features its lookback allows
    short = _flat_context(n_bars=15, with_vix=False)
    y = F.build_features([trade], [short])[0]
    assert np.isfinite(y[F.FEATURE_NAMES.index("rsi_14")])
    assert np.isnan(y[F.FEATURE_NAMES.index("close_vs_sma20")])


def test_trade_fields_move_their_features() -> None:
    ctx = _flat_context()
    base = make_trade(premium=10.0, short_term=5860)
    x0 = F.build_features([base], [ctx])[0]
    variants = {
        "net_premium_norm": _with(base, {"premium": 12.0}),
        "pred_dist": _with(base, {"predicted_price": 5870}),
        "k2_dist": _with(base, {"strikes": [5910, 5860, 5810]}),
        "action_sell": _with(base, {"action": "SELL"}),
        "short_term_delta": _with(base, {"short_term": 5840}),
    }
    for name, trade in variants.items():
        x = F.build_features([trade], [ctx])[0]
        j = F.FEATURE_NAMES.index(name)
        assert x[j] != x0[j], name
    assert x0[F.FEATURE_NAMES.index("risk_reward")] == pytest.approx(40.0 / 10.0)


def test_session_clock_handles_dst() -> None:
    # 09:30 ET is 14:30 UTC in winter and 13:30 UTC in summer
    winter = datetime(2025, 1, 15, 14, 30, tzinfo=UTC).timestamp()
    summer = datetime(2025, 7, 15, 13, 30, tzinfo=UTC).timestamp()
    _, minutes, dow = F.session_clock(np.array([winter, summer]))
    np.testing.assert_array_equal(minutes, [0.0, 0.0])
    np.testing.assert_array_equal(dow, [2.0, 1.0])  # Wednesday, Tuesday
