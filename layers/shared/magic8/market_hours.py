"""US equity/index options market hours: NYSE regular trading hours and holidays.

RTH 09:30-16:00 America/New_York, 13:00 on early-close days. Holidays and early closes come
from magic8/data/nyse_sessions.json, generated from the maintained exchange_calendars
library (XNYS) by `python -m magic8_dev.calendar` (2020-2035; a test checks the file
against the library); the runtime reads the JSON so the images carry no pandas. Outside
the covered years only weekends are known to be closed and `covered()` says so.

CME Globex (NQ futures and options): `CmeCalendar` reads magic8/data/cme_sessions.json,
generated from exchange_calendars' maintained "CMES" calendar by the same command
(holidays, early closes, 2020-2035), plus the daily 16:00-17:00 CT halt; beyond the table
the library when installed, else a weekday rule. `describe()` says what an answer about
futures says (market_open, session); `StreamingWindow` is the gateway's Databento
streaming window on top of it.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
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


# ----------------------------------------------------------------------------- CME Globex

CT = ZoneInfo("America/Chicago")
CME_DAILY_HALT = (time(16, 0), time(17, 0))  # CT: equity index maintenance halt
CME_SESSION_OPEN = time(17, 0)  # CT, the evening before the session's day


CME_SESSIONS_FILE = SESSIONS_FILE.with_name("cme_sessions.json")
_CME = json.loads(CME_SESSIONS_FILE.read_text())
CME_HOLIDAYS: frozenset[date] = frozenset(date.fromisoformat(d) for d in _CME["holidays"])
CME_EARLY_CLOSES_CT: dict[date, time] = {
    date.fromisoformat(d): time.fromisoformat(t) for d, t in _CME["early_closes_ct"].items()
}
CME_COVERED_YEARS = range(int(_CME["first_year"]), int(_CME["last_year"]) + 1)
CME_CALENDAR_SOURCE: str = _CME["source"]


@functools.cache
def _cmes_calendar() -> Any:
    """exchange_calendars' CME Globex ("CMES": holidays, early closes), or None when the
    package is not installed (the predict/monitor image: then NYSE holidays stand in)."""
    try:
        import exchange_calendars as xc
    except ImportError:  # pragma: no cover - the gateway image and dev env have it
        return None
    with warnings.catch_warnings():  # pandas deprecations inside the package
        warnings.simplefilter("ignore")
        return xc.get_calendar("CMES")


class CmeCalendar:
    """CME Globex equity index sessions (NQ futures and options).

    A session labelled D runs from 17:00 CT on the previous evening to 16:00 CT on D
    (earlier on holiday-shortened days); days that are no session (Christmas, New Year's
    Day, Good Friday, weekends) are closed. The sessions come from the CMES table
    (cme_sessions.json, generated from exchange_calendars), or from the library passed in
    / installed outside the table's years; without either, a weekday rule with the NYSE
    holiday table stands in.
    """

    def __init__(self, calendar: Any = None, use_table: bool | None = None) -> None:
        # a calendar passed in is used as is; by default the generated table first
        self._use_table = calendar is None if use_table is None else use_table
        self._explicit = calendar
        self._cal_loaded = calendar is not None

    @property
    def _cal(self) -> Any:
        if not self._cal_loaded:  # the library only when the table does not cover a day
            self._explicit = _cmes_calendar()
            self._cal_loaded = True
        return self._explicit

    @staticmethod
    def covered(day: date) -> bool:
        return day.year in CME_COVERED_YEARS

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a few days per process, bounded
    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """(open, close) in UTC of the Globex session labelled `day`, None when closed."""
        if self._use_table and self.covered(day):
            if day.weekday() >= 5 or day in CME_HOLIDAYS:
                return None
            prev = day - timedelta(days=1)  # 17:00 CT the evening before (Sunday for Monday)
            open_ = datetime.combine(prev, CME_SESSION_OPEN, tzinfo=CT).astimezone(UTC)
            close = CME_EARLY_CLOSES_CT.get(day, CME_DAILY_HALT[0])
            return open_, datetime.combine(day, close, tzinfo=CT).astimezone(UTC)
        cal = self._cal
        if cal is not None and cal.first_session.date() <= day <= cal.last_session.date():
            if not cal.is_session(day.isoformat()):
                return None
            open_ = cal.session_open(day.isoformat()).to_pydatetime()
            close = cal.session_close(day.isoformat()).to_pydatetime()
            halt = datetime.combine(day, CME_DAILY_HALT[0], tzinfo=CT).astimezone(UTC)
            return open_.astimezone(UTC), min(close.astimezone(UTC), halt)
        if day.weekday() >= 5 or day in NYSE_HOLIDAYS:
            return None
        prev = day - timedelta(days=3 if day.weekday() == 0 else 1)
        open_ = datetime.combine(prev, CME_SESSION_OPEN, tzinfo=CT).astimezone(UTC)
        return open_, datetime.combine(day, CME_DAILY_HALT[0], tzinfo=CT).astimezone(UTC)

    def session_day(self, now: datetime) -> date:
        """The label of the session `now` belongs to (after 17:00 CT: the next weekday)."""
        local = _aware(now).astimezone(CT)
        day = local.date()
        if local.time() >= CME_SESSION_OPEN:
            day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    def is_open(self, now: datetime) -> bool:
        sess = self.session(self.session_day(now))
        return sess is not None and sess[0] <= now < sess[1]

    def session_kind(self, day: date) -> Literal["regular", "early_close", "closed"]:
        sess = self.session(day)
        if sess is None:
            return "closed"
        halt = datetime.combine(day, CME_DAILY_HALT[0], tzinfo=CT).astimezone(UTC)
        return "early_close" if sess[1] < halt else "regular"

    def describe(self, at: datetime) -> dict[str, object]:
        """What an answer about futures says of CME Globex at `at`: market_open (inside
        the session, not in the daily halt), session (regular | early_close | closed, of
        the session `at` belongs to: after 17:00 CT, the next day's) and its hours in CT."""
        day = self.session_day(at)
        sess = self.session(day)
        if sess is not None and at < sess[0]:  # a weekend / holiday gap before the next one
            day, sess = _aware(at).astimezone(CT).date(), None
        return {
            "exchange": "CME Globex",
            "market_open": sess is not None and sess[0] <= at < sess[1],
            "session": "closed" if sess is None else self.session_kind(day),
            "session_date": day.isoformat(),
            "session_hours_ct": (
                None
                if sess is None
                else f"{sess[0].astimezone(CT):%a %H:%M}-{sess[1].astimezone(CT):%a %H:%M}"
            ),
            "calendar_covered": self.covered(day),
        }


class StreamingWindow:
    """When the gateway streams: `start`-`end` local time (default 09:30-16:00 ET, the CME
    equity options regular session) on CME Globex session days, cut at an early close.
    `always=True` streams whenever Globex is open (no daily window)."""

    def __init__(
        self,
        start: time = RTH_OPEN,
        end: time = RTH_CLOSE,
        tz: ZoneInfo = ET,
        calendar: CmeCalendar | None = None,
        always: bool = False,
    ) -> None:
        self.start, self.end, self.tz = start, end, tz
        self.calendar = calendar or default_cme_calendar()
        self.always = always

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """(start, end) in UTC on `day`, None when there is no window that day."""
        sess = self.calendar.session(day)
        if sess is None:
            return None
        if self.always:
            return sess
        start = max(datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC), sess[0])
        end = min(datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC), sess[1])
        return (start, end) if end > start else None

    def current_or_next(self, now: datetime) -> tuple[datetime, datetime]:
        """The window `now` is in, or the next one."""
        day = _aware(now).astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(20):
            w = self.window(day)
            if w is not None and now < w[1]:
                return w
            day += timedelta(days=1)
        raise RuntimeError("no streaming window within 20 days")  # pragma: no cover

    def is_open(self, now: datetime) -> bool:
        start, end = self.current_or_next(now)
        return start <= now < end

    def seconds_until_open(self, now: datetime) -> float:
        start, _ = self.current_or_next(now)
        return max(0.0, (start - now).total_seconds())

    def seconds_until_close(self, now: datetime) -> float:
        start, end = self.current_or_next(now)
        return (end - now).total_seconds() if start <= now else 0.0


def cme_globex_equity_open(now: datetime) -> bool:
    """CME Globex equity index futures/options (NQ): Sunday 17:00 CT - Friday 16:00 CT with a
    daily 16:00-17:00 CT halt, exchange holidays and early closes from the CME calendar
    (closed on Christmas; 12:00 CT close on Thanksgiving Friday)."""
    return default_cme_calendar().is_open(now)


@functools.cache
def default_cme_calendar() -> CmeCalendar:
    return CmeCalendar()
