"""Composition root of λ history: the history table's writer."""

from __future__ import annotations

from functions.history.settings import HistorySettings
from magic8.adapters.aws import client
from magic8.adapters.history_dynamo import DynamoHistoryRepository


def build() -> DynamoHistoryRepository:
    settings = HistorySettings()
    return DynamoHistoryRepository(
        settings.history_table, ttl_days=settings.history_ttl_days, ddb=client("dynamodb")
    )
