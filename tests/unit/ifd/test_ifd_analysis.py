"""IFD analysis tables (direction, market-maker penalty, cold start) and detector rules."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from magic8.ifd.analysis import AnalysisConfig, analyze
from magic8.ifd.baselines import BaselineStats, Estimate
from magic8.ifd.calibration import load_calibration
from magic8.ifd.detector import IfdConfig
from magic8.ifd.values import Signal, WindowLite, make_signal_id
from magic8_dev.ifd.evaluate import Replayed, make_detector, run_windows, window_groups
from tests.factories import WARM_BASELINE as WARM
from tests.factories import merge, one_sided, quiet_windows, session_start, window

T0 = session_start("2025-09-16")
ALERT = load_calibration().alert_threshold  # the fitted alert threshold (confidence)
COLD = BaselineStats(
    logvol=Estimate(math.log1p(10.0), 1.0, 0), ratio=Estimate(0.0, 0.36, 0), n_strike=0,
    n_prior=0, cold=True,
)  # fmt: skip


def lite(strike: float, t: str, i: int, ask: float, bid: float, avg: float = 15.0) -> WindowLite:
    return WindowLite.of(window(strike, t, T0 + timedelta(minutes=5 * i), ask, bid, avg_size=avg))


def quiet_peers(i: int, skip: set[tuple[float, str]] = frozenset()) -> list[WindowLite]:  # type: ignore[assignment]
    rng = random.Random(i)
    out = []
    for k in range(19900, 20301, 25):
        for t in ("C", "P"):
            if (k, t) not in skip:
                out.append(lite(k, t, i, rng.randint(0, 6), rng.randint(0, 6), avg=2.0))
    return out


def sustained(strike: float, t: str, buy: bool, n: int = 4) -> tuple[WindowLite, list[WindowLite]]:
    big, small = 300.0, 15.0
    ws = [lite(strike, t, i, *((big, small) if buy else (small, big))) for i in range(n)]
    return ws[-1], ws[:-1]


@pytest.mark.parametrize(
    ("option_type", "buy", "direction"),
    [("C", True, "LONG"), ("C", False, "SHORT"), ("P", True, "SHORT"), ("P", False, "LONG")],
)
def test_one_sided_sustained_pressure_is_a_confident_signal(
    option_type: str, buy: bool, direction: str
) -> None:
    current, history = sustained(20100, option_type, buy)
    peers = [*quiet_peers(3, {(20100, option_type)}), current]
    a = analyze(current, history, peers, WARM)
    assert a.direction == direction
    assert a.confidence >= ALERT
    assert a.market_making < 0.1
    assert a.pressure > 0.95 and a.baseline > 0.9
    assert a.strength > 0.66


def test_first_window_alone_is_weaker_than_a_sustained_run() -> None:
    current, history = sustained(20100, "C", True)
    peers = [*quiet_peers(3, {(20100, "C")}), current]
    sustained_conf = analyze(current, history, peers, WARM).confidence
    first = analyze(current, [], peers, WARM)
    assert first.details["run"] == 1
    assert first.confidence < sustained_conf


@pytest.mark.parametrize(
    ("call", "put", "pattern"),
    [
        ((300.0, 15.0), (300.0, 15.0), "straddle"),  # straddle bought: directions cancel
        ((15.0, 300.0), (15.0, 300.0), "vol_crush"),  # both legs sold: volatility crush
        ((160.0, 150.0), (150.0, 160.0), "two_sided"),  # market maker on both sides
        ((300.0, 15.0), (15.0, 300.0), ""),  # synthetic long: directional (see below)
    ],
)
def test_two_sided_activity_at_a_strike_is_penalised(
    call: tuple[float, float], put: tuple[float, float], pattern: str
) -> None:
    c_hist = [lite(20100, "C", i, *call) for i in range(3)]
    c_now, p_now = lite(20100, "C", 3, *call), lite(20100, "P", 3, *put)
    peers = [*quiet_peers(3, {(20100, "C"), (20100, "P")}), c_now, p_now]
    a = analyze(c_now, c_hist, peers, WARM)
    one_sided_current, one_sided_history = sustained(20100, "C", True)
    alone = analyze(
        one_sided_current,
        one_sided_history,
        [*quiet_peers(3, {(20100, "C")}), one_sided_current],
        WARM,
    )
    if pattern:
        assert a.pattern == pattern
        assert a.market_making >= 0.5
        assert a.confidence < ALERT  # never alerted
        assert a.score <= 0.5 * alone.score
    else:
        # calls bought and puts sold: one direction on both legs (a synthetic long) —
        # paired activity is penalised, but the put leg (unusual for itself) also counts
        # as coordination, so it scores above a straddle of the same size
        unusual_put = replace(p_now, vz=3.0)
        a = analyze(
            c_now, c_hist, [*quiet_peers(3, {(20100, "C"), (20100, "P")}), c_now, unusual_put], WARM
        )
        straddle = analyze(
            c_now,
            c_hist,
            [*quiet_peers(3, {(20100, "C"), (20100, "P")}), c_now, lite(20100, "P", 3, *call)],
            WARM,
        )
        assert a.direction == "LONG" and a.coordination >= 0.5
        assert a.score > 1.5 * straddle.score


def test_strangle_legs_are_penalised() -> None:
    call = [lite(20150, "C", i, 300, 15) for i in range(4)]
    put = [lite(20050, "P", i, 300, 15) for i in range(4)]
    peers = [*quiet_peers(3, {(20150, "C"), (20050, "P")}), call[-1], put[-1]]
    a = analyze(call[-1], call[:-1], peers, WARM)
    assert a.pattern == "strangle"
    assert a.market_making >= 0.5 and a.confidence < ALERT


def test_a_busier_other_leg_is_market_making() -> None:
    """The first minutes of a straddle whose call leg happened to trade one way: the put
    leg at the strike is unusual for itself and busier than the call (the balance term
    alone fades when one leg is much bigger: min/max volume)."""
    c_hist = [lite(20100, "C", i, 300, 15) for i in range(3)]
    c_now = lite(20100, "C", 3, 300, 15)
    busy_put = replace(lite(20100, "P", 3, 500, 480), vz=6.0)
    quiet_put = replace(lite(20100, "P", 3, 3, 2, avg=2.0), vz=0.0)
    skip: set[tuple[float, str]] = {(20100.0, "C"), (20100.0, "P")}
    a = analyze(c_now, c_hist, [*quiet_peers(3, skip), c_now, busy_put], WARM)
    alone = analyze(c_now, c_hist, [*quiet_peers(3, skip), c_now, quiet_put], WARM)
    no_busy = AnalysisConfig(busy_leg_weight=0.0)
    faded = analyze(c_now, c_hist, [*quiet_peers(3, skip), c_now, busy_put], WARM, no_busy)
    assert alone.market_making < 0.1
    assert a.market_making >= 0.55 > faded.market_making + 0.2
    assert a.score < 0.5 * alone.score


def blocks_window(
    strike: float, t: str, sizes_ask: list[float], sizes_bid: list[float], vz: float = 0.0
) -> WindowLite:
    """A window of these known trades (the analysis sees their sums and sum of squares)."""
    return WindowLite(
        strike=strike,
        option_type=t,
        ws=int((T0 + timedelta(minutes=15)).timestamp()),
        ask=sum(sizes_ask),
        bid=sum(sizes_bid),
        trades=len(sizes_ask) + len(sizes_bid),
        sq=sum(x * x for x in (*sizes_ask, *sizes_bid)),
        vz=vz,
    )


def calm_peers(skip: set[tuple[float, str]]) -> list[WindowLite]:
    """The underlying's other options, ordinary for themselves (volume z known, < 1)."""
    return [replace(p, vz=-0.5) for p in quiet_peers(3, skip)]


