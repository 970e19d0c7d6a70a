"""Watchlist entries and the sweep's state as items in the state table.

Items: watchlist entries at pk "watch", sk <entry id>, the entry as JSON in `doc`,
`expires_at` (epoch s TTL = the end of the entry's trading day). The sweep state (last
score per trade, open stale-gateway incident) is one item at pk "monitor",
sk "sweep_state". DynamoDB deletes expired items within ~48 h and moto never does, so
reads filter expired entries themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from magic8.adapters.aws import LazyDynamoClient
from magic8.monitor.sweep import SweepState
from magic8.monitor.watchlist import WatchlistEntry

WATCH_PK = "watch"
MONITOR_PK = "monitor"
SWEEP_STATE_SK = "sweep_state"


def put_doc(ddb: Any, table: str, pk: str, sk: str, doc: BaseModel, expires_at: int) -> None:
    """One pydantic document as an item of the state table (pk, sk, doc JSON, TTL)."""
    ddb.put_item(
        TableName=table,
        Item={
            "pk": {"S": pk},
            "sk": {"S": sk},
            "doc": {"S": doc.model_dump_json()},
            "expires_at": {"N": str(expires_at)},
        },
    )


def query_all(ddb: Any, table: str, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of one partition (follows LastEvaluatedKey)."""
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        **kwargs,
    }
    if "ExpressionAttributeValues" in kwargs:
        params["ExpressionAttributeValues"] = {
            ":pk": {"S": pk},
            **kwargs["ExpressionAttributeValues"],
        }
    while True:
        page = ddb.query(**params)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class DynamoWatchlistStore(LazyDynamoClient):
    """WatchlistStore over the state table."""

    def add(self, entry: WatchlistEntry) -> None:
        put_doc(self.ddb, self.table, WATCH_PK, entry.id, entry, entry.ttl_epoch())

    def get(self, entry_id: str) -> WatchlistEntry | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": WATCH_PK}, "sk": {"S": entry_id}}
        ).get("Item")
        return WatchlistEntry.model_validate_json(item["doc"]["S"]) if item else None

    def list_active(self, now: datetime) -> list[WatchlistEntry]:
        entries = [
            WatchlistEntry.model_validate_json(item["doc"]["S"])
            for item in query_all(
                self.ddb,
                self.table,
                WATCH_PK,
                FilterExpression="expires_at > :now",
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}},
            )
        ]
        active = [e for e in entries if e.is_active(now)]
        return sorted(active, key=lambda e: (e.created_at, e.id))

    def remove(self, entry_id: str) -> bool:
        old = self.ddb.delete_item(
            TableName=self.table,
            Key={"pk": {"S": WATCH_PK}, "sk": {"S": entry_id}},
            ReturnValues="ALL_OLD",
        ).get("Attributes")
        return bool(old)


class DynamoSweepStateStore(LazyDynamoClient):
    """SweepStateStore: one JSON item read and written once per sweep."""

    def load(self) -> SweepState:
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": MONITOR_PK}, "sk": {"S": SWEEP_STATE_SK}},
            ConsistentRead=True,
        ).get("Item")
        return SweepState.model_validate_json(item["doc"]["S"]) if item else SweepState()

    def save(self, state: SweepState) -> None:
        self.ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": MONITOR_PK},
                "sk": {"S": SWEEP_STATE_SK},
                "doc": {"S": state.model_dump_json()},
            },
        )
