"""Typed configuration of the history function (env MAGIC8_*), parsed once per container."""

from __future__ import annotations

from pydantic import Field

from magic8.settings import AwsSettings


class HistorySettings(AwsSettings):
    """The history table (MAGIC8_HISTORY_TABLE) and its retention (MAGIC8_HISTORY_TTL_DAYS)."""

    history_ttl_days: float = Field(default=30.0, gt=0)
