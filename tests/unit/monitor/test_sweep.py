from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from magic8.domain.alerts import Alert
from magic8.domain.trades import TradeRequest
from magic8.monitor.calendar import end_of_trading_day, is_market_hours
from magic8.monitor.push import Connection, InMemoryConnectionStore, SubscriptionPush
from magic8.monitor.sweep import InMemorySweepStateStore, SweepConfig, run_sweep
from magic8.monitor.watchlist import InMemoryWatchlistStore, WatchlistEntry

# Tuesday 2026-11-17 15:00 UTC = 10:00 US/Eastern: market hours.
MARKET = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)
# Tuesday 2026-11-17 23:00 UTC = 18:00 US/Eastern: after the close.
EVENING = datetime(2026, 11, 17, 23, 0, tzinfo=UTC)


class FakeService:
    """Returns the probability set per premium (premium identifies the trade here)."""

    def __init__(self) -> None:
        self.p: dict[float, float] = {}
        self.threshold = 0.55
        self.calls: list[list[TradeRequest]] = []

    def predict_batch(
        self, requests: Sequence[TradeRequest], share_market_data: bool = True
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self.calls.append(list(requests))
        preds = [
            {
                "symbol": r.symbol.value,
                "strategy": r.strategy.value,
                "win_probability": self.p[r.premium],
                "threshold": self.threshold,
                "prediction": "WIN" if self.p[r.premium] >= self.threshold else "LOSS",
                "model_type": "symbol_strategy",
            }
            for r in requests
        ]
        return preds, {"market_data_fetches": 1 if requests else 0}


class RecordingPublisher:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.fail = False

    def publish(self, alert: Alert) -> str | None:
        if self.fail:
            raise ConnectionError("sns down")
        self.alerts.append(alert)
        return f"m{len(self.alerts)}"

    def kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]


class FakeHeartbeat:
    def __init__(self, beat: datetime | None) -> None:
        self.beat = beat

    def last_beat(self) -> datetime | None:
        return self.beat


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: float = 5) -> None:
        self.now += timedelta(minutes=minutes)


def entry(premium: float, symbol: str = "SPX", created: datetime = MARKET) -> WatchlistEntry:
    return WatchlistEntry(
        symbol=symbol,
        strategy="Butterfly",
        strikes=[5905, 5855, 5805],
        premium=premium,
        predicted_price=5855,
        action="BUY",
        created_at=created,
    )


class Rig:
    def __init__(self, now: datetime = MARKET, move: float = 0.10) -> None:
        self.clock = Clock(now)
        self.watch = InMemoryWatchlistStore()
        self.service = FakeService()
        self.state = InMemorySweepStateStore()
        self.pub = RecordingPublisher()
        self.hb = FakeHeartbeat(now)
        self.config = SweepConfig(move_threshold=move, stale_after_s=180)

    def sweep(self, fresh_heartbeat: bool = True, pusher: Any = None) -> Any:
        if fresh_heartbeat:
            self.hb.beat = self.clock.now - timedelta(seconds=10)
        return run_sweep(
            self.watch,
            self.service,
            self.state,
            self.pub,
            self.hb,
            self.clock,
            self.config,
            pusher=pusher,
        )


def cross_alerts(pub: RecordingPublisher) -> list[Alert]:
    return [a for a in pub.alerts if a.kind == "confidence_cross"]


def test_first_sweep_is_a_baseline_and_uses_one_batch() -> None:
    rig = Rig()
    for prem in (10.0, 11.0, 12.0):
        rig.watch.add(entry(prem))
        rig.service.p[prem] = 0.6
    res = rig.sweep()
    assert res.entries == 3 and len(res.updates) == 3
    assert len(rig.service.calls) == 1 and len(rig.service.calls[0]) == 3
    assert res.market_data_fetches == 1
    assert rig.pub.alerts == []
    assert set(rig.state.state.crossings) == {e.id for e in rig.watch.list_active(MARKET)}


def test_crossing_fires_once_per_crossing_in_both_directions() -> None:
    rig = Rig(move=0.5)  # moves small vs 0.5: only crossings speak
    e = entry(10.0)
    rig.watch.add(e)
    seq = [0.50, 0.60, 0.62, 0.64, 0.50, 0.48, 0.47, 0.58]
    fired: list[tuple[int, str | None]] = []
    for i, p in enumerate(seq):
        rig.service.p[10.0] = p
        res = rig.sweep()
        for a in res.alerts:
            fired.append((i, a.payload["crossed"]))
        rig.clock.tick()
    # up at 0.60, down at 0.50, up at 0.58; silent while it stays across
    assert fired == [(1, "above"), (4, "below"), (7, "above")]
    alerts = cross_alerts(rig.pub)
    assert len(alerts) == 3
    assert all(a.payload["entry_id"] == e.id for a in alerts)
    assert alerts[0].severity == "warning"
    assert "crossed above 0.55" in alerts[0].subject
    assert len({a.dedupe_key for a in alerts}) == 3
    assert alerts[0].message_attributes()["kind"]["StringValue"] == "confidence_cross"


