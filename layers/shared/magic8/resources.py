"""Definitions of the AWS resources magic8 uses.

The CDK app (infra/) and the local runtime (magic8_dev.local.provision) both build their
tables, stream, topic and queues from these definitions, so the two cannot drift.
Logical names are stable; physical names are chosen by CDK in AWS and by
`local_name()` on the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AttrType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class KeyAttr:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: KeyAttr
    sort_key: KeyAttr | None = None


@dataclass(frozen=True)
class TableSpec:
    """One DynamoDB table: logical id, keys, TTL attribute, global secondary indexes."""

    logical_id: str
    partition_key: KeyAttr
    sort_key: KeyAttr | None = None
    ttl_attribute: str | None = None
    indexes: tuple[IndexSpec, ...] = field(default_factory=tuple)
    env_var: str = ""
    purpose: str = ""

    def attribute_definitions(self) -> list[dict[str, str]]:
        attrs: dict[str, str] = {}
        for key in (self.partition_key, self.sort_key):
            if key:
                attrs[key.name] = key.type
        for index in self.indexes:
            for key in (index.partition_key, index.sort_key):
                if key:
                    attrs[key.name] = key.type
        return [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.partition_key.name, "KeyType": "HASH"}]
        if self.sort_key:
            schema.append({"AttributeName": self.sort_key.name, "KeyType": "RANGE"})
        return schema


MARKET_TABLE = TableSpec(
    logical_id="MarketTable",
    partition_key=KeyAttr("symbol"),
    ttl_attribute="expires_at",
    env_var="MAGIC8_MARKET_TABLE",
    purpose="one market snapshot per symbol (quotes + 5-minute bars), written by the gateway",
)

HISTORY_TABLE = TableSpec(
    logical_id="HistoryTable",
    partition_key=KeyAttr("series"),  # "<SYMBOL>#<Strategy>"
    sort_key=KeyAttr("ts", "N"),  # epoch milliseconds
    ttl_attribute="expires_at",
    env_var="MAGIC8_HISTORY_TABLE",
    purpose="confidence history per symbol x strategy",
)

SIGNALS_TABLE = TableSpec(
    logical_id="SignalsTable",
    partition_key=KeyAttr("underlying"),
    sort_key=KeyAttr("signal_id"),  # "<window_end ISO>#<strike>#<C|P>" sorts by time
    ttl_attribute="expires_at",
    indexes=(IndexSpec("by_day", KeyAttr("day"), KeyAttr("signal_id")),),
    env_var="MAGIC8_SIGNALS_TABLE",
    purpose="IFD signals (confidence >= store threshold), queryable by underlying and time",
)

STATE_TABLE = TableSpec(
    logical_id="StateTable",
    partition_key=KeyAttr("pk"),
    sort_key=KeyAttr("sk"),
    ttl_attribute="expires_at",
    env_var="MAGIC8_STATE_TABLE",
    purpose=(
        "small mutable state: gateway heartbeat, backfill budget, IFD baselines, alert rate"
        " counters, watchlist, outcomes, crossing state, WebSocket connections"
    ),
)

IDEMPOTENCY_TABLE = TableSpec(
    logical_id="IdempotencyTable",
    partition_key=KeyAttr("id"),
    ttl_attribute="expiration",
    env_var="MAGIC8_IDEMPOTENCY_TABLE",
    purpose="Powertools idempotency records (one alert per signal under redelivery)",
)

BARS_TABLE = TableSpec(
    logical_id="BarsTable",
    partition_key=KeyAttr("symbol"),  # "NQ": the futures front month
    sort_key=KeyAttr("ts", "N"),  # the bar's open time, epoch milliseconds
    ttl_attribute="expires_at",
    env_var="MAGIC8_BARS_TABLE",
    purpose="5-minute OHLCV bars of the NQ futures front month, written by the gateway",
)

TABLES: tuple[TableSpec, ...] = (
    MARKET_TABLE,
    HISTORY_TABLE,
    SIGNALS_TABLE,
    STATE_TABLE,
    IDEMPOTENCY_TABLE,
    BARS_TABLE,
)


@dataclass(frozen=True)
class StreamSpec:
    logical_id: str
    shard_count: int
    retention_hours: int
    env_var: str


FLOW_STREAM = StreamSpec(
    "FlowStream", shard_count=1, retention_hours=48, env_var="MAGIC8_FLOW_STREAM"
)


@dataclass(frozen=True)
class TopicSpec:
    logical_id: str
    env_var: str
    # message attributes every publication carries, for subscription filter policies
    message_attributes: tuple[str, ...] = ("kind", "symbol", "severity")


ALERTS_TOPIC = TopicSpec("AlertsTopic", env_var="MAGIC8_ALERTS_TOPIC_ARN")


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    env_var: str
    purpose: str


IFD_FAILURE_QUEUE = QueueSpec(
    "IfdFailureQueue",
    env_var="MAGIC8_IFD_FAILURE_QUEUE_URL",
    purpose="on-failure destination of the Kinesis -> ifd event source",
)
ALERTS_SUBSCRIBER_QUEUE = QueueSpec(
    "AlertsSubscriberQueue",
    env_var="MAGIC8_ALERTS_QUEUE_URL",
    purpose="SQS subscription of the alerts topic for programmatic consumers",
)
HISTORY_QUEUE = QueueSpec(
    "HistoryQueue",
    env_var="MAGIC8_HISTORY_QUEUE_URL",
    purpose="confidence history points of each answered batch (one message), for λ history",
)
HISTORY_DLQ = QueueSpec(
    "HistoryDeadLetterQueue",
    env_var="MAGIC8_HISTORY_DLQ_URL",
    purpose="history messages that failed HISTORY_MAX_RECEIVES times",
)
HISTORY_MAX_RECEIVES = 5
QUEUES: tuple[QueueSpec, ...] = (
    IFD_FAILURE_QUEUE,
    ALERTS_SUBSCRIBER_QUEUE,
    HISTORY_QUEUE,
    HISTORY_DLQ,
)


def local_name(logical_id: str, prefix: str = "magic8") -> str:
    """Physical name on the embedded default: 'MarketTable' -> 'magic8-market'."""
    base = logical_id
    for suffix in ("Table", "Stream", "Topic", "Queue"):
        if base.endswith(suffix) and base != suffix:
            base = base[: -len(suffix)]
            break
    out = []
    for i, ch in enumerate(base):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return f"{prefix}-{''.join(out)}"
