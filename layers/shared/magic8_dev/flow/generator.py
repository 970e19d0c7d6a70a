"""Labelled NQ options sessions written as real DBN files (definitions + MBO, zstd).

No public NQ options MBO sample exists, so detection quality is measured on generated
sessions whose truth is known. Each trading day has:

- quiet flow: Poisson trades on every strike (more near the money), small sizes, buyer
  and seller aggressors balanced, a few with unknown side; each trade is an `A` (the
  resting order), a `T` (aggressor side) and an `F` (resting side) record, plus book noise
  (adds that get cancelled), like CME MBO;
- market-maker bait: two-sided straddle (call and put at one strike) or strangle
  (put below, call above) activity with large, balanced buy/sell volume on both legs;
- labelled institutional episodes: sustained one-sided aggressor volume (BUY or SELL) on
  calls or puts at one strike or a cluster of neighbouring strikes. BUY calls / SELL puts
  are LONG, SELL calls / BUY puts are SHORT.

Files follow the labelled-session format of DESIGN.md: `day-YYYY-MM-DD/definition.dbn.zst`
and `day-YYYY-MM-DD/mbo.dbn.zst` per day plus `truth.json`. Beside them,
`day-YYYY-MM-DD/ohlcv-1m.dbn.zst`: the NQ future's 1-minute bars (schema `ohlcv-1m`, symbol
NQ.c.0, the future's instrument id), a price path around the day's spot (the level the
options are priced at) that drifts with each labelled episode (LONG up, SHORT down), so
the chart's candles and the signals tell one story. It draws from its own random stream:
the option files do not change with it (`generate_futures` adds it to an existing session).
The DBN header comes from
`databento_dbn.Metadata.encode()`, definitions are `databento_dbn.InstrumentDefMsg`
records, MBO records are laid out with the library's own `MBOMsg` dtype; everything reads
back with `databento.DBNStore.from_file`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import numpy as np
import zstandard

from magic8.flow.ingest import MBO_DTYPE

NS = 1_000_000_000
DATASET = "GLBX.MDP3"
PUBLISHER_GLBX = 1
F_LAST = 128
TICK = 0.25
MULTIPLIER = 20  # NQ options: $20 x index points
STRIKE_STEP = 25


@dataclass(frozen=True)
class SessionParams:
    days: int = 8
    seed: int = 8
    start: date = date(2025, 9, 15)
    underlying: str = "NQZ5"
    spot: float = 20_000.0
    strikes_each_side: int = 16  # strikes = spot +- 16 * 25
    open_utc: str = "13:30"  # 09:30 ET (EDT)
    close_utc: str = "20:00"  # 16:00 ET
    quiet_trades_per_day: int = 3_000  # across all options
    noise_per_trade: float = 1.0  # extra add+cancel pairs per trade
    quiet_block_share: float = 0.03  # quiet trades that are large blocks (random side)
    episodes_per_day: float = 1.5
    bait_per_day: float = 1.5
    warmup_days: int = 1  # first days without episodes or bait (baselines)
    episode_minutes: tuple[int, int] = (15, 45)
    episode_trade_interval_s: float = 20.0
    episode_size: tuple[int, int] = (15, 60)
    episode_purity: float = 0.9  # share of episode trades on the declared aggressor side
    expiration: date = date(2025, 12, 19)
    # scenario knobs (the evaluation grid): which shapes and aggressors episodes take, and
    # when they may start (minutes after the open; None: 30 min after the open onwards)
    episode_shapes: tuple[str, ...] = ("single", "cluster")
    episode_aggressors: tuple[str, ...] = ("BUY", "SELL")
    episode_start_minutes: tuple[int, int] | None = None


@dataclass
class Episode:
    day: str
    start: str
    end: str
    option_type: str
    strikes: list[float]
    aggressor: str
    direction: str
    instrument_ids: list[int] = field(default_factory=list)
    trades: int = 0
    volume: int = 0


@dataclass
class Bait:
    day: str
    kind: str
    strike: float
    start: str
    end: str
    strikes: list[float] = field(default_factory=list)
    option_types: list[str] = field(default_factory=lambda: ["C", "P"])
    instrument_ids: list[int] = field(default_factory=list)
    trades: int = 0
    volume: int = 0


@dataclass
class DayResult:
    day: str
    records: int
    trades: int
    definition_path: str
    mbo_path: str


DIRECTION = {
    ("C", "BUY"): "LONG",
    ("C", "SELL"): "SHORT",
    ("P", "BUY"): "SHORT",
    ("P", "SELL"): "LONG",
}


def direction_of(option_type: str, aggressor: str) -> str:
    return DIRECTION[(option_type, aggressor)]


# -- instruments --------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    instrument_id: int
    raw_symbol: str
    option_type: str | None  # None: the future
    strike: float | None


def option_chain(p: SessionParams) -> list[Option]:
    """The future plus calls and puts on a fixed strike grid (ids stable across days)."""
    base = round(p.spot / STRIKE_STEP) * STRIKE_STEP
    out = [Option(100_000, p.underlying, None, None)]
    for i in range(-p.strikes_each_side, p.strikes_each_side + 1):
        k = float(base + i * STRIKE_STEP)
        for j, cp in enumerate(("C", "P")):
            iid = 200_000 + (i + p.strikes_each_side) * 2 + j
            out.append(Option(iid, f"{p.underlying} {cp}{int(k)}", cp, k))
    return out


def definition_records(p: SessionParams, chain: list[Option], ts: int) -> list[Any]:
    exp_ns = int(datetime(*p.expiration.timetuple()[:3], 21, 0, tzinfo=UTC).timestamp()) * NS
    recs = []
    for o in chain:
        common: dict[str, Any] = dict(
            publisher_id=PUBLISHER_GLBX,
            instrument_id=o.instrument_id,
            ts_event=ts,
            ts_recv=ts,
            min_price_increment=int(TICK * NS),
            display_factor=NS,
            raw_symbol=o.raw_symbol,
            asset="NQ",
            security_update_action=dbn.SecurityUpdateAction.ADD,
            expiration=exp_ns,
            exchange="XCME",
            currency="USD",
            channel_id=0,
        )
        if o.option_type is None:
            recs.append(
                dbn.InstrumentDefMsg(
                    security_type="FUT",
                    instrument_class=dbn.InstrumentClass.FUTURE,  # type: ignore[arg-type]
                    unit_of_measure_qty=20 * NS,
                    cfi="FFIXSX",
                    group="NQ",
                    **common,
                )
            )
        else:
            option_class: Any = (
                dbn.InstrumentClass.CALL if o.option_type == "C" else dbn.InstrumentClass.PUT
            )
            recs.append(
                dbn.InstrumentDefMsg(
                    security_type="OOF",
                    instrument_class=option_class,
                    strike_price=int((o.strike or 0) * NS),
                    strike_price_currency="USD",
                    underlying=p.underlying,
                    underlying_id=100_000,
                    unit_of_measure_qty=MULTIPLIER * NS,
                    cfi="OCAFPS" if o.option_type == "C" else "OPAFPS",
                    group="NQ",
                    **common,
                )
            )
    return recs


# -- writing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass(frozen=True)
class _Mapping:
    raw_symbol: str
    intervals: list[_Interval]


def metadata(
    schema: Any, start_ns: int, end_ns: int, chain: list[Option] | None, day: date
) -> dbn.Metadata:
    mappings = [
        _Mapping(o.raw_symbol, [_Interval(day, day + timedelta(days=1), str(o.instrument_id))])
        for o in chain or []
    ]
    return dbn.Metadata(
        dataset=DATASET,
        start=start_ns,
        end=end_ns,
        stype_in=dbn.SType.PARENT,  # type: ignore[arg-type]
        stype_out=dbn.SType.INSTRUMENT_ID,  # type: ignore[arg-type]
        schema=schema,
        symbols=["NQ.OPT", "NQ.FUT"],
        mappings=mappings,  # type: ignore[arg-type]
    )


def write_dbn(path: Path, meta: dbn.Metadata, body: bytes, level: int = 9) -> int:
    """A zstd-compressed DBN file: the encoded header followed by the records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = zstandard.ZstdCompressor(level=level).compress(bytes(meta.encode()) + body)
    path.write_bytes(data)
    return len(data)