def test_move_more_than_threshold_alerts_without_crossing() -> None:
    rig = Rig(move=0.10)
    rig.watch.add(entry(10.0))
    fired = []
    for i, p in enumerate([0.70, 0.75, 0.90, 0.91, 0.80, 0.79]):
        rig.service.p[10.0] = p
        res = rig.sweep()
        fired += [(i, a.payload["reasons"]) for a in res.alerts]
        rig.clock.tick()
    # 0.75->0.90 (+0.15) and 0.91->0.80 (-0.11) move more than 0.10; no crossing at 0.55
    assert fired == [(2, ["moved"]), (4, ["moved"])]
    assert all(a.severity == "info" for a in rig.pub.alerts)


def test_cross_and_move_in_one_sweep_is_one_alert() -> None:
    rig = Rig(move=0.10)
    rig.watch.add(entry(10.0))
    rig.service.p[10.0] = 0.40
    rig.sweep()
    rig.service.p[10.0] = 0.80
    res = rig.sweep()
    assert len(res.alerts) == 1
    assert res.alerts[0].payload["reasons"] == ["crossed_above", "moved"]
    assert res.crossings == 1 and res.moves == 1


def test_each_trade_crosses_independently() -> None:
    rig = Rig(move=0.5)
    a, b = entry(10.0), entry(20.0, symbol="NDX")
    rig.watch.add(a)
    rig.watch.add(b)
    rig.service.p.update({10.0: 0.4, 20.0: 0.4})
    rig.sweep()
    rig.service.p.update({10.0: 0.7, 20.0: 0.45})
    res = rig.sweep()
    assert [x.payload["entry_id"] for x in res.alerts] == [a.id]
    assert res.alerts[0].symbol == "SPX"


def test_failed_publish_is_retried_next_sweep() -> None:
    rig = Rig(move=0.5)
    rig.watch.add(entry(10.0))
    rig.service.p[10.0] = 0.4
    rig.sweep()
    rig.service.p[10.0] = 0.7
    rig.pub.fail = True
    res = rig.sweep()
    assert res.alerts == [] and any("sns down" in e for e in res.errors)
    rig.pub.fail = False
    res = rig.sweep()
    assert [a.payload["crossed"] for a in res.alerts] == ["above"]
    assert rig.sweep().alerts == []


def test_removed_or_expired_entries_are_not_scored() -> None:
    rig = Rig()
    e = entry(10.0)
    rig.watch.add(e)
    rig.service.p[10.0] = 0.6
    assert rig.sweep().entries == 1
    rig.clock.now = e.expires_at + timedelta(seconds=1)
    res = rig.sweep(fresh_heartbeat=True)
    assert res.entries == 0 and len(rig.service.calls) == 1
    # the last score is kept for outcomes posted after the close, then forgotten
    assert rig.state.state.crossings[e.id].probability == 0.6
    rig.clock.now = e.expires_at + timedelta(hours=37)
    rig.sweep()
    assert rig.state.state.crossings == {}


