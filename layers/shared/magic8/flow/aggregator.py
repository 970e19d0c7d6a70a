"""PressureAggregator: MBO trades → 5-minute pressure windows per instrument, vectorized.

Input: numpy record arrays of DBN MBO records (`DBNStore.to_ndarray()`, or live records
batched into an array). Only `T` (trade) records count, with the aggressor side CME puts
on them: `B` = buyer lifted the ask → ask_volume, `A` = seller hit the bid → bid_volume,
`N` → unknown_volume. `F` (fill) records are the resting side of the same trades and are
never counted. Windows are keyed by (instrument_id, floor(ts_event / window)); a window
closes when the watermark (the highest ts_event seen) passes its end plus a configurable
lateness, or on `flush()`.

The hot path is numpy only: one mask for trades, one sort by (instrument, window) key,
`np.add.reduceat`/`np.maximum.reduceat` per group. Python touches one dict entry per
(instrument, window) group per batch, never one per record.

Backfill merge: every counted trade leaves a 64-bit key (hash of instrument, ts_event,
sequence, order_id, price, size, side). Records merged with `ingest(..., dedupe=True)`
(backfill) are compared with the keys already counted as a multiset (two identical trades
in the feed stay two), so overlapping live and historical records are counted once. The
other way round too: a trade counted from a backfill leaves a credit, and a live copy of it
that arrives later (the records at a gap's end are carried by both the live stream and the
backfill, and the live copy can be received after the merge) is dropped against that
credit, one live copy per credit; only live trades whose ts_event falls inside a backfilled
range are looked at, so the hot path pays one range check per batch.
`hold(from_ns)` keeps windows ending after `from_ns` open until `release()` (a gap waiting
for its backfill), and keeps the trade keys from `from_ns` on, however far the watermark
runs meanwhile (retention is in event time; a fast feed can run hours ahead); a trade
that lands in an already closed window (late, or a backfill that came after the close)
updates the retained window and re-emits it in full with the same window_key (consumers
keep the latest).

Each window also carries the sum of squared trade sizes per side (schema 2): under
balanced flow the net aggressor volume has variance sum(size**2), whatever the size mix.

Early windows (`early_seconds`, off by default): at least every `early_seconds` of event
time, an open window whose flow is already unusual — at least `early_min_trades` trades,
volume at least `early_min_volume` and `early_volume_factor` x the instrument's typical
closed-window volume (an exponential average), and a net aggressor volume
`early_min_z` standard deviations from balance; with `early_carry`, tested on the open
window alone or together with the instrument's window just closed (against twice the
typical volume), so flow that began late in the last window is cut early without waiting
for three trades of its own — is emitted as it stands with
`final=False` and `emitted_at` (the watermark). The final window follows when it closes,
with the same window_key. Only windows that gained trades since their last early
emission are re-sent. With an early window come its *companions*: open windows of the
other option type within ``early_companion_pct`` of its strike (the other leg of a
straddle or strangle) that traded since their last cut, so the detector can see market
making in the early cut instead of only when the window closes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from magic8.domain.flow import (
    FLOW_SCHEMA_VERSION,
    WINDOW_SECONDS,
    PressureWindow,
    dominant_side,
    pressure_ratio,
)
from magic8.flow.instruments import FIXED_PRICE_SCALE, UNDEF_PRICE, InstrumentMap

Source = Literal["live", "replay", "backfill"]
NS = 1_000_000_000
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_NEVER = 2**63
_T, _F, _B, _A = (ord(c) for c in "TFBA")
_COLUMNS = ("instrument_id", "ts_event", "size", "side", "price", "sequence")
_KEY_COLUMNS = (*_COLUMNS, "order_id")
_PRIMES = tuple(
    np.uint64(p)
    for p in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0x27D4EB2F165667C5,
    )
)


def trade_keys(trades: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
    """A 64-bit identity per trade (record array or column dict; wraps modulo 2**64)."""
    cols = (
        np.asarray(trades["instrument_id"]).astype(np.uint64),
        np.asarray(trades["ts_event"]).astype(np.uint64),
        np.asarray(trades["sequence"]).astype(np.uint64),
        np.asarray(trades["order_id"]).astype(np.uint64),
        np.asarray(trades["price"]).astype(np.int64).view(np.uint64),
        np.asarray(trades["size"]).astype(np.uint64),
        np.asarray(trades["side"]).view(np.uint8).astype(np.uint64),
    )
    with np.errstate(over="ignore"):
        h = np.zeros(len(cols[0]), dtype=np.uint64)
        for c, p in zip(cols, _PRIMES, strict=True):
            h = (h ^ (c * p)) * _PRIMES[0]
            h ^= h >> np.uint64(29)
        # splitmix64 finalizer
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h & _MASK64


def new_keys_mask(existing_sorted: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Which candidates are not yet in `existing` (multiset: k copies cover k candidates)."""
    if len(candidate) == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(candidate, kind="stable")
    sorted_c = candidate[order]
    starts = np.r_[0, np.flatnonzero(sorted_c[1:] != sorted_c[:-1]) + 1]
    group_len = np.diff(np.r_[starts, len(sorted_c)])
    group_start = np.repeat(starts, group_len)
    rank = np.arange(len(sorted_c)) - group_start
    have = np.searchsorted(existing_sorted, sorted_c, side="right") - np.searchsorted(
        existing_sorted, sorted_c, side="left"
    )
    keep_sorted = rank >= have
    keep = np.empty(len(candidate), dtype=bool)
    keep[order] = keep_sorted
    return keep