@pytest.mark.parametrize(
    ("case", "sizes_ask", "sizes_bid", "put_vz", "bonus"),
    [
        # 5 of 6 equal blocks bought (run z 1.63, 6 blocks), the put legs ordinary: the
        # bait explanation would have had to leave the put untouched 6 times
        ("one leg alone", [30.0] * 5, [30.0], -0.5, True),
        # the same lean with the straddle's put unusual for itself: no volume bonus yet
        ("put unusual", [30.0] * 5, [30.0], 2.0, False),
        # the put's baseline unknown: not evidence of silence
        ("put unknown", [30.0] * 5, [30.0], 0.0, False),
        # 3 blocks (run z 1.73) are too few to rule bait out, however one-sided
        ("three blocks", [60.0] * 3, [], -0.5, False),
    ],
)
def test_a_run_on_one_leg_alone_needs_less_lean(
    case: str, sizes_ask: list[float], sizes_bid: list[float], put_vz: float, bonus: bool
) -> None:
    call = blocks_window(20100, "C", sizes_ask, sizes_bid)
    put = blocks_window(20100, "P", [2.0], [2.0], vz=put_vz)  # a trade each way
    peers = [*calm_peers({(20100.0, "C"), (20100.0, "P")}), call, put]
    a = analyze(call, [], peers, WARM)
    strict = AnalysisConfig(silent_bonus_min_run_z=AnalysisConfig().bonus_min_run_z)
    b = analyze(call, [], peers, WARM, strict)
    run_z = a.details["run_z"]
    assert 1.5 <= run_z < 2.0, case
    assert a.market_making < 0.05, case
    # without the bonus the score is the run's z alone
    assert b.score == pytest.approx(run_z * (1 - b.market_making), rel=1e-9), case
    if bonus:
        assert a.score > b.score + 1.0, case
    else:
        assert a.score == pytest.approx(b.score, rel=1e-9), case


