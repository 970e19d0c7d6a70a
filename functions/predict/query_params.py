"""Query-parameter checks shared by the read routes (/signals, /nq/bars): a 422 that names
the parameter, as FastAPI's own validation does."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.exceptions import RequestValidationError

MIN_TIME = datetime(1970, 1, 2, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def invalid(field: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": msg, "type": "value_error"}])


def utc_param(ts: datetime, field: str) -> datetime:
    """The time in UTC (naive = UTC), or a 422 naming `field` outside 1970-01-02..2100."""
    try:
        out = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise invalid(field, f"not a representable time: {exc}") from exc
    if not MIN_TIME <= out <= MAX_TIME:
        raise invalid(field, "must be between 1970-01-02 and 2100-01-01")
    return out