def test_stale_heartbeat_gives_exactly_one_alert_per_incident() -> None:
    rig = Rig()
    beat = MARKET - timedelta(seconds=10)
    rig.hb.beat = beat
    kinds_per_sweep = []
    # fresh, then stale for 4 sweeps, fresh for 2, stale again for 3
    plan = ["fresh"] + ["stale"] * 4 + ["fresh"] * 2 + ["stale"] * 3
    for step in plan:
        if step == "fresh":
            rig.hb.beat = rig.clock.now - timedelta(seconds=30)
        res = rig.sweep(fresh_heartbeat=False)
        kinds_per_sweep.append(res.stale_alerts)
        assert res.gateway is not None and res.gateway.stale == (step == "stale")
        rig.clock.tick()
    assert kinds_per_sweep == [0, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    stale = [a for a in rig.pub.alerts if a.kind == "gateway_stale"]
    assert len(stale) == 2
    assert stale[0].severity == "critical" and stale[0].symbol == "GATEWAY"
    assert stale[0].dedupe_key != stale[1].dedupe_key


def test_missing_heartbeat_is_stale_in_market_hours() -> None:
    rig = Rig()
    rig.hb.beat = None
    res = rig.sweep(fresh_heartbeat=False)
    assert res.stale_alerts == 1
    assert "never" in res.alerts[0].subject


def test_no_stale_alert_outside_market_hours() -> None:
    rig = Rig(now=EVENING)
    rig.hb.beat = EVENING - timedelta(hours=3)
    for _ in range(3):
        res = rig.sweep(fresh_heartbeat=False)
        assert res.gateway is not None and res.gateway.stale and not res.gateway.market_hours
        rig.clock.tick()
    assert rig.pub.alerts == []
    # weekend too
    rig.clock.now = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # Saturday 10:00 ET
    assert rig.sweep(fresh_heartbeat=False).stale_alerts == 0


def test_incident_left_open_overnight_alerts_again_next_trading_day() -> None:
    rig = Rig()
    rig.hb.beat = MARKET - timedelta(hours=1)
    assert rig.sweep(fresh_heartbeat=False).stale_alerts == 1
    rig.clock.now = MARKET + timedelta(hours=2)
    assert rig.sweep(fresh_heartbeat=False).stale_alerts == 0
    rig.clock.now = MARKET + timedelta(days=1)  # Wednesday 10:00 ET, still stale
    assert rig.sweep(fresh_heartbeat=False).stale_alerts == 1


def test_heartbeat_read_error_changes_nothing() -> None:
    class Broken:
        def last_beat(self) -> datetime | None:
            raise TimeoutError("ddb timeout")

    rig = Rig()
    res = run_sweep(rig.watch, rig.service, rig.state, rig.pub, Broken(), rig.clock, rig.config)
    assert res.stale_alerts == 0 and any("ddb timeout" in e for e in res.errors)


def test_prediction_failure_keeps_state_and_still_checks_gateway() -> None:
    class Down:
        def predict_batch(self, requests: Any, share_market_data: bool = True) -> Any:
            raise RuntimeError("market table unreachable")

    rig = Rig()
    rig.watch.add(entry(10.0))
    rig.service.p[10.0] = 0.4
    rig.sweep()
    before = dict(rig.state.state.crossings)
    rig.hb.beat = None
    res = run_sweep(rig.watch, Down(), rig.state, rig.pub, rig.hb, rig.clock, rig.config)
    assert any("market table unreachable" in e for e in res.errors)
    assert rig.state.state.crossings == before
    assert res.stale_alerts == 1


def test_updates_are_pushed_to_subscribers_of_their_symbol_only() -> None:
    class Poster:
        def __init__(self) -> None:
            self.sent: dict[str, list[bytes]] = {}

        def post(self, connection_id: str, data: bytes) -> bool:
            if connection_id == "gone":
                return False
            self.sent.setdefault(connection_id, []).append(data)
            return True

    store = InMemoryConnectionStore()
    store.add(Connection(connection_id="spx", symbols=frozenset({"SPX"})))
    store.add(Connection(connection_id="ndx", symbols=frozenset({"NDX"})))
    store.add(Connection(connection_id="rut", symbols=frozenset({"RUT"})))
    store.add(Connection(connection_id="gone", symbols=frozenset({"SPX"})))
    poster = Poster()
    rig = Rig()
    rig.watch.add(entry(10.0, "SPX"))
    rig.watch.add(entry(11.0, "SPX"))
    rig.watch.add(entry(20.0, "NDX"))
    rig.service.p.update({10.0: 0.6, 11.0: 0.5, 20.0: 0.7})
    res = rig.sweep(pusher=SubscriptionPush(store, poster))
    assert res.push is not None and res.push.delivered == 2 and res.push.gone == ["gone"]
    assert set(poster.sent) == {"spx", "ndx"}
    assert b'"type":"batch"' in poster.sent["spx"][0] and b"NDX" not in poster.sent["spx"][0]
    assert b'"symbol":"NDX"' in poster.sent["ndx"][0] and b"SPX" not in poster.sent["ndx"][0]
    assert {c.connection_id for c in store.list_all()} == {"spx", "ndx", "rut"}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 17, 14, 29, tzinfo=UTC), False),  # 09:29 ET
        (datetime(2026, 11, 17, 14, 30, tzinfo=UTC), True),  # 09:30 ET
        (datetime(2026, 11, 17, 20, 59, tzinfo=UTC), True),  # 15:59 ET
        (datetime(2026, 11, 17, 21, 0, tzinfo=UTC), False),  # 16:00 ET
        (datetime(2026, 7, 14, 13, 45, tzinfo=UTC), True),  # 09:45 EDT
        (datetime(2026, 11, 21, 15, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_market_hours(now: datetime, expected: bool) -> None:
    assert is_market_hours(now) is expected


def test_entries_expire_at_the_end_of_their_trading_day() -> None:
    assert end_of_trading_day(MARKET) == datetime(2026, 11, 17, 21, 0, tzinfo=UTC)
    assert end_of_trading_day(EVENING) == datetime(2026, 11, 18, 21, 0, tzinfo=UTC)
    friday_evening = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    assert end_of_trading_day(friday_evening) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 14, 15, 0, tzinfo=UTC)
    assert end_of_trading_day(summer) == datetime(2026, 7, 14, 20, 0, tzinfo=UTC)
    assert entry(1.0).expires_at == datetime(2026, 11, 17, 21, 0, tzinfo=UTC)


class FullHeartbeat(FakeHeartbeat):
    """A reader that also exposes the whole heartbeat (as StateHeartbeatReader does)."""

    def __init__(self, beat: datetime | None, last_mbo_at: datetime | None, state: str) -> None:
        super().__init__(beat)
        self.mbo_at = last_mbo_at
        self.state = state
        self.last: Any = None

    def last_beat(self) -> datetime | None:
        from magic8.domain.heartbeat import GatewayHeartbeat

        if self.beat is not None:
            self.last = GatewayHeartbeat(
                updated_at=self.beat, last_mbo_at=self.mbo_at, databento_state=self.state
            )
        return self.beat


def test_a_live_heartbeat_over_a_feed_without_mbo_is_stale() -> None:
    """Databento heartbeats keep the gateway's heartbeat fresh; the data's age does not lie."""
    rig = Rig()
    rig.hb = FullHeartbeat(MARKET - timedelta(seconds=10), MARKET - timedelta(minutes=20), "")
    rig.hb.state = "streaming"
    res = rig.sweep(fresh_heartbeat=False)
    assert res.gateway is not None and res.gateway.stale and res.stale_alerts == 1
    alert = res.alerts[0]
    assert "no MBO data" in alert.subject and alert.payload["reason"] == "no_mbo_data"
    assert alert.payload["mbo_age_s"] == pytest.approx(1200.0)
    # MBO flowing again: fresh
    rig.hb.mbo_at = MARKET - timedelta(seconds=5)
    rig.clock.tick(0)
    assert rig.sweep(fresh_heartbeat=False).gateway.stale is False
    # an idle gateway (outside its window, not streaming) is not judged on MBO age
    rig.hb.state = "outside_window"
    rig.hb.mbo_at = MARKET - timedelta(hours=20)
    assert rig.sweep(fresh_heartbeat=False).gateway.stale is False


def test_gateway_stale_knows_the_cme_session() -> None:
    """Christmas 2026 (Friday): CME Globex closed, no stale alert. Martin Luther King Day
    2026: NYSE closed, but CME equity options trade until 12:00 CT, so at 10:00 ET the
    gateway should be streaming and a missing heartbeat is stale (NYSE hours would not say)."""
    rig = Rig(now=datetime(2026, 12, 25, 15, 0, tzinfo=UTC))
    rig.hb.beat = None
    res = rig.sweep(fresh_heartbeat=False)
    assert res.gateway is not None and not res.gateway.market_hours and res.stale_alerts == 0
    mlk = datetime(2026, 1, 19, 15, 0, tzinfo=UTC)
    assert not is_market_hours(mlk)
    rig.clock.now = mlk
    assert rig.sweep(fresh_heartbeat=False).stale_alerts == 1
    rig.clock.now = datetime(2026, 1, 19, 18, 30, tzinfo=UTC)  # 13:30 ET: after the close
    rig.state.state.stale_incident = None
    assert rig.sweep(fresh_heartbeat=False).gateway.market_hours is False


def test_gateway_stale_uses_the_cme_session_in_2028_and_says_so() -> None:
    """Beyond exchange_calendars' default one-year horizon (the table covers 2020-2035):
    Good Friday 2028 and a Saturday are closed on Globex (no alert); MLK Day 2028 is an
    early-close Globex session, so a missing heartbeat at 10:00 ET is stale, and the alert
    and the summary name the session used."""
    rig = Rig(now=datetime(2028, 4, 14, 15, 0, tzinfo=UTC))  # Good Friday, 10:00 ET
    rig.hb.beat = None
    res = rig.sweep(fresh_heartbeat=False)
    assert res.gateway is not None and not res.gateway.market_hours and res.stale_alerts == 0
    assert res.gateway.session["session"] == "closed"
    rig.clock.now = datetime(2028, 3, 4, 15, 0, tzinfo=UTC)  # a Saturday
    res = rig.sweep(fresh_heartbeat=False)
    assert res.stale_alerts == 0 and res.summary()["gateway_session"]["session"] == "closed"
    rig.clock.now = datetime(2028, 1, 17, 15, 0, tzinfo=UTC)  # MLK Day, 09:00 CT
    res = rig.sweep(fresh_heartbeat=False)
    assert res.stale_alerts == 1
    session = res.alerts[0].payload["session"]
    assert session["exchange"] == "CME Globex" and session["session"] == "early_close"
    assert session["market_open"] is True and session["session_date"] == "2028-01-17"
    assert res.summary()["gateway_session"] == session