@pytest.mark.parametrize(("put_sizes", "busy"), [([300.0], False), ([100.0, 100.0, 100.0], True)])
def test_one_block_on_a_nearby_leg_is_not_a_busy_leg(put_sizes: list[float], busy: bool) -> None:
    """A directional leg of small trades next to a busier put (the strangle leg below it):
    one 300-lot print there is a block, as quiet flow has (no busy-leg term); three 100-lot
    blocks are flow, the market-making footprint the busy-leg term is for."""
    call = blocks_window(20100, "C", [5.0] * 20, [5.0] * 2)
    put = blocks_window(20050, "P", put_sizes, [], vz=4.5)
    peers = [*calm_peers({(20100.0, "C"), (20050.0, "P")}), call, put]
    a = analyze(call, [], peers, WARM)
    no_busy = analyze(call, [], peers, WARM, AnalysisConfig(busy_leg_weight=0.0))
    if busy:
        assert a.market_making > no_busy.market_making + 0.1
    else:
        assert a.market_making == pytest.approx(no_busy.market_making, abs=1e-12)


def test_neighbouring_strikes_leaning_together_coordinate() -> None:
    cluster = {k: [lite(k, "C", i, 200, 10) for i in range(4)] for k in (20075, 20100, 20125)}
    current = cluster[20100][-1]
    skip = {(float(k), "C") for k in cluster}
    # neighbours unusual against their own baselines (volume z 3)
    peers = [*quiet_peers(3, skip), *(replace(ws[-1], vz=3.0) for ws in cluster.values())]
    a = analyze(current, [], peers, WARM)
    alone = analyze(current, [], [*quiet_peers(3, {(20100, "C")}), current], WARM)
    assert a.coordination > 0.8 and alone.coordination < 0.5
    assert a.details["pooled_z"] > a.details["run_z"]
    assert a.score > alone.score


@pytest.mark.parametrize(
    ("stats", "cap"),
    [(COLD, True), (WARM, False)],
)
def test_cold_start_caps_confidence_below_the_alert_threshold(
    stats: BaselineStats, cap: bool
) -> None:
    current, history = sustained(20100, "C", True)
    a = analyze(current, history, [*quiet_peers(3, {(20100, "C")}), current], stats)
    if cap:
        assert a.capped and a.confidence == min(AnalysisConfig().cold_start_cap, ALERT - 0.01)
        assert 0.7 <= a.confidence < ALERT  # stored, never alerted
    else:
        assert not a.capped and a.confidence >= ALERT


def test_quiet_window_scores_low() -> None:
    peers = quiet_peers(3)
    quiet = [p for p in peers if p.volume > 0]
    assert max(analyze(p, [], peers, WARM).confidence for p in quiet) < 0.6


# -- the detector (in-memory stores) ------------------------------------------------------


def episode_day(rng: random.Random) -> tuple[list, list]:
    history = [w for g in quiet_windows(session_start("2025-09-15"), 24, rng) for w in g]
    start = session_start("2025-09-16")
    flow = one_sided(20100, "C", start + timedelta(minutes=30), 6, buy=True, size=200)
    return history, merge(quiet_windows(start, 14, rng), flow)


