"""Writes magic8/data/nyse_sessions.json (XNYS) and magic8/data/cme_sessions.json (CMES,
CME Globex: the NQ futures and options) from exchange_calendars: every weekday the
exchange is closed and every early close, for a span of years. The runtime
(magic8.market_hours) reads the JSON, so the images need no pandas; tests check the files
match the library. Re-run after upgrading exchange_calendars:

    .venv/bin/python -m magic8_dev.calendar            # 2020..2035, both files
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "magic8" / "data" / "nyse_sessions.json"
CME_OUT = OUT.with_name("cme_sessions.json")
CME_REGULAR_CLOSE = "16:00"  # CT: the equity index daily halt (the calendar says 17:00)


def weekday_holidays(cal: Any, start: date, end: date) -> list[str]:
    """Weekdays in [start, end] on which the exchange calendar has no session (ISO)."""
    sessions = {ts.date() for ts in cal.sessions}
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [d.isoformat() for d in days if d.weekday() < 5 and d not in sessions]


def _table(
    calendar: str, first_year: int, last_year: int, holidays: list[str], early: dict[str, Any]
) -> dict[str, Any]:
    """The JSON table: its source, years, weekday holidays and early closes (sorted)."""
    return {
        "source": f"exchange_calendars {version('exchange-calendars')} {calendar}",
        "first_year": first_year,
        "last_year": last_year,
        "holidays": holidays,
        **{key: dict(sorted(days.items())) for key, days in early.items()},
    }


def build(first_year: int = 2020, last_year: int = 2035) -> dict[str, Any]:
    import exchange_calendars as xcals

    start, end = date(first_year, 1, 1), date(last_year, 12, 31)
    cal = xcals.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
    holidays = weekday_holidays(cal, start, end)
    early = {}
    for session in cal.early_closes:
        close = cal.session_close(session).tz_convert("America/New_York")
        early[session.date().isoformat()] = close.strftime("%H:%M")
    return _table("XNYS", first_year, last_year, holidays, {"early_closes": early})


def build_cme(first_year: int = 2020, last_year: int = 2035) -> dict[str, Any]:
    """CME Globex (CMES): weekdays with no session, and sessions closing before the
    16:00 CT equity halt (close in CT). Every session opens at 17:00 CT the evening before
    (checked here: the runtime relies on it)."""
    import warnings
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    import exchange_calendars as xcals

    ct = ZoneInfo("America/Chicago")
    start, end = date(first_year, 1, 1), date(last_year, 12, 31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("CMES", start=start.isoformat(), end=end.isoformat())
    holidays = weekday_holidays(cal, start, end)
    early = {}
    for session in cal.sessions:
        d = session.date()
        opened = cal.session_open(session).tz_convert(ct).to_pydatetime()
        expected = datetime.combine(d - timedelta(days=1), time(17, 0), tzinfo=ct)
        if opened != expected:  # pragma: no cover - not so in 4.x
            raise ValueError(f"CMES {d}: opens {opened}, not 17:00 CT the evening before")
        close = cal.session_close(session).tz_convert(ct).strftime("%H:%M")
        if close < CME_REGULAR_CLOSE:
            early[d.isoformat()] = close
    return _table("CMES", first_year, last_year, holidays, {"early_closes_ct": early})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-year", type=int, default=2020)
    parser.add_argument("--last-year", type=int, default=2035)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cme-out", type=Path, default=CME_OUT)
    args = parser.parse_args(argv)
    data = build(args.first_year, args.last_year)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{args.out}: {len(data['holidays'])} holidays, {len(data['early_closes'])} early closes")
    cme = build_cme(args.first_year, args.last_year)
    args.cme_out.write_text(json.dumps(cme, indent=1) + "\n")
    n_early = len(cme["early_closes_ct"])
    print(f"{args.cme_out}: {len(cme['holidays'])} holidays, {n_early} early closes")


if __name__ == "__main__":
    main()
