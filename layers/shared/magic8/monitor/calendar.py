"""US equity-options trading hours (America/New_York) for the monitor.

Regular session 09:30-16:00 ET on NYSE trading days (holidays and early closes from
magic8.market_hours, the same calendar the gateway uses).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from magic8.market_hours import EARLY_CLOSE, MarketCalendar

EASTERN = ZoneInfo("America/New_York")
MARKET_OPEN = time(9, 30)
MARKET_CLOSE = time(16, 0)
_CALENDAR = MarketCalendar()


def _eastern(now: datetime) -> datetime:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(EASTERN)


def is_trading_day(day: date) -> bool:
    return _CALENDAR.is_trading_day(day)


def is_market_hours(now: datetime, open_: time = MARKET_OPEN, close: time = MARKET_CLOSE) -> bool:
    """True during the regular session of a weekday (US/Eastern)."""
    local = _eastern(now)
    if local.date() in _CALENDAR.early_closes:
        close = min(close, EARLY_CLOSE)
    return is_trading_day(local.date()) and open_ <= local.time() < close


def trading_day(now: datetime, close: time = MARKET_CLOSE) -> date:
    """The trading day a moment belongs to: today before the close, else the next weekday."""
    local = _eastern(now)
    day = local.date()
    if local.time() >= close:
        day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def end_of_trading_day(now: datetime, close: time = MARKET_CLOSE) -> datetime:
    """16:00 US/Eastern of the trading day `now` belongs to, as an aware UTC datetime."""
    day = trading_day(now, close)
    return datetime.combine(day, close, tzinfo=EASTERN).astimezone(UTC)