def test_detector_alerts_once_and_skips_redelivery() -> None:
    history, today = episode_day(random.Random(2))
    detector, publisher, _ = make_detector(IfdConfig())
    out = Replayed()
    run_windows(detector, window_groups(history), out)
    run_windows(detector, window_groups(today), out)
    sent = [s for s in out.signals if s.alerted]
    assert len(sent) == 1 == len(publisher.alerts)  # later windows are continuations
    assert sent[0].strike == 20100 and sent[0].direction == "LONG"
    assert any(s.alert_status == "continuation" for s in out.signals)
    again = [detector.handle(w) for w in today]
    assert {o.skipped for o in again} == {"duplicate"}
    assert len(publisher.alerts) == 1


def test_revised_window_replaces_its_baseline_contribution() -> None:
    history, _ = episode_day(random.Random(3))
    detector, _, _ = make_detector(IfdConfig())
    run_windows(detector, window_groups(history), Replayed())
    w = history[-1]
    state = detector.baselines.load_option(w.underlying, w.option_type or "", w.strike or 0)
    assert state is not None
    before = state.baseline.moments("2025-09-16", None).n
    revised = window(
        w.strike or 0, w.option_type or "C", w.window_start, w.ask_volume + 40, w.bid_volume
    )
    outcome = detector.handle(revised)
    assert outcome.skipped == ""
    assert state.baseline.moments("2025-09-16", None).n == before  # replaced, not added
    assert state.recorded(int(w.window_start.timestamp())) == WindowLite.of(revised)


def test_early_window_is_analysed_but_does_not_move_the_baseline() -> None:
    history, _ = episode_day(random.Random(4))
    detector, _, _ = make_detector(IfdConfig())
    run_windows(detector, window_groups(history), Replayed())
    start = session_start("2025-09-16")
    early = window(20100, "C", start, 300, 10, avg_size=15, final=False)
    state = detector.baselines.load_option("NQZ5", "C", 20100)
    assert state is not None
    n_before = state.baseline.moments("2025-09-17", None).n
    outcome = detector.handle(early)
    assert outcome.assessment is not None and outcome.skipped == ""
    assert state.baseline.moments("2025-09-17", None).n == n_before


def test_signal_identity_and_alert_contract() -> None:
    current, history = sustained(20100, "P", False)
    w = window(20100, "P", T0 + timedelta(minutes=15), 15, 300, avg_size=15)
    a = analyze(current, history, [current], WARM)
    s = Signal.from_assessment(w, a)
    assert s.signal_id == make_signal_id(w.window_end, 20100, "P")
    assert s.signal_id == "2025-09-16T13:50:00+00:00#20100#P"
    assert s.day == "2025-09-16" and s.direction == "LONG"
    alert = s.with_status("sent").to_alert()
    assert alert.kind == "ifd_signal" and alert.symbol == "NQZ5"
    assert alert.dedupe_key == w.window_key
    assert len(alert.subject) < 100 and "LONG" in alert.subject
    assert alert.payload["alerted"] is True
    assert set(alert.message_attributes()) == {"kind", "symbol", "severity"}


def test_early_window_alerts_once_and_the_final_window_updates_the_signal() -> None:
    history, _ = episode_day(random.Random(5))
    detector, publisher, _ = make_detector(IfdConfig())
    run_windows(detector, window_groups(history), Replayed())
    start = session_start("2025-09-16") + timedelta(minutes=30)
    emitted = [start + timedelta(minutes=m) for m in (2, 3, 4)]
    out = Replayed()
    versions = []
    for i, (size, cut) in enumerate(zip((400, 600, 800), emitted, strict=True)):
        early = window(20100, "C", start, size, 10, avg_size=15, final=False)
        versions.append(early.model_copy(update={"emitted_at": cut}))
        run_windows(detector, [[versions[-1]]], out)
        if i == 0:
            assert len(publisher.alerts) == 1  # the first unusual early cut alerts
    final = window(20100, "C", start, 900, 10, avg_size=15)
    run_windows(detector, [[final]], out)
    assert len(publisher.alerts) == 1  # later cuts and the final window never re-alert
    ids = {s.signal_id for s in out.signals}
    assert len(ids) == 1  # one stored signal, updated in place
    assert [s.final for s in out.signals][-1] is True
    assert all(s.alert_status == "sent" for s in out.signals)
    (first,) = out.alerts()
    assert first.time == emitted[0] and not first.final
    # the next window of the same option and direction is a continuation
    nxt = window(20100, "C", start + timedelta(minutes=5), 900, 10, avg_size=15)
    run_windows(detector, [[nxt]], out)
    assert len(publisher.alerts) == 1
    assert out.signals[-1].alert_status == "continuation"
