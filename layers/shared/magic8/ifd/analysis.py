"""Institutional flow analysis of one pressure window (pure domain code, no I/O).

Inputs: the window, the option's recent windows (time persistence), the other options of
the same underlying in the same 5-minute window (coordination across neighbouring strikes,
market-maker straddles), and the option's baseline.

Statistics (sound for any trade-size mix and any volume): under balanced flow each known
trade is a buy or a sell with equal odds whatever its size, so the net aggressor volume
ask - bid has mean 0 and variance sum(size**2) (schema-2 records carry it per side). The
imbalance z = (ask - bid) / sqrt(sum size**2) is therefore close to a standard normal at
every volume: P(z > 2) ~ 0.02.

Evidence score (z units):
- pressure: the run's directional z — the net signed volume of the last k windows (k = 1 ..
  persistence_windows, the best k) over its standard deviation; windows are not required
  to lean one by one, the run's net volume counts;
- conflict: when the strike's recent windows, or its same-type neighbours that are unusual
  for themselves (this and the previous window), lean the other way by more than
  conflict_free_z sigma, the excess comes off the run's z (the minority side of a 70%-pure
  episode must not be alerted as an episode of its own);
- coordination: the same statistic pooled with neighbouring strikes (and the other type
  at the same strike) that lean the same way AND are unusual against their own baseline;
- baseline: a bounded bonus for volume unusual against the strike's 20-day baseline,
  on the window's volume without its largest trade (one block is not flow) and only once
  the run leans (run z >= bonus_min_run_z: volume says "this much", the run says which way;
  silent_bonus_min_run_z when the run is several blocks on this leg while no straddle or
  strangle partner leg is unusual — bait would have traded the partner by then);
- market making: call and put legs at one strike (or a strangle) active together in
  cancelling directions or comparable unusual size multiply the score by (1 - penalty).
No factor adds anything for absence of evidence: a quiet window scores ~0.

score = (max(run z - conflict, pooled z) + volume bonus) * (1 - market making)
confidence = calibration(score) (magic8.ifd.calibration: exp(-false windows per underlying
per trading day at this score), fitted on labelled sessions), capped while the baseline is
cold. Direction: buy-aggressor on calls or sell-aggressor on puts = LONG; sell-aggressor on
calls or buy-aggressor on puts = SHORT.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from magic8.domain.flow import WINDOW_SECONDS, PressureWindow
from magic8.ifd.baselines import BaselineStats
from magic8.ifd.calibration import Calibration, load_calibration
from magic8.ifd.values import Direction, WindowLite, effective_blocks


@dataclass(frozen=True)
class AnalysisConfig:
    # pressure: the run's directional z over the best of the last persistence_windows
    persistence_windows: int = 6
    current_min_z: float = 1.0  # the current window's own z for the run to count
    # coordination: a neighbour pools in when it leans the same way with its own z >= this
    # and its volume is unusual against its own baseline (volume z >= coord_min_vz)
    coord_min_z: float = 1.0
    coord_min_vz: float = 1.0
    coord_saturation: float = 2.0  # neighbours for full coordination factor
    pool_max_ratio: float = 1.5  # pooled z at most this times the strike's own run z
    # baseline: bonus = w_volume * clip(volume z - vol_z_mid, 0, vol_bonus_cap)
    w_volume: float = 0.75
    vol_z_mid: float = 1.0
    vol_bonus_cap: float = 3.0
    # the bonus counts volume without the window's largest trade (one block is not flow)
    bonus_drop_largest: bool = True
    bonus_min_run_z: float = 2.0  # no bonus until the run itself leans this far
    # ... or this far when the run is several blocks on this leg alone: market-maker bait
    # trades both legs of a straddle/strangle at random, so a run of >= silent_min_blocks
    # effective blocks (known**2 / sum size**2) while no partner leg is unusual for itself
    # (volume z < silent_partner_vz, this and the previous window) is ~2**-blocks as
    # likely under bait, and needs less lean before its volume counts
    silent_bonus_min_run_z: float = 1.5
    silent_min_blocks: float = 4.0
    silent_partner_vz: float = 1.5
    # conflict: the strike's recent windows leaning the other way by more than this many
    # sigma take the excess off the run's z (a minority flurry inside a one-sided episode
    # is not an episode of its own) ...
    conflict_free_z: float = 1.0
    # ... and so do same-type neighbours (this and the previous window) that are unusual
    # for themselves and lean the other way together
    conflict_neighbours: bool = True
    vol_z_scale: float = 0.6  # (the reported baseline factor: logistic((z - mid) / scale))
    ratio_z_mid: float = 0.8
    logvol_std_floor: float = 0.35
    ratio_std_floor: float = 0.2
    # neighbourhood: strikes within this fraction of the strike are neighbours
    neighbour_pct: float = 0.004
    strangle_pct: float = 0.006  # call and put legs this far apart count as a strangle
    strangle_weight: float = 0.8
    pair_weight: float = 0.9  # penalty for call+put legs both unusually active, same size
    pair_balance: bool = True  # False: both legs unusually active is enough (any sizes)
    previous_leg_weight: float = 0.9  # the other leg seen in the previous window
    # a busy other leg: the call/put leg of a straddle or strangle unusual for itself
    # (volume z >= busy_leg_vz at half weight) with at least busy_leg_ratio x this
    # window's volume — a directional leg trades alone, and the other leg being *busier*
    # is more evidence of market making, not less (the balance term above fades then)
    busy_leg_weight: float = 0.6
    busy_leg_vz: float = 3.0
    busy_leg_ratio: float = 0.5
    # ... and trades as flow: one block on a nearby leg is not a busy leg (full weight from
    # 1 + busy_leg_blocks effective blocks)
    busy_leg_blocks: float = 1.5
    # cold start: confidence cap while the underlying has too little history
    cold_start_cap: float = 0.8
    # score -> confidence (None: the shipped calibration.json)
    calibration: Calibration | None = None

    def weights(self) -> dict[str, float]:
        return {"w_volume": self.w_volume, "pair_weight": self.pair_weight}

    def fingerprint(self) -> dict[str, float]:
        """The parameters a calibration is only valid for."""
        return {
            k: v
            for k, v in self.__dict__.items()
            if k != "calibration" and isinstance(v, int | float)
        }

    @property
    def curve(self) -> Calibration:
        return self.calibration or load_calibration()


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
    score: float = 0.0

    def factors(self) -> dict[str, float]:
        return {
            "pressure": round(self.pressure, 4),
            "baseline": round(self.baseline, 4),
            "market_making": round(self.market_making, 4),
            "coordination": round(self.coordination, 4),
            "score": round(self.score, 4),
        }


def logistic(x: float) -> float:
    if x < -60:
        return 0.0
    if x > 60:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Run:
    """The best run ending at the current window: net signed volume over its noise."""

    length: int
    net: float  # ask - bid over the run
    known: float
    variance: float  # sum of squared sizes over the run

    @property
    def trend(self) -> float:
        return abs(self.net) / self.known if self.known > 0 else 0.0

    @property
    def z(self) -> float:
        return abs(self.net) / math.sqrt(self.variance) if self.variance > 0 else 0.0

    @property
    def persistence(self) -> float:
        return 1.0 - 0.5 ** (self.length - 1)

    @property
    def blocks(self) -> float:
        return effective_blocks(self.known, self.variance)


def run_of(current: WindowLite, history: Sequence[WindowLite], cfg: AnalysisConfig) -> Run:
    """Scan k = 1 .. persistence_windows windows back (a missing window adds nothing) and
    keep the k whose cumulative net volume, in the current window's direction, is most
    significant."""
    side = 1 if current.ask > current.bid else (-1 if current.ask < current.bid else 0)
    best = Run(1, current.ask - current.bid, current.known, current.variance)
    if side == 0:
        return best
    net, known, var = best.net, best.known, best.variance
    best_z = side * net / math.sqrt(var) if var > 0 else 0.0
    for k, prev in _earlier_windows(current, history, cfg):
        net += prev.ask - prev.bid
        known += prev.known
        var += prev.variance
        z = side * net / math.sqrt(var) if var > 0 else 0.0
        if z > best_z:
            best_z, best = z, Run(k + 1, net, known, var)
    return best


def _earlier_windows(
    current: WindowLite, history: Sequence[WindowLite], cfg: AnalysisConfig
) -> Iterator[tuple[int, WindowLite]]:
    """(k, the option's window k windows before the current one), newest first, up to
    persistence_windows - 1 back; missing windows are skipped."""
    by_ws = {h.ws: h for h in history if h.ws < current.ws}
    for k in range(1, cfg.persistence_windows):
        prev = by_ws.get(current.ws - k * WINDOW_SECONDS)
        if prev is not None:
            yield k, prev


def opposing_z(current: WindowLite, history: Sequence[WindowLite], cfg: AnalysisConfig) -> float:
    """How far the option's recent windows (before the current one, up to
    persistence_windows - 1 back, cumulated from the newest) lean against the current
    window's side, in sigma (0 when they do not)."""
    side = 1 if current.ask > current.bid else (-1 if current.ask < current.bid else 0)
    if side == 0:
        return 0.0
    net = var = best = 0.0
    for _k, prev in _earlier_windows(current, history, cfg):
        net += prev.ask - prev.bid
        var += prev.variance
        if var > 0:
            best = max(best, -side * net / math.sqrt(var))
    return best


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
    reach = w.strike * max(cfg.neighbour_pct, cfg.strangle_pct)
    others = [
        p
        for p in peers
        if abs(p.strike - w.strike) <= reach
        and not (p.strike == w.strike and p.option_type == w.option_type)
    ]

    # --- pressure: the run's net signed volume over its noise ---------------------------
    run = run_of(w, history, cfg)
    # the run counts only while the current window itself leans its way: a run that ended
    # earlier must not keep scoring on windows after it
    run_z = run.z if z >= cfg.current_min_z else z
    opposing = opposing_z(w, history, cfg)
    if cfg.conflict_neighbours and sign != 0:
        opp_net = opp_var = 0.0
        width_n = w.strike * cfg.neighbour_pct
        for p in (*peers, *previous_peers):
            if (
                p.option_type == w.option_type
                and p.strike != w.strike
                and abs(p.strike - w.strike) <= width_n
                and p.ws in (w.ws, w.ws - WINDOW_SECONDS)
                and p.vz >= cfg.coord_min_vz
            ):
                opp_net -= sign * p.directional_net
                opp_var += p.variance
        if opp_var > 0:
            opposing = max(opposing, opp_net / math.sqrt(opp_var))
    conflict = max(opposing - cfg.conflict_free_z, 0.0)
    run_z = max(run_z - conflict, 0.0)
    pressure = logistic((run_z - 3.0) / 0.5)

    # --- baseline: volume against the strike's own baseline -------------------------------
    vol_z = stats.volume_z(w.volume, cfg.logvol_std_floor)
    ratio_z = stats.ratio_z(r, cfg.ratio_std_floor)
    baseline = logistic((vol_z - cfg.vol_z_mid) / cfg.vol_z_scale)
    bonus_vol_z = vol_z
    if cfg.bonus_drop_largest and isinstance(window, PressureWindow):
        bonus_vol_z = stats.volume_z(
            max(w.volume - window.largest_trade, 0.0), cfg.logvol_std_floor
        )
    bonus = cfg.w_volume * min(max(bonus_vol_z - cfg.vol_z_mid, 0.0), cfg.vol_bonus_cap)

    # --- market making (penalty) -------------------------------------------------------
    width = w.strike * cfg.neighbour_pct
    strangle_width = w.strike * cfg.strangle_pct
    other_type = "P" if w.option_type == "C" else "C"
    mm = 0.0
    pattern = ""
    partners_silent = True
    activity = logistic((vol_z - 1.5) / cfg.vol_z_scale)
    legs = [(p, 1.0) for p in others]
    legs += [
        (p, cfg.previous_leg_weight)
        for p in previous_peers
        if p.ws < w.ws and abs(p.strike - w.strike) <= reach
    ]
    for p, leg_weight in legs:
        if (
            p.option_type != other_type
            or abs(p.strike - w.strike) > strangle_width
            or p.volume <= 0
        ):
            continue
        # an unknown volume z (0: no baseline) does not count as silent
        if p.vz >= cfg.silent_partner_vz or p.vz == 0.0:
            partners_silent = False
        vol_balance = min(p.volume, w.volume) / max(p.volume, w.volume, 1e-9)
        weight = leg_weight * (1.0 if p.strike == w.strike else cfg.strangle_weight)
        # directions cancel: straddle/strangle bought (both bought) or sold (both sold)
        cancelling = p.sign * sign < 0
        straddle = vol_balance * math.sqrt(abs(r) * abs(p.ratio)) if cancelling else 0.0
        two_sided = vol_balance * (1 - abs(r)) * (1 - abs(p.ratio))
        # both legs unusually active together (whatever this window's aggressors): the
        # footprint of straddle/strangle making; a directional leg trades alone
        p_active = logistic((p.vz - 1.5) / cfg.vol_z_scale) if p.vz else activity
        paired = (
            cfg.pair_weight * (vol_balance if cfg.pair_balance else 1.0) * min(activity, p_active)
        )
        busy = (
            cfg.busy_leg_weight
            * logistic((p.vz - cfg.busy_leg_vz) / cfg.vol_z_scale)
            * min(1.0, p.volume / max(cfg.busy_leg_ratio * w.volume, 1e-9))
            * min(1.0, max(p.blocks - 1.0, 0.0) / cfg.busy_leg_blocks)
        )
        score = weight * max(straddle, two_sided * activity, paired, busy)
        if score > mm:
            mm = score
            if two_sided * activity > max(straddle, paired, busy):
                pattern = "two_sided"
            elif r < 0 and p.ratio < 0 and cancelling:
                pattern = "vol_crush"
            else:
                pattern = "straddle" if p.strike == w.strike else "strangle"
    mm = min(max(mm, 0.0), 1.0)

    # --- coordination: pool neighbours unusual against their own baseline -----------------
    pooled_net, pooled_var, n_coord = w.directional_net, w.variance, 0
    if sign != 0 and z >= cfg.coord_min_z:
        for p in others:
            if abs(p.strike - w.strike) > width or p.sign != sign:
                continue
            if not (p.option_type == w.option_type or p.strike == w.strike):
                continue
            if p.z < cfg.coord_min_z or p.vz < cfg.coord_min_vz:
                continue
            pooled_net += p.directional_net
            pooled_var += p.variance
            n_coord += 1
    pooled_z = sign * pooled_net / math.sqrt(pooled_var) if n_coord and pooled_var > 0 else 0.0
    # pooling strengthens a strike's own evidence; a quiet strike next to a busy one must
    # not borrow all of it (it is not where the flow is)
    pooled_z = min(pooled_z, cfg.pool_max_ratio * run_z)
    coordination = min(n_coord / cfg.coord_saturation, 1.0)

    gate = cfg.bonus_min_run_z
    if partners_silent and run.blocks >= cfg.silent_min_blocks:
        gate = cfg.silent_bonus_min_run_z
    if max(run_z, pooled_z) < gate:
        bonus = 0.0
    score = max(0.0, (max(run_z, pooled_z) + bonus) * (1.0 - mm)) if sign != 0 else 0.0
    confidence = cfg.curve.confidence(score)
    capped = False
    # cold: stored, never alerted (the cap stays below the fitted alert threshold)
    cap = min(cfg.cold_start_cap, cfg.curve.alert_threshold - 0.01)
    if stats.cold and confidence > cap:
        confidence, capped = cap, True
    confidence = min(max(confidence, 0.0), 1.0)
    strength = min(
        1.0,
        min(1.0, run.trend / 0.6) * logistic((vol_z - 1.0) / 0.75) * (0.5 + 0.5 * run.persistence),
    )
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
            "run_z": run_z,
            "conflict": conflict,
            "pooled_z": pooled_z,
            "trend": run.trend,
            "persistence": run.persistence,
            "volume_z": vol_z,
            "ratio_z": ratio_z,
        },
        pattern=pattern,
        capped=capped,
        score=score,
    )
