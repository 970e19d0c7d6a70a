"""The trader dashboard: static assets (no build step, no CDN), local or on S3 + CloudFront.

`static/` holds index.html, app.js and style.css. The page reads its configuration from
`config.js` (``window.MAGIC8_CONFIG = {...}``) or, if that is absent, `config.json` next to the
assets. Locally the dashboard server generates it; in AWS the deployment writes it
(see `render_config_js` / `config_payload`).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"


def config_payload(
    api_base: str,
    ws_url: str = "",
    api_key: str = "",
    poll_seconds: float = 5,
    underlying: str = "",
    history_hours: float = 24,
    api_key_via_proxy: bool = False,
    signals_range: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The dashboard's runtime configuration (the keys app.js reads).

    `api_key` belongs only in a config served to the local machine; in AWS leave it empty
    and let the CDN origin (or a proxy) add the key, so it never ships in public assets
    (`api_key_via_proxy=True`), or let the page ask the trader for it (kept in localStorage).
    `signals_range` (ISO since, until): where IFD signals live when the flow is a replay of a
    recorded session (its real timestamps); without it the page reads the last 24 hours.
    """
    out: dict[str, Any] = {
        "apiBase": api_base.rstrip("/"),
        "apiKey": api_key,
        "wsUrl": ws_url,
        "pollSeconds": poll_seconds,
        "underlying": underlying,
        "historyHours": history_hours,
        "apiKeyViaProxy": api_key_via_proxy,
    }
    if signals_range is not None:
        out["signalsFrom"], out["signalsTo"] = signals_range
    return out


def session_days(paths: list[Path]) -> list[date]:
    """Trading days of replayed labelled sessions: their `day-YYYY-MM-DD/` folders."""
    days: list[date] = []
    for path in paths:
        folders = [path] if path.name.startswith("day-") else []
        if path.is_dir():
            folders += [p for p in path.iterdir() if p.is_dir() and p.name.startswith("day-")]
        for folder in folders:
            try:
                days.append(date.fromisoformat(folder.name.removeprefix("day-")))
            except ValueError:
                continue
    return sorted(set(days))


def replay_signals_range(paths: list[Path]) -> tuple[str, str] | None:
    """(since, until) covering the replayed sessions' windows, or None if no day is known."""
    days = session_days(paths)
    if not days:
        return None
    since = datetime.combine(days[0], time(0), tzinfo=UTC)
    until = datetime.combine(days[-1] + timedelta(days=2), time(0), tzinfo=UTC)
    return since.isoformat(), until.isoformat()


def render_config_js(config: dict[str, Any]) -> str:
    """config.js for the page: one global assignment, JSON-encoded (no code from data)."""
    body = json.dumps(config, sort_keys=True).replace("</", "<\\/")
    return f"window.MAGIC8_CONFIG = {body};\n"
