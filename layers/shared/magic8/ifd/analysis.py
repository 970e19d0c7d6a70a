"""Institutional flow analysis of one pressure window (pure domain code, no I/O).

Inputs: the window, the option's recent windows (time persistence and trend), the other
options of the same underlying in the same 5-minute window (coordination across
neighbouring strikes, market-maker straddles), and the option's baseline.

Factors, each in [0, 1]:
- pressure: imbalance significance (net aggressor volume against its sampling noise),
  time persistence (consecutive windows leaning the same way), trend strength (net over
  the run), volume concentration (the strike's share of its type's volume right now);
- baseline: volume and ratio anomaly against the 20-day strike/time-of-day baseline;
- market-making: two-sided activity at a strike — the call and the put at the same (or a
  neighbouring, for strangles) strike trading comparable size in directions that cancel
  (straddle buying, or both sold: the volatility-crush pattern), or balanced aggressors
  on both — enters as a penalty (weight * (1 - mm));
- coordination: neighbouring strikes (and the other type at the same strike) leaning in
  the same direction.

confidence = w_p * pressure + w_b * baseline + w_m * (1 - mm) + w_c * coordination,
capped while the baseline is cold. Direction: buy-aggressor on calls or sell-aggressor on
puts = LONG; sell-aggressor on calls or buy-aggressor on puts = SHORT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from magic8.domain.flow import WINDOW_SECONDS, PressureWindow
from magic8.ifd.baselines import BaselineStats

Direction = Literal["LONG", "SHORT"]


@dataclass(frozen=True)
class WindowLite:
    """The part of a window the analysis needs about history and peers (storable)."""

    strike: float
    option_type: str  # "C" | "P"
    ws: int  # window start, epoch seconds
    ask: float
    bid: float
    unknown: float = 0.0
    trades: int = 0
    avg_size: float = 1.0

    @classmethod
    def of(cls, w: PressureWindow) -> WindowLite:
        return cls(
            strike=float(w.strike or 0.0),
            option_type=w.option_type or "",
            ws=int(w.window_start.timestamp()),
            ask=w.ask_volume,
            bid=w.bid_volume,
            unknown=w.unknown_volume,
            trades=w.total_trades,
            avg_size=w.avg_trade_size,
        )

    @cached_property
    def known(self) -> float:
        return self.ask + self.bid

    @cached_property
    def volume(self) -> float:
        return self.ask + self.bid + self.unknown

    @cached_property
    def ratio(self) -> float:
        k = self.known
        return 0.0 if k <= 0 else (self.ask - self.bid) / k

    @cached_property
    def sign(self) -> int:
        """Directional sign: +1 LONG, -1 SHORT, 0 none (calls bought / puts sold = LONG)."""
        r = self.ratio
        if r == 0:
            return 0
        s = 1 if r > 0 else -1
        return s if self.option_type == "C" else -s

    @cached_property
    def z(self) -> float:
        return self.imbalance_z()

    def imbalance_z(self) -> float:
        """|ask - bid| over its noise: sqrt(sum of squared trade sizes) ~ sqrt(known*avg)."""
        k = self.known
        if k <= 0:
            return 0.0
        return abs(self.ask - self.bid) / math.sqrt(k * max(self.avg_size, 1.0))

    def to_list(self) -> list[float]:
        return [self.strike, self.ws, self.ask, self.bid, self.unknown, self.trades, self.avg_size]

    @classmethod
    def from_list(cls, option_type: str, v: Sequence[float]) -> WindowLite:
        return cls(
            strike=float(v[0]),
            option_type=option_type,
            ws=int(v[1]),
            ask=float(v[2]),
            bid=float(v[3]),
            unknown=float(v[4]),
            trades=int(v[5]),
            avg_size=float(v[6]),
        )


@dataclass(frozen=True)
class AnalysisConfig:
    # confidence weights (pressure, baseline, market-making, coordination)
    w_pressure: float = 0.4
    w_baseline: float = 0.3
    w_mm: float = 0.2
    w_coord: float = 0.1
    # pressure: significance logistic((z_run - z_mid) / z_scale) of the run's net volume,
    # times one-sidedness min(1, |net|/known / full_ratio), times a concentration term
    z_mid: float = 2.0
    z_scale: float = 0.5
    full_ratio: float = 0.6
    p_concentration: float = 0.15
    concentration_full: float = 0.25
    min_ratio: float = 0.3  # |ratio| for a window to "lean" one way
    min_z: float = 1.0  # imbalance z for a window to "lean" one way
    persistence_windows: int = 6  # how far back persistence and trend look
    # baseline anomaly: logistic((z - mid) / scale)
    vol_z_mid: float = 1.5
    vol_z_scale: float = 0.6
    ratio_z_mid: float = 0.8
    ratio_z_scale: float = 0.25
    b_volume: float = 0.7
    b_ratio: float = 0.3
    logvol_std_floor: float = 0.35
    ratio_std_floor: float = 0.2
    # neighbourhood: strikes within this fraction of the strike are neighbours
    neighbour_pct: float = 0.004
    strangle_pct: float = 0.006  # call and put legs this far apart count as a strangle
    coord_saturation: float = 1.2
    coord_z_mid: float = 2.0  # a neighbour's own imbalance z for full credit
    strangle_weight: float = 0.8
    balanced_ratio: float = 0.35  # |ratio| below this is two-sided trading
    pair_weight: float = 0.6  # penalty for call+put legs both active in comparable size
    previous_leg_weight: float = 0.85  # the other leg seen in the previous window
    # cold start: confidence cap while the underlying has too little history
    cold_start_cap: float = 0.8

    def weights(self) -> tuple[float, float, float, float]:
        return (self.w_pressure, self.w_baseline, self.w_mm, self.w_coord)


@dataclass(frozen=True)
class Assessment:
    confidence: float
    direction: Direction | None
    strength: float
    pressure: float
    baseline: float
    market_making: float
    coordination: float
    details: dict[str, float] = field(default_factory=dict)
    pattern: str = ""  # "", "straddle", "strangle", "vol_crush", "two_sided"
    capped: bool = False

    def factors(self) -> dict[str, float]:
        return {
            "pressure": round(self.pressure, 4),
            "baseline": round(self.baseline, 4),
            "market_making": round(self.market_making, 4),
            "coordination": round(self.coordination, 4),
        }


def logistic(x: float) -> float:
    if x < -60:
        return 0.0
    if x > 60:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


def leans(w: WindowLite, cfg: AnalysisConfig) -> bool:
    return abs(w.ratio) >= cfg.min_ratio and w.z >= cfg.min_z


@dataclass(frozen=True)
class Run:
    """Consecutive 5-minute windows (ending at the current one) leaning the same way."""

    length: int
    net: float
    known: float
    noise: float  # sum over the run of known * avg_size (variance of net under no lean)

    @property
    def trend(self) -> float:
        return abs(self.net) / self.known if self.known > 0 else 0.0

    @property
    def z(self) -> float:
        return abs(self.net) / math.sqrt(self.noise) if self.noise > 0 else 0.0

    @property
    def persistence(self) -> float:
        return 1.0 - 0.5 ** (self.length - 1)


def run_of(current: WindowLite, history: Sequence[WindowLite], cfg: AnalysisConfig) -> Run:
    by_ws = {h.ws: h for h in history if h.ws < current.ws}
    length, net, known = 1, current.ask - current.bid, current.known
    noise = current.known * max(current.avg_size, 1.0)
    if leans(current, cfg):
        ws = current.ws
        for _ in range(cfg.persistence_windows - 1):
            ws -= WINDOW_SECONDS
            prev = by_ws.get(ws)
            if prev is None or prev.sign != current.sign or not leans(prev, cfg):
                break
            length += 1
            net += prev.ask - prev.bid
            known += prev.known
            noise += prev.known * max(prev.avg_size, 1.0)
    return Run(length, net, known, noise)


def analyze(
    window: PressureWindow | WindowLite,
    history: Sequence[WindowLite],
    peers: Sequence[WindowLite],
    stats: BaselineStats,
    cfg: AnalysisConfig = AnalysisConfig(),
    previous_peers: Sequence[WindowLite] = (),
) -> Assessment:
    """Assess one window. ``previous_peers``: the underlying's windows 5 minutes earlier
    (market-maker legs are looked for there too, so a batch boundary that separates a
    window from its other leg does not hide a straddle)."""
    w = window if isinstance(window, WindowLite) else WindowLite.of(window)
    r = w.ratio
    z = w.imbalance_z()
    sign = w.sign
    direction: Direction | None = None if sign == 0 else ("LONG" if sign > 0 else "SHORT")
    others = [p for p in peers if not (p.strike == w.strike and p.option_type == w.option_type)]

    # --- pressure -------------------------------------------------------------------
    # significance of the net aggressor volume over the run (time persistence raises it),
    # scaled by how one-sided the run is (trend strength) and by volume concentration
    run = run_of(w, history, cfg)
    one_sided = min(1.0, run.trend / cfg.full_ratio)
    significance = logistic((run.z - cfg.z_mid) / cfg.z_scale)
    same_type_known = w.known + sum(p.known for p in others if p.option_type == w.option_type)
    concentration = w.known / same_type_known if same_type_known > 0 else 0.0
    conc = min(1.0, concentration / cfg.concentration_full)
    pressure = one_sided * significance * (1 - cfg.p_concentration + cfg.p_concentration * conc)

    # --- baseline -------------------------------------------------------------------
    vol_z = stats.volume_z(w.volume, cfg.logvol_std_floor)
    ratio_z = stats.ratio_z(r, cfg.ratio_std_floor)
    baseline = cfg.b_volume * logistic((vol_z - cfg.vol_z_mid) / cfg.vol_z_scale) + (
        cfg.b_ratio * logistic((ratio_z - cfg.ratio_z_mid) / cfg.ratio_z_scale)
    )

    # --- market making (penalty) -------------------------------------------------------
    width = w.strike * cfg.neighbour_pct
    strangle_width = w.strike * cfg.strangle_pct
    other_type = "P" if w.option_type == "C" else "C"
    mm = 0.0
    pattern = ""
    activity = logistic((vol_z - cfg.vol_z_mid) / cfg.vol_z_scale)
    legs = [(p, 1.0) for p in others]
    legs += [(p, cfg.previous_leg_weight) for p in previous_peers if p.ws < w.ws]
    for p, leg_weight in legs:
        if (
            p.option_type != other_type
            or abs(p.strike - w.strike) > strangle_width
            or p.volume <= 0
        ):
            continue
        vol_balance = min(p.volume, w.volume) / max(p.volume, w.volume, 1e-9)
        weight = leg_weight * (1.0 if p.strike == w.strike else cfg.strangle_weight)
        # directions cancel: straddle/strangle bought (both bought) or sold (both sold)
        cancelling = p.sign * sign < 0
        straddle = vol_balance * math.sqrt(abs(r) * abs(p.ratio)) if cancelling else 0.0
        two_sided = vol_balance * (1 - abs(r)) * (1 - abs(p.ratio))
        # both legs unusually active together (whatever this window's aggressors): the
        # footprint of straddle/strangle making; a directional leg trades alone
        paired = cfg.pair_weight * vol_balance * activity
        score = weight * max(straddle, two_sided, paired)
        if score > mm:
            mm = score
            if two_sided > max(straddle, paired):
                pattern = "two_sided"
            elif r < 0 and p.ratio < 0 and cancelling:
                pattern = "vol_crush"
            else:
                pattern = "straddle" if p.strike == w.strike else "strangle"
    # balanced two-sided trading in the option itself (a market maker on both sides),
    # scaled by activity; a merely impure one-sided window (|r| >= balanced_ratio) is not
    balance = max(0.0, 1.0 - abs(r) / cfg.balanced_ratio)
    own_two_sided = balance * activity
    if own_two_sided > mm:
        mm, pattern = own_two_sided, "two_sided"
    mm = min(max(mm, 0.0), 1.0)

    # --- coordination -------------------------------------------------------------------
    coord_sum = 0.0
    if sign != 0:
        for p in others:
            if abs(p.strike - w.strike) > width or p.sign != sign or not leans(p, cfg):
                continue
            if p.option_type == w.option_type or p.strike == w.strike:
                coord_sum += min(1.0, abs(p.ratio) / cfg.full_ratio) * logistic(
                    (p.z - cfg.coord_z_mid) / cfg.z_scale
                )
    coordination = min(coord_sum / cfg.coord_saturation, 1.0)

    confidence = (
        cfg.w_pressure * pressure
        + cfg.w_baseline * baseline
        + cfg.w_mm * (1.0 - mm)
        + cfg.w_coord * coordination
    )
    capped = False
    if stats.cold and confidence > cfg.cold_start_cap:
        confidence, capped = cfg.cold_start_cap, True
    confidence = min(max(confidence, 0.0), 1.0)
    strength = min(1.0, one_sided * logistic((vol_z - 1.0) / 0.75) * (0.5 + 0.5 * run.persistence))
    return Assessment(
        confidence=confidence,
        direction=direction,
        strength=strength,
        pressure=pressure,
        baseline=baseline,
        market_making=mm,
        coordination=coordination,
        details={
            "ratio": r,
            "imbalance_z": z,
            "run": float(run.length),
            "run_z": run.z,
            "trend": run.trend,
            "persistence": run.persistence,
            "concentration": concentration,
            "volume_z": vol_z,
            "ratio_z": ratio_z,
        },
        pattern=pattern,
        capped=capped,
    )


def strength_label(strength: float) -> str:
    if strength >= 0.66:
        return "STRONG"
    if strength >= 0.33:
        return "MODERATE"
    return "WEAK"
