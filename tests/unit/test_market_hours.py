"""NYSE regular trading hours, holidays and early closes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from magic8.market_hours import (
    ET,
    NYSE_EARLY_CLOSES,
    SESSIONS_FILE,
    MarketCalendar,
    MarketHoursPolicy,
    cme_globex_equity_open,
)

CAL = MarketCalendar()


def et(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ET)


@pytest.mark.parametrize(
    ("when", "is_open", "why"),
    [
        (et(2025, 9, 15, 9, 29), False, "one minute before the open"),
        (et(2025, 9, 15, 9, 30), True, "at the open"),
        (et(2025, 9, 15, 15, 59), True, "last minute"),
        (et(2025, 9, 15, 16, 0), False, "at the close"),
        (et(2025, 9, 13, 12, 0), False, "Saturday"),
        (et(2025, 9, 14, 12, 0), False, "Sunday"),
        (et(2025, 1, 9, 12, 0), False, "National Day of Mourning 2025"),
        (et(2025, 4, 18, 12, 0), False, "Good Friday 2025"),
        (et(2025, 7, 4, 12, 0), False, "Independence Day 2025"),
        (et(2025, 7, 3, 12, 59), True, "early close day before 13:00"),
        (et(2025, 7, 3, 13, 0), False, "early close day at 13:00"),
        (et(2025, 11, 27, 12, 0), False, "Thanksgiving 2025"),
        (et(2025, 11, 28, 13, 30), False, "Black Friday 2025 after early close"),
        (et(2025, 12, 24, 10, 0), True, "Christmas Eve morning"),
        (et(2025, 12, 24, 14, 0), False, "Christmas Eve afternoon"),
        (et(2025, 12, 25, 12, 0), False, "Christmas 2025"),
        (et(2026, 4, 3, 12, 0), False, "Good Friday 2026"),
        (et(2026, 7, 3, 12, 0), False, "Independence Day observed 2026"),
        (et(2026, 11, 27, 12, 30), True, "Black Friday 2026 before early close"),
        (et(2026, 11, 27, 13, 0), False, "Black Friday 2026 at early close"),
        (et(2026, 11, 21, 12, 0), False, "Saturday 2026"),
        (et(2027, 3, 26, 12, 0), False, "Good Friday 2027"),
        (et(2027, 6, 18, 12, 0), False, "Juneteenth observed 2027"),
        (et(2027, 7, 5, 12, 0), False, "Independence Day observed 2027"),
        (et(2027, 12, 24, 12, 0), False, "Christmas observed 2027"),
        (et(2027, 12, 27, 12, 0), True, "ordinary Monday"),
        # DST: 09:30 ET is 13:30 UTC in summer, 14:30 UTC in winter
        (datetime(2025, 7, 1, 13, 30, tzinfo=UTC), True, "summer open in UTC"),
        (datetime(2025, 12, 1, 13, 30, tzinfo=UTC), False, "winter 13:30 UTC is 08:30 ET"),
        (datetime(2025, 12, 1, 14, 30, tzinfo=UTC), True, "winter open in UTC"),
    ],
)
def test_is_open(when: datetime, is_open: bool, why: str) -> None:
    assert CAL.is_open(when) is is_open, why


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (et(2025, 9, 12, 16, 5), et(2025, 9, 15, 9, 30)),  # Friday close -> Monday
        (et(2025, 9, 15, 8, 0), et(2025, 9, 15, 9, 30)),  # same morning
        (et(2025, 12, 24, 14, 0), et(2025, 12, 26, 9, 30)),  # skips Christmas
        (et(2026, 4, 2, 17, 0), et(2026, 4, 6, 9, 30)),  # skips Good Friday + weekend
    ],
)
def test_next_open(now: datetime, expected: datetime) -> None:
    assert CAL.next_open(now) == expected


def test_covered_years() -> None:
    assert CAL.covered(date(2026, 5, 1)) and CAL.covered(date(2029, 1, 2))
    assert not CAL.covered(date(2036, 1, 2))


def test_2028_holidays_are_known() -> None:
    # Good Friday, Thanksgiving, Christmas 2028; New Year's Day 2028 is a Saturday
    for day in (date(2028, 4, 14), date(2028, 11, 23), date(2028, 12, 25)):
        assert not CAL.is_trading_day(day)
    assert CAL.is_trading_day(date(2028, 11, 22)) and date(2028, 11, 24) in NYSE_EARLY_CLOSES


def test_the_session_table_matches_exchange_calendars() -> None:
    from magic8_dev.calendar import build

    data = json.loads(SESSIONS_FILE.read_text())
    fresh = build(data["first_year"], data["last_year"])
    assert fresh["holidays"] == data["holidays"]
    assert fresh["early_closes"] == data["early_closes"]


def test_describe_flags_saturday_christmas_and_early_close() -> None:
    saturday = CAL.describe(et(2026, 3, 7, 12, 0))
    assert saturday["session"] == "closed" and saturday["market_open"] is False
    christmas = CAL.describe(et(2026, 12, 25, 12, 0))
    assert christmas["session"] == "closed" and christmas["market_open"] is False
    early = CAL.describe(et(2026, 11, 27, 12, 0))
    assert early["session"] == "early_close" and early["market_open"] is True
    assert early["session_hours_et"] == "09:30-13:00"
    assert CAL.describe(et(2026, 11, 27, 13, 30))["market_open"] is False
    regular = CAL.describe(et(2026, 3, 2, 12, 0))
    assert regular["session"] == "regular" and regular["market_open"] is True


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.is_open(datetime(2025, 9, 15, 12, 0))


def test_policy_uses_injected_clock() -> None:
    saturday = et(2026, 11, 21, 12, 0)
    rth = MarketHoursPolicy("rth", clock=lambda: saturday)
    always = MarketHoursPolicy("always", clock=lambda: saturday)
    assert not rth.active() and always.active()
    assert rth.seconds_until_active() == (et(2026, 11, 23, 9, 30) - saturday).total_seconds()
    assert always.seconds_until_active() == 0.0


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (et(2026, 11, 22, 17, 59), False),  # Sunday before the open
        (et(2026, 11, 22, 18, 0), True),  # Sunday open
        (et(2026, 11, 23, 3, 0), True),  # overnight
        (et(2026, 11, 23, 17, 30), False),  # daily halt
        (et(2026, 11, 23, 18, 0), True),  # after the halt
        (et(2026, 11, 20, 16, 59), True),  # Friday before the close
        (et(2026, 11, 20, 17, 0), False),  # Friday close
        (et(2026, 11, 28, 12, 0), False),  # Saturday
        (et(2026, 11, 27, 12, 59), True),  # Thanksgiving Friday: open until 12:00 CT
        (et(2026, 11, 27, 13, 0), False),  # ... early close
        (et(2026, 12, 25, 11, 0), False),  # Christmas: Globex closed
        (et(2026, 12, 24, 19, 0), False),  # Christmas Eve evening: no session opens
        (et(2026, 12, 27, 18, 30), True),  # Sunday after Christmas: open again
    ],
)
def test_cme_globex_equity_hours(when: datetime, is_open: bool) -> None:
    assert cme_globex_equity_open(when) is is_open


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), True),  # Wednesday 10:00 ET
        (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), False),  # Thanksgiving
        (datetime(2026, 11, 27, 17, 0, tzinfo=UTC), True),  # early close day, 12:00 ET
        (datetime(2026, 11, 27, 19, 0, tzinfo=UTC), False),  # 14:00 ET, after the 13:00 close
    ],
)
def test_monitor_calendar_uses_the_exchange_calendar(utc: datetime, expected: bool) -> None:
    from magic8.monitor.calendar import is_market_hours

    assert is_market_hours(utc) is expected


@pytest.mark.parametrize(
    ("day", "window"),
    [
        ((2026, 11, 23), ((9, 30), (16, 0))),  # a Monday: 09:30-16:00 ET
        ((2026, 11, 27), ((9, 30), (13, 0))),  # Thanksgiving Friday: cut at the 12:00 CT close
        ((2026, 12, 25), None),  # Christmas: no window
        ((2026, 11, 21), None),  # Saturday
    ],
)
def test_streaming_window_follows_the_cme_calendar(
    day: tuple[int, int, int], window: tuple[tuple[int, int], tuple[int, int]] | None
) -> None:
    from datetime import date

    from magic8.market_hours import StreamingWindow

    got = StreamingWindow().window(date(*day))
    if window is None:
        assert got is None
    else:
        assert got == (et(*day, *window[0]), et(*day, *window[1]))


def test_streaming_window_current_or_next() -> None:
    from magic8.market_hours import StreamingWindow

    w = StreamingWindow()
    christmas_eve_evening = et(2026, 12, 24, 18, 0)
    assert not w.is_open(christmas_eve_evening)
    # the next window is Monday 2026-12-28 (Christmas Friday has none)
    assert w.current_or_next(christmas_eve_evening)[0] == et(2026, 12, 28, 9, 30)
    assert w.is_open(et(2026, 12, 28, 15, 59)) and not w.is_open(et(2026, 12, 28, 16, 0))
    assert w.seconds_until_close(et(2026, 12, 28, 15, 0)) == 3600.0


def test_the_cme_session_table_matches_exchange_calendars() -> None:
    from magic8.market_hours import CME_SESSIONS_FILE
    from magic8_dev.calendar import build_cme

    data = json.loads(CME_SESSIONS_FILE.read_text())
    fresh = build_cme(data["first_year"], data["last_year"])
    assert fresh["holidays"] == data["holidays"]
    assert fresh["early_closes_ct"] == data["early_closes_ct"]


def test_cme_table_and_library_agree_on_every_session_they_share() -> None:
    """The runtime (no pandas) reads the table; the gateway image may have the library."""
    from datetime import timedelta

    from magic8.market_hours import CmeCalendar, _cmes_calendar

    lib = _cmes_calendar()
    if lib is None:  # pragma: no cover - the dev env has it
        pytest.skip("exchange_calendars not installed")
    table, library = CmeCalendar(), CmeCalendar(lib, use_table=False)
    day = max(date(2025, 1, 1), lib.first_session.date())
    end = min(date(2027, 12, 31), lib.last_session.date())
    while day <= end:
        assert table.session(day) == library.session(day), day
        day += timedelta(days=1)


def test_cme_2028_holidays_and_early_closes_are_known() -> None:
    from magic8.market_hours import CT, CmeCalendar

    cme = CmeCalendar()
    assert cme.covered(date(2028, 6, 1))
    # Good Friday and Christmas 2028: no Globex session; Thanksgiving: 12:00 CT close
    assert cme.session(date(2028, 4, 14)) is None and cme.session(date(2028, 12, 25)) is None
    thanksgiving = cme.session(date(2028, 11, 23))
    assert thanksgiving is not None and thanksgiving[1].astimezone(CT).hour == 12
    assert cme.describe(datetime(2028, 11, 23, 11, 0, tzinfo=CT))["session"] == "early_close"
    assert cme.describe(datetime(2028, 12, 25, 11, 0, tzinfo=CT))["session"] == "closed"


@pytest.mark.parametrize(
    ("when", "session", "is_open", "session_date"),
    [
        (et(2028, 3, 4, 12, 0), "closed", False, "2028-03-04"),  # a Saturday
        (et(2028, 3, 5, 19, 0), "regular", True, "2028-03-06"),  # Sunday evening: Monday's
        (et(2028, 3, 6, 17, 30), "regular", False, "2028-03-06"),  # the daily halt
        (et(2028, 3, 6, 12, 0), "regular", True, "2028-03-06"),
    ],
)
def test_cme_describe(when: datetime, session: str, is_open: bool, session_date: str) -> None:
    from magic8.market_hours import CmeCalendar

    got = CmeCalendar().describe(when)
    assert got["exchange"] == "CME Globex" and got["session"] == session
    assert got["market_open"] is is_open and got["session_date"] == session_date


def test_nyse_flags_a_2028_saturday_closed() -> None:
    saturday = CAL.describe(et(2028, 3, 4, 12, 0))
    assert saturday["session"] == "closed" and saturday["market_open"] is False
