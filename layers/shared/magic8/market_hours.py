"""US equity/index options market hours: NYSE regular trading hours and holidays.

RTH 09:30-16:00 America/New_York, 13:00 on early-close days. Holidays and early closes come
from magic8/data/nyse_sessions.json, generated from the maintained exchange_calendars
library (XNYS) by `python -m magic8_dev.calendar` (2020-2035; a test checks the file
against the library); the runtime reads the JSON so the images carry no pandas. Outside
the covered years only weekends are known to be closed and `covered()` says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
RTH_OPEN = time(9, 30)
RTH_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)

SESSIONS_FILE = Path(__file__).resolve().parent / "data" / "nyse_sessions.json"
_SESSIONS = json.loads(SESSIONS_FILE.read_text())

NYSE_HOLIDAYS: frozenset[date] = frozenset(date.fromisoformat(d) for d in _SESSIONS["holidays"])
NYSE_EARLY_CLOSES: frozenset[date] = frozenset(
    date.fromisoformat(d) for d in _SESSIONS["early_closes"]
)
COVERED_YEARS = range(int(_SESSIONS["first_year"]), int(_SESSIONS["last_year"]) + 1)
CALENDAR_SOURCE: str = _SESSIONS["source"]

HoursPolicy = Literal["rth", "always"]


class MarketCalendar:
    """NYSE sessions; all datetimes in and out are timezone-aware."""

    def __init__(
        self,
        holidays: frozenset[date] = NYSE_HOLIDAYS,
        early_closes: frozenset[date] = NYSE_EARLY_CLOSES,
    ) -> None:
        self.holidays = holidays
        self.early_closes = early_closes

    @staticmethod
    def covered(day: date) -> bool:
        return day.year in COVERED_YEARS

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """(open, close) in UTC for a trading day, None when the market is closed all day."""
        if not self.is_trading_day(day):
            return None
        close = EARLY_CLOSE if day in self.early_closes else RTH_CLOSE
        open_dt = datetime.combine(day, RTH_OPEN, tzinfo=ET).astimezone(UTC)
        close_dt = datetime.combine(day, close, tzinfo=ET).astimezone(UTC)
        return open_dt, close_dt

    def is_open(self, now: datetime) -> bool:
        local = _aware(now).astimezone(ET)
        sess = self.session(local.date())
        return sess is not None and sess[0] <= now < sess[1]

    def next_open(self, now: datetime) -> datetime:
        """The next session open strictly after `now` (or now's session open if still ahead)."""
        local = _aware(now).astimezone(ET)
        day = local.date()
        for _ in range(20):
            sess = self.session(day)
            if sess is not None and sess[0] > now:
                return sess[0]
            day += timedelta(days=1)
        raise RuntimeError("no session within 20 days")  # pragma: no cover

    def seconds_until_open(self, now: datetime) -> float:
        return 0.0 if self.is_open(now) else (self.next_open(now) - now).total_seconds()

    def session_kind(self, day: date) -> Literal["regular", "early_close", "closed"]:
        if not self.is_trading_day(day):
            return "closed"
        return "early_close" if day in self.early_closes else "regular"

    def describe(self, at: datetime) -> dict[str, object]:
        """What an answer says about the market at `at`: market_open (within the session's
        hours), session (regular | early_close | closed, for at's New York date) and the
        session's hours in New York time."""
        local = _aware(at).astimezone(ET)
        day = local.date()
        sess = self.session(day)
        return {
            "market_open": sess is not None and sess[0] <= at < sess[1],
            "session": self.session_kind(day),
            "session_date": day.isoformat(),
            "session_hours_et": (
                None
                if sess is None
                else f"{sess[0].astimezone(ET):%H:%M}-{sess[1].astimezone(ET):%H:%M}"
            ),
            "calendar_covered": self.covered(day),
        }


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return dt


class MarketHoursPolicy:
    """Whether the gateway may make requests now: 'rth' (default) or 'always'."""

    def __init__(
        self,
        policy: HoursPolicy = "rth",
        calendar: MarketCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy = policy
        self.calendar = calendar or MarketCalendar()
        self.clock = clock or (lambda: datetime.now(UTC))

    def active(self, now: datetime | None = None) -> bool:
        if self.policy == "always":
            return True
        return self.calendar.is_open(now or self.clock())

    def seconds_until_active(self, now: datetime | None = None) -> float:
        now = now or self.clock()
        return 0.0 if self.active(now) else self.calendar.seconds_until_open(now)


def cme_globex_equity_open(now: datetime) -> bool:
    """CME Globex equity index futures/options (NQ): Sunday 18:00 ET - Friday 17:00 ET with a
    daily 17:00-18:00 ET halt. Exchange holidays are not modelled (a quiet feed on a holiday
    looks like a stale one)."""
    local = _aware(now).astimezone(ET)
    wd, t = local.weekday(), local.time()
    halt = time(17, 0) <= t < time(18, 0)
    if wd == 5:  # Saturday
        return False
    if wd == 6:  # Sunday: opens 18:00
        return t >= time(18, 0)
    if wd == 4:  # Friday: closes 17:00
        return t < time(17, 0)
    return not halt
