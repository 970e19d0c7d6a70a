"""US equity-options trading hours (America/New_York), without an exchange-holiday table.

Regular session 09:30-16:00 ET, Monday to Friday. Exchange holidays are not modelled:
on a holiday the stale-gateway check runs as on any weekday (a gateway that is down on a
holiday is still worth one alert).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
MARKET_OPEN = time(9, 30)
MARKET_CLOSE = time(16, 0)


def _eastern(now: datetime) -> datetime:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(EASTERN)


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5


def is_market_hours(now: datetime, open_: time = MARKET_OPEN, close: time = MARKET_CLOSE) -> bool:
    """True during the regular session of a weekday (US/Eastern)."""
    local = _eastern(now)
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