@dataclass
class _Window:
    instrument_id: int
    start_ns: int
    bid: float = 0.0
    ask: float = 0.0
    unknown: float = 0.0
    ask_sq: float = 0.0  # sum of squared sizes, buyer-aggressor trades
    bid_sq: float = 0.0
    trades: int = 0
    early_trades: int = 0  # trade count at the last early emission
    largest: float = 0.0
    premium_points: float = 0.0  # sum(price * size), price in points (multiplier applied on emit)
    first_seq: int = 2**63
    last_seq: int = 0
    sources: set[str] = field(default_factory=set)
    emitted: bool = False


class PressureAggregator:
    """Vectorized 5-minute trade-pressure windows per instrument.

    `ingest(records)` returns the windows closed by the batch; `flush()` closes all.
    """

    def __init__(
        self,
        instruments: InstrumentMap | None = None,
        window_seconds: int = WINDOW_SECONDS,
        lateness_seconds: float = 0.0,
        source: Source = "live",
        track_keys: bool = True,
        retain_closed_seconds: float = 3600.0,
        dead_band: float = 0.1,
        early_seconds: float | None = None,
        early_min_trades: int = 3,
        early_min_volume: float = 20.0,
        early_volume_factor: float = 2.0,
        early_min_z: float = 1.5,
        early_companion_pct: float = 0.006,
        early_carry: bool = True,
    ) -> None:
        self.instruments = instruments if instruments is not None else InstrumentMap()
        self.window_ns = int(window_seconds) * NS
        self.lateness_ns = int(lateness_seconds * NS)
        self.source: Source = source
        self.track_keys = track_keys
        self.retain_ns = int(retain_closed_seconds * NS)
        self.dead_band = dead_band
        self.early_ns = int(early_seconds * NS) if early_seconds else 0
        self.early_min_trades = early_min_trades
        self.early_min_volume = early_min_volume
        self.early_volume_factor = early_volume_factor
        self.early_min_z = early_min_z
        self.early_companion_pct = early_companion_pct
        self.early_carry = early_carry
        self._next_early_ns = 0
        self._typical: dict[int, float] = {}  # instrument -> EWMA of closed-window volume
        self.watermark_ns = 0
        self._open: dict[tuple[int, int], _Window] = {}
        self._closed: dict[tuple[int, int], _Window] = {}
        self._key_chunks: list[tuple[int, int, np.ndarray]] = []  # (min_ts, max_ts, keys)
        # (min_ts, max_ts, key -> live copies still to drop) per backfill merge
        self._backfill_credits: list[tuple[int, int, Counter[int]]] = []
        self._hold_from_ns: int | None = None
        self._min_open_start = _NEVER
        self._times: dict[int, datetime] = {}
        self.stats: Counter[str] = Counter()

    # -- ingestion ---------------------------------------------------------------------

    def ingest(
        self, records: np.ndarray, source: Source | None = None, dedupe: bool = False
    ) -> list[PressureWindow]:
        """Count the `T` records of an MBO record array; return the windows it closed.

        dedupe=True (backfill): trades already counted (same key) are dropped.
        """
        n = len(records)
        if n == 0:
            return []
        src: Source = source or self.source
        self.stats["mbo_records"] += n
        actions = records["action"].view(np.uint8)
        idx = np.flatnonzero(actions == _T)
        self.stats["fill_records_ignored"] += int(np.count_nonzero(actions == _F))
        max_ts = int(records["ts_event"].max())
        emitted: list[PressureWindow] = []
        counted = 0
        if len(idx):
            names = _KEY_COLUMNS if (self.track_keys or dedupe) else _COLUMNS
            cols = {name: records[name][idx] for name in names}
            keys = trade_keys(cols) if (self.track_keys or dedupe) else None
            if dedupe and keys is not None:
                keep = new_keys_mask(self._known_keys(cols["ts_event"]), keys)
                self.stats["duplicate_trades_dropped"] += int(len(keep) - keep.sum())
                cols = {name: col[keep] for name, col in cols.items()}
                keys = keys[keep]
            elif keys is not None and self._backfill_credits:
                live_keep = self._drop_backfilled(cols["ts_event"], keys)
                if live_keep is not None:
                    dropped = int(len(live_keep) - live_keep.sum())
                    self.stats["duplicate_trades_dropped"] += dropped
                    self.stats["duplicate_live_trades_dropped"] += dropped
                    cols = {name: col[live_keep] for name, col in cols.items()}
                    keys = keys[live_keep]
            counted = len(cols["ts_event"])
            if counted:
                emitted.extend(self._accumulate(cols, src))
                if keys is not None and self.track_keys:
                    ts = cols["ts_event"]
                    lo, hi = int(ts.min()), int(ts.max())
                    self._key_chunks.append((lo, hi, keys))
                    if dedupe:  # live copies of these trades may still arrive
                        self._backfill_credits.append((lo, hi, Counter(keys.tolist())))
        self.stats["trades_counted"] += counted
        if not dedupe:  # backfill records are old: they never move the clock
            emitted.extend(self.advance(max_ts))
        return emitted

    def _known_keys(self, ts: np.ndarray) -> np.ndarray:
        lo, hi = int(ts.min()), int(ts.max())
        chunks = [k for (a, b, k) in self._key_chunks if b >= lo and a <= hi]
        if not chunks:
            return np.zeros(0, dtype=np.uint64)
        return np.sort(np.concatenate(chunks))

    def _drop_backfilled(self, ts: np.ndarray, keys: np.ndarray) -> np.ndarray | None:
        """Live trades already counted from a backfill: a keep mask (None = keep all).

        Each backfill-counted key drops one live copy (multiset), then its credit is spent.
        """
        lo, hi = int(ts.min()), int(ts.max())
        ranges = [c for c in self._backfill_credits if c[1] >= lo and c[0] <= hi and c[2]]
        if not ranges:
            return None
        inside = np.zeros(len(ts), dtype=bool)
        for a, b, _ in ranges:
            inside |= (ts >= a) & (ts <= b)
        candidates = np.flatnonzero(inside)
        if len(candidates) == 0:
            return None
        keep = np.ones(len(ts), dtype=bool)
        for i, k in zip(candidates.tolist(), keys[candidates].tolist(), strict=True):
            t = int(ts[i])
            for a, b, credit in ranges:
                if a <= t <= b and credit.get(k, 0) > 0:
                    credit[k] -= 1
                    if not credit[k]:
                        del credit[k]
                    keep[i] = False
                    break
        return keep

    def _accumulate(self, cols: dict[str, np.ndarray], src: Source) -> list[PressureWindow]:
        iid = cols["instrument_id"].astype(np.uint64)
        win = cols["ts_event"].astype(np.uint64) // np.uint64(self.window_ns)
        key = (iid << np.uint64(32)) | win
        order = np.argsort(key, kind="stable")
        key_s = key[order]
        starts = np.r_[0, np.flatnonzero(key_s[1:] != key_s[:-1]) + 1]
        size = cols["size"][order].astype(np.float64)
        side = cols["side"][order].view(np.uint8)
        price = cols["price"][order]
        seq = cols["sequence"][order].astype(np.int64)
        ask_w = np.where(side == _B, size, 0.0)
        bid_w = np.where(side == _A, size, 0.0)
        ask_sq = np.add.reduceat(ask_w * ask_w, starts).tolist()
        bid_sq = np.add.reduceat(bid_w * bid_w, starts).tolist()
        unk_w = size - ask_w - bid_w
        valid_px = (price != UNDEF_PRICE) & (price > 0)
        prem = np.where(valid_px, price.astype(np.float64) / FIXED_PRICE_SCALE, 0.0) * size
        ask = np.add.reduceat(ask_w, starts).tolist()
        bid = np.add.reduceat(bid_w, starts).tolist()
        unk = np.add.reduceat(unk_w, starts).tolist()
        largest = np.maximum.reduceat(size, starts).tolist()
        premium = np.add.reduceat(prem, starts).tolist()
        seq_lo = np.minimum.reduceat(seq, starts).tolist()
        seq_hi = np.maximum.reduceat(seq, starts).tolist()
        counts = np.diff(np.r_[starts, len(key_s)]).tolist()
        group_keys = key_s[starts]
        g_iid = (group_keys >> np.uint64(32)).astype(np.int64).tolist()
        g_start = ((group_keys & np.uint64(0xFFFFFFFF)) * np.uint64(self.window_ns)).tolist()
        re_emit: list[PressureWindow] = []
        open_ = self._open
        for i, wkey in enumerate(zip(g_iid, g_start, strict=True)):
            w = open_.get(wkey)
            late = False
            if w is None:
                w = self._closed.get(wkey)
                if w is not None:
                    late = True
                else:
                    w = _Window(instrument_id=wkey[0], start_ns=wkey[1])
                    open_[wkey] = w
                    if w.start_ns < self._min_open_start:
                        self._min_open_start = w.start_ns
            w.ask += ask[i]
            w.bid += bid[i]
            w.unknown += unk[i]
            w.ask_sq += ask_sq[i]
            w.bid_sq += bid_sq[i]
            w.trades += counts[i]
            if largest[i] > w.largest:
                w.largest = largest[i]
            w.premium_points += premium[i]
            if seq_lo[i] < w.first_seq:
                w.first_seq = seq_lo[i]
            if seq_hi[i] > w.last_seq:
                w.last_seq = seq_hi[i]
            w.sources.add(src)
            if late:
                self.stats["late_trades"] += counts[i]
                re_emit.append(self._emit(w))
        return re_emit

    # -- closing -----------------------------------------------------------------------

    def advance(self, now_ns: int) -> list[PressureWindow]:
        """Move the watermark; close windows whose end + lateness is at or before it."""
        if now_ns > self.watermark_ns:
            self.watermark_ns = int(now_ns)
        limit = self.watermark_ns - self.lateness_ns
        out: list[PressureWindow] = []
        if self._open and self._min_open_start + self.window_ns <= limit:
            due = [
                k
                for k, w in self._open.items()
                if w.start_ns + self.window_ns <= limit and not self._held(w)
            ]
            out = self._close(due)
            self._prune()
        if self.early_ns and self.watermark_ns >= self._next_early_ns and self._open:
            out.extend(self._early())
        return out

    def _early(self) -> list[PressureWindow]:
        """Open windows whose flow is already unusual, as early (non-final) windows."""
        now = self.watermark_ns
        self._next_early_ns = now - now % self.early_ns + self.early_ns
        out = []
        chosen: list[_Window] = []
        for w in self._open.values():
            if w.trades <= w.early_trades:
                continue
            if not self._unusual(w, None):
                prev = (
                    self._closed.get((w.instrument_id, w.start_ns - self.window_ns))
                    if self.early_carry
                    else None
                )
                if prev is None or not self._unusual(w, prev):
                    continue
            w.early_trades = w.trades
            chosen.append(w)
            out.append(self._emit(w, early_at_ns=min(now, w.start_ns + self.window_ns)))
        if chosen and self.early_companion_pct > 0:
            out.extend(self._companions(chosen, now))
        self.stats["early_windows"] += len(out)
        return out

    def _unusual(self, w: _Window, prev: _Window | None) -> bool:
        """The early-emission test: enough trades, volume and net aggressor volume. With
        ``prev`` (the instrument's window just closed) the two windows are tested together
        against twice the typical volume: flow that started late in the last window is cut
        early in this one without waiting for three trades of its own."""
        trades, volume = w.trades, w.ask + w.bid + w.unknown
        net, sq = w.ask - w.bid, w.ask_sq + w.bid_sq
        windows = 1
        if prev is not None:
            trades += prev.trades
            volume += prev.ask + prev.bid + prev.unknown
            net += prev.ask - prev.bid
            sq += prev.ask_sq + prev.bid_sq
            windows = 2
        if trades < self.early_min_trades:
            return False
        typical = self._typical.get(w.instrument_id, 0.0)
        if volume < max(self.early_min_volume, self.early_volume_factor * typical * windows):
            return False
        return sq > 0 and abs(net) >= self.early_min_z * sq**0.5

    def _companions(self, chosen: list[_Window], now: int) -> list[PressureWindow]:
        """Open windows of the other option type near an early window's strike (the other
        leg of a straddle or strangle), cut with it so the detector sees both legs."""
        legs: list[tuple[str, str, float]] = []
        for w in chosen:
            inst = self.instruments.get(w.instrument_id)
            if inst is not None and inst.option_type in ("C", "P") and inst.strike:
                other = "P" if inst.option_type == "C" else "C"
                legs.append((inst.underlying, other, inst.strike))
        out: list[PressureWindow] = []
        if not legs:
            return out
        for w in self._open.values():
            if w.trades <= w.early_trades:
                continue
            inst = self.instruments.get(w.instrument_id)
            if inst is None or inst.strike is None:
                continue
            if any(
                u == inst.underlying
                and t == inst.option_type
                and abs(inst.strike - k) <= k * self.early_companion_pct
                for u, t, k in legs
            ):
                w.early_trades = w.trades
                out.append(self._emit(w, early_at_ns=min(now, w.start_ns + self.window_ns)))
        self.stats["early_companions"] += len(out)
        return out

    def flush(self) -> list[PressureWindow]:
        """Close every open window (shutdown, end of replay), regardless of holds."""
        return self._close(list(self._open))

    def hold(self, from_ns: int) -> None:
        """Keep windows that end after from_ns open (a gap is waiting for its backfill)."""
        self._hold_from_ns = (
            int(from_ns) if self._hold_from_ns is None else min(self._hold_from_ns, int(from_ns))
        )

    def release(self) -> list[PressureWindow]:
        self._hold_from_ns = None
        return self.advance(self.watermark_ns)

    @property
    def held(self) -> bool:
        return self._hold_from_ns is not None

    def _held(self, w: _Window) -> bool:
        return self._hold_from_ns is not None and w.start_ns + self.window_ns > self._hold_from_ns

    def _close(self, keys: list[tuple[int, int]]) -> list[PressureWindow]:
        keys.sort(key=lambda k: (k[1], k[0]))
        out = []
        for k in keys:
            w = self._open.pop(k)
            self._closed[k] = w
            out.append(self._emit(w))
            if self.early_ns:
                volume = w.ask + w.bid + w.unknown
                old = self._typical.get(w.instrument_id)
                self._typical[w.instrument_id] = volume if old is None else 0.9 * old + 0.1 * volume
        self._min_open_start = min((w.start_ns for w in self._open.values()), default=_NEVER)
        self.stats["windows_closed"] += len(out)
        return out

    def _prune(self) -> None:
        cutoff = self.watermark_ns - self.retain_ns
        if self._hold_from_ns is not None:
            # a gap waits for its backfill: keep the keys (and closed windows) from the
            # gap's start on however far the watermark ran meanwhile, or the merge could
            # not find the live trades it overlaps
            cutoff = min(cutoff, self._hold_from_ns - self.window_ns)
        if self._closed:
            for k in [k for k, w in self._closed.items() if w.start_ns + self.window_ns < cutoff]:
                del self._closed[k]
        if self._key_chunks and self._key_chunks[0][1] < cutoff:
            self._key_chunks = [c for c in self._key_chunks if c[1] >= cutoff]
        if self._backfill_credits:
            self._backfill_credits = [c for c in self._backfill_credits if c[1] >= cutoff and c[2]]

    def reset(self) -> None:
        """Forget all windows, keys and the watermark (a replay loop starting over)."""
        self._open.clear()
        self._closed.clear()
        self._key_chunks.clear()
        self._backfill_credits.clear()
        self._hold_from_ns = None
        self._min_open_start = _NEVER
        self._next_early_ns = 0
        self._typical.clear()
        self.watermark_ns = 0

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def _time(self, ns: int) -> datetime:
        t = self._times.get(ns)
        if t is None:
            if len(self._times) > 4096:
                self._times.clear()
            t = self._times[ns] = datetime.fromtimestamp(ns / NS, tz=UTC)
        return t

    def _emit(self, w: _Window, early_at_ns: int | None = None) -> PressureWindow:
        """The window as a flow record (early: not final, cut at ``early_at_ns``).

        Built with model_construct: every field is computed here from finite sums (the
        property tests re-validate emitted windows against the full model).
        """
        inst = self.instruments.get(w.instrument_id) or self.instruments.unknown(w.instrument_id)
        total = w.bid + w.ask + w.unknown
        ratio = pressure_ratio(w.ask, w.bid)
        sources = w.sources
        source: Source = (
            "backfill" if "backfill" in sources else ("replay" if "replay" in sources else "live")
        )
        if early_at_ns is None:
            w.emitted = True
        return PressureWindow.model_construct(
            schema_version=FLOW_SCHEMA_VERSION,
            instrument_id=w.instrument_id,
            underlying=inst.underlying,
            symbol=inst.raw_symbol[:64],
            expiration=inst.expiration,
            strike=inst.strike,
            option_type=inst.option_type,
            window_start=self._time(w.start_ns),
            window_end=self._time(w.start_ns + self.window_ns),
            bid_volume=w.bid,
            ask_volume=w.ask,
            unknown_volume=w.unknown,
            total_trades=w.trades,
            avg_trade_size=total / w.trades if w.trades else 0.0,
            largest_trade=w.largest,
            notional_premium=w.premium_points * inst.multiplier,
            pressure_ratio=max(-1.0, min(1.0, ratio)),
            dominant_side=dominant_side(ratio, self.dead_band),
            source=source,
            final=early_at_ns is None,
            first_sequence=w.first_seq if w.trades else 0,
            last_sequence=w.last_seq,
            ask_size_sq=w.ask_sq,
            bid_size_sq=w.bid_sq,
            emitted_at=None if early_at_ns is None else self._time(early_at_ns),
        )
