"""Writes magic8/data/nyse_sessions.json from exchange_calendars (XNYS): every weekday the
exchange is closed and every early close, for a span of years. The runtime
(magic8.market_hours) reads the JSON, so the images need no pandas; tests check the file
matches the library. Re-run after upgrading exchange_calendars:

    .venv/bin/python -m magic8_dev.calendar            # 2020..2035
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "magic8" / "data" / "nyse_sessions.json"


def build(first_year: int = 2020, last_year: int = 2035) -> dict[str, Any]:
    import exchange_calendars as xcals

    start, end = date(first_year, 1, 1), date(last_year, 12, 31)
    cal = xcals.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
    sessions = {ts.date() for ts in cal.sessions}
    holidays = []
    day = start
    while day <= end:
        if day.weekday() < 5 and day not in sessions:
            holidays.append(day.isoformat())
        day += timedelta(days=1)
    early = {}
    for session in cal.early_closes:
        close = cal.session_close(session).tz_convert("America/New_York")
        early[session.date().isoformat()] = close.strftime("%H:%M")
    return {
        "source": f"exchange_calendars {version('exchange-calendars')} XNYS",
        "first_year": first_year,
        "last_year": last_year,
        "holidays": holidays,
        "early_closes": dict(sorted(early.items())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first-year", type=int, default=2020)
    parser.add_argument("--last-year", type=int, default=2035)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = build(args.first_year, args.last_year)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{args.out}: {len(data['holidays'])} holidays, {len(data['early_closes'])} early closes")


if __name__ == "__main__":
    main()
