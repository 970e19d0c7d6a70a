"""Typed configuration, parsed once at each entry point.

Every entry point (a Lambda handler, the gateway host, a CLI command) builds exactly one
settings object from the environment when it starts serving, never at import time.
Resource names default to the embedded-default names (see magic8.resources.local_name),
so the local runtime needs no configuration; the CDK app sets the real ones.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from magic8 import resources as r
from magic8.domain import validation

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODEL_DIR = REPO_ROOT / "models"


class AwsSettings(BaseSettings):
    """Names of the shared AWS resources. Env vars: MAGIC8_MARKET_TABLE, ..."""

    model_config = SettingsConfigDict(env_prefix="MAGIC8_", extra="ignore", frozen=True)

    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # boto3 honours AWS_ENDPOINT_URL itself; kept here so code can report where it talks to
    endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    market_table: str = r.local_name(r.MARKET_TABLE.logical_id)
    history_table: str = r.local_name(r.HISTORY_TABLE.logical_id)
    signals_table: str = r.local_name(r.SIGNALS_TABLE.logical_id)
    state_table: str = r.local_name(r.STATE_TABLE.logical_id)
    idempotency_table: str = r.local_name(r.IDEMPOTENCY_TABLE.logical_id)
    bars_table: str = r.local_name(r.BARS_TABLE.logical_id)
    flow_stream: str = r.local_name(r.FLOW_STREAM.logical_id)
    alerts_topic_arn: str = ""
    ifd_failure_queue_url: str = ""
    alerts_queue_url: str = ""
    # the history queue (MAGIC8_HISTORY_QUEUE_URL): the API hands history points to it in
    # one SendMessage and the history function writes them; empty = write the table directly
    history_queue_url: str = ""
    # plausible time range of every timestamp that comes in (API, flow records, DBN files)
    plausible_since: date = date(2000, 1, 1)
    plausible_future_days: int = Field(default=366, ge=1, le=36_600)

    def model_post_init(self, context: Any, /) -> None:
        validation.configure(self.plausible_since, timedelta(days=self.plausible_future_days))
