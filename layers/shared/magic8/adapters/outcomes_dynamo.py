"""Trade outcomes in the state table: pk "outcome", sk "<closed_at UTC ISO>#<id>".

The sort key orders outcomes by close time, so a rolling window is one range query.
Outcomes are kept for `retention_days` (TTL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from magic8.adapters.aws import LazyDynamoClient
from magic8.adapters.watchlist_dynamo import query_all
from magic8.monitor.accuracy import Outcome

OUTCOME_PK = "outcome"


def _sort_ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DynamoOutcomeStore(LazyDynamoClient):
    def __init__(self, table_name: str, ddb: Any | None = None, retention_days: int = 400) -> None:
        super().__init__(table_name, ddb)
        self.retention_days = retention_days

    def add(self, outcome: Outcome) -> None:
        ttl = int(outcome.closed_at.timestamp()) + self.retention_days * 86400
        self.ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": OUTCOME_PK},
                "sk": {"S": f"{_sort_ts(outcome.closed_at)}#{outcome.id}"},
                "doc": {"S": outcome.model_dump_json()},
                "expires_at": {"N": str(ttl)},
            },
        )

    def list_since(self, since: datetime) -> list[Outcome]:
        items = query_all(
            self.ddb,
            self.table,
            OUTCOME_PK,
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={":since": {"S": _sort_ts(since)}},
        )
        return [Outcome.model_validate_json(i["doc"]["S"]) for i in items]