# -- flow ---------------------------------------------------------------------------------


def _premium(spot: float, strike: np.ndarray, is_call: np.ndarray) -> np.ndarray:
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0), np.maximum(strike - spot, 0))
    time_value = 180.0 * np.exp(-(((strike - spot) / 450.0) ** 2)) + 5.0
    return np.maximum(np.round((intrinsic + time_value) / TICK) * TICK, TICK)


@dataclass
class _Trades:
    iid: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    side: list[np.ndarray] = field(default_factory=list)  # b"B" buyer aggressor, b"A", b"N"
    size: list[np.ndarray] = field(default_factory=list)

    def add(self, iid: np.ndarray, ts: np.ndarray, side: np.ndarray, size: np.ndarray) -> None:
        self.iid.append(iid.astype(np.uint32))
        self.ts.append(ts.astype(np.int64))
        self.side.append(side.astype("S1"))
        self.size.append(size.astype(np.uint32))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.iid:
            z = np.zeros(0)
            return z.astype(np.uint32), z.astype(np.int64), z.astype("S1"), z.astype(np.uint32)
        return (
            np.concatenate(self.iid),
            np.concatenate(self.ts),
            np.concatenate(self.side),
            np.concatenate(self.size),
        )


def _sides(rng: np.random.Generator, n: int, p_buy: float, p_unknown: float = 0.0) -> np.ndarray:
    u = rng.random(n)
    return np.where(u < p_unknown, b"N", np.where(u < p_unknown + p_buy, b"B", b"A")).astype("S1")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=UTC).isoformat()


