"""The prediction service on the real adapters and the real model (the composition shared
by the predict and monitor functions, which read the same tables)."""

from __future__ import annotations

from typing import Any

from magic8.adapters.aws import client
from magic8.adapters.circuit import CircuitBreaker
from magic8.adapters.history_dynamo import DynamoHistoryRepository
from magic8.adapters.history_queue import QueuedHistoryRepository
from magic8.adapters.market_dynamo import DynamoMarketRepository
from magic8.adapters.resilient_market import ResilientMarketRepository
from magic8.adapters.xgb_native import load_hierarchy
from magic8.domain.ports import HistoryRepository
from magic8.domain.service import PredictionService, ServiceConfig


def build_prediction_service(settings: Any) -> PredictionService:
    """`settings` is an entry point's settings (ApiSettings, MonitorSettings, ...): it needs
    market_table, history_table and model_dir; service_config(), history_ttl_days and the
    market circuit settings are used when present."""
    make_config = getattr(settings, "service_config", None)
    config = make_config() if callable(make_config) else ServiceConfig()
    # clients are created here (the service is built in Lambda's init phase), not lazily;
    # every call of the service is on a request's path (API) or a sweep's: short budgets
    budget_s = float(getattr(settings, "history_write_budget_s", 1.0))
    table = DynamoHistoryRepository(
        settings.history_table,
        ttl_days=float(getattr(settings, "history_ttl_days", 30.0)),
        ddb=client("dynamodb", fast=True),
        write_budget_s=budget_s,
    )
    # with a history queue, a batch's points are one SendMessage (the history function
    # writes them); without one (tests, tools), the table directly
    queue_url = str(getattr(settings, "history_queue_url", "") or "")
    history: HistoryRepository = (
        QueuedHistoryRepository(queue_url, table, client("sqs", fast=True), budget_s)
        if queue_url
        else table
    )
    return PredictionService(
        # a failing market table degrades answers to the last good (stale) snapshots
        market_repo=ResilientMarketRepository(
            DynamoMarketRepository(settings.market_table, ddb=client("dynamodb", fast=True)),
            CircuitBreaker(
                "market-data",
                failure_threshold=int(getattr(settings, "market_circuit_failures", 3)),
                reset_timeout_s=float(getattr(settings, "market_circuit_reset_s", 15.0)),
            ),
        ),
        model=load_hierarchy(settings.model_dir),
        history_repo=history,
        config=config,
    )
