"""US equity/index options market hours: NYSE regular trading hours and holidays.

RTH 09:30-16:00 America/New_York, 13:00 on early-close days. The holiday table covers
2025-2027 (NYSE published calendars); outside it only weekends are known to be closed and
`covered()` says so. No library in the environment provides an exchange calendar, and
this table is small enough to read at a glance.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
RTH_OPEN = time(9, 30)
RTH_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)

NYSE_HOLIDAYS: frozenset[date] = frozenset(
    {
        # 2025
        date(2025, 1, 1),
        date(2025, 1, 9),  # National Day of Mourning (President Carter)
        date(2025, 1, 20),
        date(2025, 2, 17),
        date(2025, 4, 18),
        date(2025, 5, 26),
        date(2025, 6, 19),
        date(2025, 7, 4),
        date(2025, 9, 1),
        date(2025, 11, 27),
        date(2025, 12, 25),
        # 2026
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 4, 3),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),  # Independence Day observed (Jul 4 is a Saturday)
        date(2026, 9, 7),
        date(2026, 11, 26),
        date(2026, 12, 25),
        # 2027
        date(2027, 1, 1),
        date(2027, 1, 18),
        date(2027, 2, 15),
        date(2027, 3, 26),
        date(2027, 5, 31),
        date(2027, 6, 18),  # Juneteenth observed (Jun 19 is a Saturday)
        date(2027, 7, 5),  # Independence Day observed (Jul 4 is a Sunday)
        date(2027, 9, 6),
        date(2027, 11, 25),
        date(2027, 12, 24),  # Christmas observed (Dec 25 is a Saturday)
    }
)

NYSE_EARLY_CLOSES: frozenset[date] = frozenset(
    {
        date(2025, 7, 3),
        date(2025, 11, 28),
        date(2025, 12, 24),
        date(2026, 11, 27),
        date(2026, 12, 24),
        date(2027, 11, 26),
    }
)

COVERED_YEARS = range(2025, 2028)

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
