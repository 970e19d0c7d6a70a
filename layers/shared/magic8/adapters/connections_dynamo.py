"""WebSocket connections in the state table: pk "ws#conn", sk <connection id>.

`doc` holds the connection (subscribed symbols and strategy filters, connected_at) as JSON;
`expires_at` is a TTL a little past API Gateway's 2-hour maximum connection duration, so
connections that vanished without a $disconnect are cleaned up. Reads filter expired items (moto).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from magic8.adapters.aws import LazyDynamoClient
from magic8.adapters.watchlist_dynamo import put_doc, query_all
from magic8.monitor.push import Connection

CONN_PK = "ws#conn"
CONNECTION_TTL_S = 2 * 3600 + 600


class DynamoConnectionStore(LazyDynamoClient):
    def _put(self, connection: Connection) -> None:
        ttl = int(connection.connected_at.timestamp()) + CONNECTION_TTL_S
        put_doc(self.ddb, self.table, CONN_PK, connection.connection_id, connection, ttl)

    def add(self, connection: Connection) -> None:
        self._put(connection)

    def put(self, connection: Connection) -> None:
        self._put(connection)

    def count(self) -> int:
        """Open connections (expired items excluded): one Query reading only expires_at."""
        now = int(time.time())
        items = query_all(
            self.ddb,
            self.table,
            CONN_PK,
            ProjectionExpression="#e",
            ExpressionAttributeNames={"#e": "expires_at"},
        )
        return sum(1 for item in items if int(item.get("expires_at", {}).get("N", now + 1)) > now)

    def get(self, connection_id: str) -> Connection | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": CONN_PK}, "sk": {"S": connection_id}}
        ).get("Item")
        return Connection.model_validate_json(item["doc"]["S"]) if item else None

    def set_symbols(self, connection_id: str, symbols: Iterable[str]) -> None:
        current = self.get(connection_id) or Connection(connection_id=connection_id)
        self._put(current.model_copy(update={"symbols": frozenset(symbols)}))

    def remove(self, connection_id: str) -> None:
        self.ddb.delete_item(
            TableName=self.table, Key={"pk": {"S": CONN_PK}, "sk": {"S": connection_id}}
        )

    def list_all(self) -> list[Connection]:
        now = int(time.time())
        return [
            Connection.model_validate_json(item["doc"]["S"])
            for item in query_all(self.ddb, self.table, CONN_PK)
            if int(item.get("expires_at", {}).get("N", now + 1)) > now
        ]