def _session_bounds(p: SessionParams, day: date) -> tuple[int, int]:
    def at(hhmm: str) -> int:
        h, m = (int(x) for x in hhmm.split(":"))
        return int(datetime(day.year, day.month, day.day, h, m, tzinfo=UTC).timestamp()) * NS

    return at(p.open_utc), at(p.close_utc)


def trading_days(start: date, n: int) -> list[date]:
    out: list[date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def build_day(
    p: SessionParams,
    day: date,
    day_index: int,
    spot: float,
    rng: np.random.Generator,
    chain: list[Option],
    plan: list[tuple[str, str, str]] | None = None,
) -> tuple[np.ndarray, list[Episode], list[Bait], int]:
    """One day's MBO records (sorted, sequenced) plus its episodes and bait."""
    t_open, t_close = _session_bounds(p, day)
    span = t_close - t_open
    opts = [o for o in chain if o.option_type is not None]
    strikes = np.array([o.strike for o in opts], dtype=float)
    ids = np.array([o.instrument_id for o in opts], dtype=np.uint32)
    by_key = {(o.option_type, o.strike): o.instrument_id for o in opts}
    grid = sorted({float(o.strike) for o in opts if o.strike is not None})
    atm = min(grid, key=lambda k: abs(k - spot))
    trades = _Trades()

    # quiet flow: more trades near the money
    weights = np.exp(-np.abs(strikes - spot) / 250.0)
    weights /= weights.sum()
    n_quiet = rng.poisson(p.quiet_trades_per_day)
    pick = rng.choice(len(opts), size=n_quiet, p=weights)
    trades.add(
        ids[pick],
        t_open + rng.integers(0, span, n_quiet),
        _sides(rng, n_quiet, 0.49, 0.02),
        np.where(
            rng.random(n_quiet) < p.quiet_block_share,
            rng.integers(10, 61, n_quiet),  # occasional blocks, either side
            rng.geometric(0.45, n_quiet).clip(max=40),
        ),
    )
    # the future trades too (an instrument without a strike)
    n_fut = n_quiet // 10
    trades.add(
        np.full(n_fut, chain[0].instrument_id),
        t_open + rng.integers(0, span, n_fut),
        _sides(rng, n_fut, 0.5, 0.01),
        rng.integers(1, 6, n_fut),
    )

    episodes: list[Episode] = []
    baits: list[Bait] = []
    busy: list[tuple[int, int, float]] = []  # (start, end, strike) to keep events apart

    def window(minutes: tuple[int, int], starts: tuple[int, int] | None = None) -> tuple[int, int]:
        dur = int(rng.integers(minutes[0], minutes[1] + 1)) * 60 * NS
        if starts is None:
            start = t_open + int(rng.integers(30 * 60 * NS, span - dur - 20 * 60 * NS))
        else:
            start = t_open + int(rng.integers(starts[0] * 60 * NS, starts[1] * 60 * NS + 1))
        return start, start + dur

    def free(start: int, end: int, strikes_: list[float]) -> bool:
        return all(
            end + 15 * 60 * NS < s
            or start > e + 15 * 60 * NS
            or min(abs(k - x) for x in strikes_) > 100
            for s, e, k in busy
        )

    def burst(
        iids: list[int],
        start: int,
        end: int,
        p_buy: float,
        interval_s: float,
        size: tuple[int, int],
    ) -> tuple[int, int]:
        n = max(1, rng.poisson((end - start) / NS / interval_s))
        which = rng.integers(0, len(iids), n)
        sz = rng.integers(size[0], size[1] + 1, n)
        trades.add(np.array(iids)[which], rng.integers(start, end, n), _sides(rng, n, p_buy), sz)
        return n, int(sz.sum())

    if day_index >= p.warmup_days:
        for option_type, aggressor, shape in plan or []:
            for _attempt in range(20):
                offset = int(rng.integers(0, 7)) * STRIKE_STEP
                # OTM side preferred: calls above spot, puts below
                center = atm + offset if option_type == "C" else atm - offset
                width = 1 if shape == "single" else int(rng.integers(2, 4))
                ks = [
                    center + i * STRIKE_STEP * (1 if option_type == "C" else -1)
                    for i in range(width)
                ]
                ks = [k for k in ks if (option_type, k) in by_key]
                start, end = window(p.episode_minutes, p.episode_start_minutes)
                if ks and free(start, end, ks):
                    break
            else:
                continue
            iids = [by_key[(option_type, k)] for k in ks]
            p_buy = p.episode_purity if aggressor == "BUY" else 1 - p.episode_purity
            n, vol = burst(iids, start, end, p_buy, p.episode_trade_interval_s, p.episode_size)
            busy.append((start, end, ks[0]))
            episodes.append(
                Episode(
                    day=day.isoformat(),
                    start=_iso(start),
                    end=_iso(end),
                    option_type=option_type,
                    strikes=sorted(ks),
                    aggressor=aggressor,
                    direction=direction_of(option_type, aggressor),
                    instrument_ids=iids,
                    trades=n,
                    volume=vol,
                )
            )
        n_bait = rng.poisson(p.bait_per_day)
        for _ in range(n_bait):
            kind = "mm_straddle" if rng.random() < 0.6 else "mm_strangle"
            for _attempt in range(20):
                k = atm + int(rng.integers(-3, 4)) * STRIKE_STEP
                legs = (
                    [("C", k), ("P", k)]
                    if kind == "mm_straddle"
                    else [("C", k + 2 * STRIKE_STEP), ("P", k - 2 * STRIKE_STEP)]
                )
                start, end = window((15, 40))
                if all(leg in by_key for leg in legs) and free(start, end, [x for _, x in legs]):
                    break
            else:
                continue
            iids = [by_key[leg] for leg in legs]
            n, vol = burst(iids, start, end, 0.5, p.episode_trade_interval_s * 0.8, p.episode_size)
            busy.append((start, end, k))
            baits.append(
                Bait(
                    day=day.isoformat(),
                    kind=kind,
                    strike=k,
                    start=_iso(start),
                    end=_iso(end),
                    strikes=sorted({x for _, x in legs}),
                    instrument_ids=iids,
                    trades=n,
                    volume=vol,
                )
            )

    iid, ts, side, size = trades.arrays()
    records = trades_to_mbo(iid, ts, side, size, spot, chain, rng, p.noise_per_trade)
    return records, episodes, baits, len(iid)


# the columns trades_to_mbo fills per block of records, in put()'s argument order
MBO_COLUMNS = ("instrument_id", "ts_event", "order_id", "price", "size", "action", "side", "flags")


def trades_to_mbo(
    iid: np.ndarray,
    ts: np.ndarray,
    side: np.ndarray,
    size: np.ndarray,
    spot: float,
    chain: list[Option],
    rng: np.random.Generator,
    noise_per_trade: float = 1.0,
) -> np.ndarray:
    """Trades → CME-style MBO: A (resting order), T (aggressor), F (resting fill), noise."""
    n = len(iid)
    strike_of = {o.instrument_id: (o.strike or 0.0, o.option_type) for o in chain}
    uniq, inv = np.unique(iid, return_inverse=True)
    k = np.array([strike_of[int(u)][0] for u in uniq.tolist()])[inv]
    cp = np.array([strike_of[int(u)][1] or "F" for u in uniq.tolist()])[inv]
    fut = cp == "F"
    px = _premium(spot, k, cp == "C")
    px = np.where(fut, np.round(spot / TICK) * TICK, px)
    # aggressor B lifts the ask: the trade prints at the ask (a tick above mid); A at the bid
    px = px + np.where(side == b"B", TICK, np.where(side == b"A", -TICK, 0.0))
    px = np.maximum(px, TICK)
    price = np.round(px * NS).astype(np.int64)
    resting_side = np.where(side == b"B", b"A", np.where(side == b"A", b"B", b"N")).astype("S1")
    resting_add_side = np.where(resting_side == b"N", b"A", resting_side).astype("S1")
    oid_rest = np.arange(n, dtype=np.uint64) * np.uint64(2) + np.uint64(10_000_000)
    oid_aggr = oid_rest + np.uint64(1)
    lead = rng.integers(NS // 10, 60 * NS, n)
    n_noise = int(rng.poisson(noise_per_trade * n)) if n else 0
    total = 3 * n + 2 * n_noise
    out = np.zeros(total, dtype=MBO_DTYPE)
    out["length"] = MBO_DTYPE.itemsize // 4
    out["rtype"] = int(dbn.RType.MBO)
    out["publisher_id"] = PUBLISHER_GLBX

    def put(rows: slice, *values: Any) -> None:
        for name, value in zip(MBO_COLUMNS, values, strict=True):
            out[name][rows] = value

    # the resting order's add, the aggressor's trade, the resting order's fill
    for rows, t_event, oid, action, sides, flags in (
        (slice(0, n), ts - lead, oid_rest, b"A", resting_add_side, F_LAST),
        (slice(n, 2 * n), ts, oid_aggr, b"T", side, 0),
        (slice(2 * n, 3 * n), ts, oid_rest, b"F", resting_side, F_LAST),
    ):
        put(rows, iid, t_event, oid, price, size, action, sides, flags)
    if n_noise:
        src = rng.integers(0, n, n_noise)
        t_add = ts[src] - rng.integers(0, 120 * NS, n_noise)
        t_cxl = t_add + rng.integers(NS // 100, 30 * NS, n_noise)
        noise_oid = np.arange(n_noise, dtype=np.uint64) + np.uint64(900_000_000)
        away = np.where(rng.random(n_noise) < 0.5, 1, -1) * rng.integers(1, 8, n_noise) * TICK
        nprice = np.round(np.maximum(price[src] / NS + away, TICK) * NS).astype(np.int64)
        nside = np.where(away > 0, b"A", b"B").astype("S1")
        nsize = rng.integers(1, 30, n_noise)
        ad, cx = slice(3 * n, 3 * n + n_noise), slice(3 * n + n_noise, total)
        for rows, t_event, action in ((ad, t_add, b"A"), (cx, t_cxl, b"C")):
            put(rows, iid[src], t_event, noise_oid, nprice, nsize, action, nside, F_LAST)
    # time order; the T/F of one trade keep T first (stable sort over the A|T|F|noise layout)
    order = np.argsort(out["ts_event"], kind="stable")
    out = out[order]
    latency = rng.integers(2_000, 40_000, total)
    out["ts_recv"] = out["ts_event"] + latency.astype(np.uint64)
    out["ts_in_delta"] = (latency // 2).astype(np.int32)
    out["sequence"] = np.arange(1, total + 1, dtype=np.uint32) + np.uint32(1_000)
    return out


def _plan(
    p: SessionParams, rng: np.random.Generator, n_days: int
) -> list[list[tuple[str, str, str]]]:
    """Episodes per day; the four (C/P x BUY/SELL) combinations all appear at least once."""
    active = max(n_days - p.warmup_days, 0)
    combos = [(cp, a) for cp in ("C", "P") for a in ("BUY", "SELL")]
    combos = [c for c in combos if c[1] in p.episode_aggressors] or combos
    plan: list[list[tuple[str, str, str]]] = [[] for _ in range(n_days)]
    if active == 0:
        return plan
    counts = rng.poisson(p.episodes_per_day, active)
    need = max(int(counts.sum()), min(4, active * 3))
    items = [combos[i % len(combos)] for i in range(need)]
    rng.shuffle(items)  # type: ignore[arg-type]
    slots = np.repeat(np.arange(active), np.maximum(counts, 0))
    if len(slots) < need:
        slots = np.r_[slots, rng.integers(0, active, need - len(slots))]
    for (cp, aggr), d in zip(items, slots[:need].tolist(), strict=True):
        shape = "single" if rng.random() < 0.5 else "cluster"
        if shape not in p.episode_shapes:
            shape = p.episode_shapes[0]
        plan[p.warmup_days + d].append((cp, aggr, shape))
    return plan


@dataclass
class GeneratedDay:
    day: date
    records: np.ndarray  # MBO, time ordered
    definitions: list[Any]  # InstrumentDefMsg records
    episodes: list[Episode]
    bait: list[Bait]
    trades: int
    index: int = 0
    spot: float = 0.0


def session_days(p: SessionParams) -> Any:
    """The session's days in memory, in order (what generate_session writes to files)."""
    rng = np.random.default_rng(p.seed)
    chain = option_chain(p)
    days = trading_days(p.start, p.days)
    plan = _plan(p, rng, len(days))
    spot = p.spot
    for i, day in enumerate(days):
        spot = float(spot + rng.normal(0, 60))
        records, eps, bait, n_trades = build_day(p, day, i, spot, rng, chain, plan[i])
        t_open, _ = _session_bounds(p, day)
        defs = definition_records(p, chain, t_open - 3600 * NS)
        yield GeneratedDay(day, records, defs, eps, bait, n_trades, i, spot)


# -- the NQ future's 1-minute bars ---------------------------------------------------------

FUTURES_FILE = "ohlcv-1m.dbn.zst"
FUTURES_SYMBOL = "NQ.c.0"
FUTURE_IID = 100_000
EPISODE_DRIFT = 1.25  # index points per minute while an episode runs (LONG up, SHORT down)


def futures_minutes(
    p: SessionParams, day_index: int, day: date, spot: float, episodes: list[Episode]
) -> np.ndarray:
    """The future's 1-minute OHLCV records (DBN OHLCVMsg layout) for one session day.

    Mean-reverting around the day's spot plus each episode's drift (kept after it ends);
    six 10-second steps per minute give the high and low; U-shaped volume, heavier while an
    episode runs. Deterministic in (seed, day_index); independent of the option flow's rng."""
    from magic8.flow.bars import OHLCV_DTYPE

    rng = np.random.default_rng([p.seed, 13, day_index])
    t_open, t_close = _session_bounds(p, day)
    n = (t_close - t_open) // (60 * NS)
    starts = t_open + np.arange(n, dtype=np.int64) * 60 * NS
    drift = np.zeros(n)
    for e in episodes:
        a = int(datetime.fromisoformat(e.start).timestamp() * NS)
        b = int(datetime.fromisoformat(e.end).timestamp() * NS)
        sign = 1.0 if e.direction == "LONG" else -1.0
        drift[(starts >= a) & (starts < b)] += sign * EPISODE_DRIFT
    steps = 6
    sigma, theta = 4.0, 0.02
    anchor = spot
    x = spot + float(rng.normal(0, 8))
    out = np.zeros(n, dtype=OHLCV_DTYPE)
    minute = np.arange(n)
    base = 260.0 * (1 + 1.5 * np.exp(-minute / 30) + 1.0 * np.exp(-(n - 1 - minute) / 30))
    volume = rng.poisson(base * np.where(drift != 0, 1.6, 1.0))
    for i in range(n):
        anchor += drift[i]
        path = [x]
        for _ in range(steps):
            x = x + theta / steps * (anchor - x) + drift[i] / steps
            x += float(rng.normal(0, sigma / np.sqrt(steps)))
            path.append(x)
        ticks = np.round(np.array(path) / TICK) * TICK
        o, c = ticks[0], ticks[-1]
        out[i]["high"], out[i]["low"] = int(ticks.max() * NS), int(ticks.min() * NS)
        out[i]["open"], out[i]["close"] = int(o * NS), int(c * NS)
    out["length"] = OHLCV_DTYPE.itemsize // 4
    out["rtype"] = int(dbn.RType.OHLCV_1M)
    out["publisher_id"] = PUBLISHER_GLBX
    out["instrument_id"] = FUTURE_IID
    out["ts_event"] = starts.astype(np.uint64)
    out["volume"] = np.maximum(volume, 1).astype(np.uint64)
    return out


def futures_metadata(start_ns: int, end_ns: int, day: date) -> dbn.Metadata:
    mapping = _Mapping(FUTURES_SYMBOL, [_Interval(day, day + timedelta(days=1), str(FUTURE_IID))])
    return dbn.Metadata(
        dataset=DATASET,
        start=start_ns,
        end=end_ns,
        stype_in=dbn.SType.CONTINUOUS,  # type: ignore[arg-type]
        stype_out=dbn.SType.INSTRUMENT_ID,  # type: ignore[arg-type]
        schema=dbn.Schema.OHLCV_1M,  # type: ignore[arg-type]
        symbols=[FUTURES_SYMBOL],
        mappings=[mapping],  # type: ignore[list-item]
    )


def write_futures_day(folder: Path, p: SessionParams, g: GeneratedDay) -> Path:
    t_open, t_close = _session_bounds(p, g.day)
    path = folder / FUTURES_FILE
    write_dbn(
        path,
        futures_metadata(t_open, t_close, g.day),
        futures_minutes(p, g.index, g.day, g.spot, g.episodes).tobytes(),
    )
    return path


def generate_futures(out_dir: str | Path, params: SessionParams | None = None) -> list[Path]:
    """Add the NQ future's 1-minute bars to a session generated with the same params
    (writes only `day-*/ohlcv-1m.dbn.zst`; the option files are left as they are)."""
    p = params or SessionParams()
    out = Path(out_dir)
    return [write_futures_day(out / f"day-{g.day.isoformat()}", p, g) for g in session_days(p)]


def truth_of(p: SessionParams, days: list[GeneratedDay]) -> dict[str, Any]:
    return {
        "format": "magic8 labelled session v1",
        "generator": {
            **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(p).items()},
        },
        "underlying": p.underlying,
        "multiplier": MULTIPLIER,
        "days": [
            {"day": d.day.isoformat(), "records": len(d.records), "trades": d.trades} for d in days
        ],
        "episodes": [asdict(e) for d in days for e in d.episodes],
        "bait": [asdict(b) for d in days for b in d.bait],
    }


def generate_session(out_dir: str | Path, params: SessionParams | None = None) -> dict[str, Any]:
    """Write a labelled session; returns the truth (also written to truth.json)."""
    p = params or SessionParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chain = option_chain(p)
    all_eps: list[Episode] = []
    all_bait: list[Bait] = []
    day_results: list[DayResult] = []
    for g in session_days(p):
        day, records, eps, bait, n_trades = g.day, g.records, g.episodes, g.bait, g.trades
        t_open, t_close = _session_bounds(p, day)
        folder = out / f"day-{day.isoformat()}"
        defs = g.definitions
        write_dbn(
            folder / "definition.dbn.zst",
            metadata(dbn.Schema.DEFINITION, t_open - 3600 * NS, t_close, chain, day),
            b"".join(bytes(r) for r in defs),
        )
        write_dbn(
            folder / "mbo.dbn.zst",
            metadata(dbn.Schema.MBO, t_open - 3600 * NS, t_close + 3600 * NS, chain, day),
            records.tobytes(),
        )
        write_futures_day(folder, p, g)
        all_eps.extend(eps)
        all_bait.extend(bait)
        day_results.append(
            DayResult(
                day.isoformat(),
                len(records),
                n_trades,
                str(folder / "definition.dbn.zst"),
                str(folder / "mbo.dbn.zst"),
            )
        )
    truth: dict[str, Any] = {
        "format": "magic8 labelled session v1",
        "generator": {
            **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(p).items()},
        },
        "underlying": p.underlying,
        "multiplier": MULTIPLIER,
        "days": [{"day": d.day, "records": d.records, "trades": d.trades} for d in day_results],
        "episodes": [asdict(e) for e in all_eps],
        "bait": [asdict(b) for b in all_bait],
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def generate_mbo_file(path: str | Path, n_records: int, seed: int = 1) -> int:
    """One MBO file of about n_records records (benchmarks); returns the exact count."""
    per_trade = 3 + 2 * SessionParams().noise_per_trade
    factor = 1.08
    chain: list[Option] = []
    records = np.zeros(0, dtype=MBO_DTYPE)
    p = SessionParams(days=1, seed=seed, warmup_days=1)
    day = p.start
    while len(records) < n_records:
        p = SessionParams(
            days=1,
            seed=seed,
            warmup_days=1,
            quiet_trades_per_day=max(1, int(n_records / per_trade / 1.1 * factor)),
        )
        rng = np.random.default_rng(seed)
        chain = option_chain(p)
        records, _, _, _ = build_day(p, day, 0, p.spot, rng, chain, None)
        factor *= 1.1
    records = records[:n_records]
    t_open, t_close = _session_bounds(p, day)
    write_dbn(
        Path(path),
        metadata(dbn.Schema.MBO, t_open - 3600 * NS, t_close + 3600 * NS, chain, day),
        records.tobytes(),
        level=3,
    )
    return len(records)
