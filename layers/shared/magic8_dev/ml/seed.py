"""`magic8 seed-market`: one MarketSnapshot per symbol + VIX from real daily bars.

The most recent real days in the shipped data (S&P 500 and NASDAQ Composite to
2018-12-31, VIX) are expanded to 5-minute bars by the same intraday generator training
uses (magic8_dev.ml.data), then shifted in time so the latest bar ends "now": seeded data
looks live, and every snapshot says data_source "seed". By default each symbol's path is
rescaled so its last price sits at a reference level near today's (SPX 5850, the level of
the DiscordTrading example); returns, ranges and VIX stay real. `--real-levels` keeps the
2018 levels. RUT has no honest source and is not seeded.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import numpy as np

from magic8.domain.features import BAR_SECONDS
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar, MarketSnapshot
from magic8.domain.ports import MarketDataRepository
from magic8.settings import AwsSettings

SEED_SYMBOLS: tuple[str, ...] = ("SPX", "SPY", "XSP", "NDX", "QQQ")
VIX_SYMBOL = "VIX"
REFERENCE_LEVELS: dict[str, float] = {
    "SPX": 5850.0,
    "SPY": 585.0,
    "XSP": 585.0,
    "NDX": 21000.0,
    "QQQ": 510.0,
}
SEED_TTL_SECONDS = 6 * 3600
_SEED_DAYS = 3  # enough bars for SNAPSHOT_BAR_WINDOW


def build_seed_snapshots(
    now: datetime | None = None,
    levels: dict[str, float] | None = REFERENCE_LEVELS,
    seed: int = 8,
) -> list[MarketSnapshot]:
    """Snapshots for SEED_SYMBOLS and VIX whose latest bar ends at `now`."""
    from magic8_dev.ml import data as D

    now = (now or datetime.now(UTC)).astimezone(UTC)
    daily = D.load_daily().tail(_SEED_DAYS)
    market = D.build_market(daily, np.random.default_rng(seed))
    last_idx = np.array([len(daily.dates) * D.BARS_PER_DAY - 1])
    shift = now.timestamp() - (market.bars["sp500"][-1, 0] + BAR_SECONDS)

    def snapshot(symbol: str, win: np.ndarray, tick: float) -> MarketSnapshot:
        bars = tuple(
            Bar(
                ts=round(float(b[0] + shift)),
                open=round(float(b[1]), 4),
                high=round(float(b[2]), 4),
                low=round(float(b[3]), 4),
                close=round(float(b[4]), 4),
                volume=float(b[5]),
            )
            for b in win
            if np.isfinite(b[0])
        )
        last = bars[-1].close
        return MarketSnapshot(
            symbol=symbol,
            last=last,
            bid=round(last - tick, 4),
            ask=round(last + tick, 4),
            bars=bars,
            updated_at=now,
            source="seed",
        )

    out: list[MarketSnapshot] = []
    for symbol in SEED_SYMBOLS:
        family, scale, _inc, tick = D.SYMBOLS[symbol]
        raw_last = float(market.bars[family][-1, 4]) * scale
        if levels and symbol in levels:
            scale *= levels[symbol] / raw_last
        win = market.window(family, last_idx, SNAPSHOT_BAR_WINDOW, np.array([scale]))[0]
        out.append(snapshot(symbol, win, tick))
    vwin = market.window("vix", last_idx, SNAPSHOT_BAR_WINDOW, np.ones(1))[0]
    out.append(snapshot(VIX_SYMBOL, vwin, 0.01))
    return out


def seed_market(
    settings: AwsSettings | None = None,
    repo: MarketDataRepository | None = None,
    now: datetime | None = None,
    levels: dict[str, float] | None = REFERENCE_LEVELS,
    ttl_seconds: int = SEED_TTL_SECONDS,
) -> list[MarketSnapshot]:
    """Write one seeded snapshot per symbol + VIX into the market table."""
    if repo is None:
        from magic8.adapters.market_dynamo import DynamoMarketRepository

        repo = DynamoMarketRepository((settings or AwsSettings()).market_table)
    snapshots = build_seed_snapshots(now=now, levels=levels)
    for snap in snapshots:
        repo.put_snapshot(snap, ttl_seconds=ttl_seconds)
    return snapshots


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--real-levels",
        action="store_true",
        help="keep the real 2018 price levels instead of rescaling to reference levels",
    )
    parser.add_argument("--ttl", type=int, default=SEED_TTL_SECONDS, help="snapshot TTL, s")


def run(args: argparse.Namespace) -> int:
    settings = AwsSettings()
    snaps = seed_market(
        settings, levels=None if args.real_levels else REFERENCE_LEVELS, ttl_seconds=args.ttl
    )
    for s in snaps:
        print(f"{s.symbol:4s} last {s.last:>10.2f}  {len(s.bars)} bars  source {s.source}")
    print(f"seeded {len(snaps)} snapshots into {settings.market_table}")
    return 0
