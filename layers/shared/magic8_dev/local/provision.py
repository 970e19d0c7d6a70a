"""Create the tables, stream, topic and queues from magic8.resources on the local endpoint."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from magic8 import resources as r
from magic8.adapters.aws import client
from magic8.settings import AwsSettings

LOCAL_ALERTS_RETENTION_S = 3600


@dataclass(frozen=True)
class LocalResources:
    settings: AwsSettings
    alerts_topic_arn: str
    ifd_failure_queue_url: str
    alerts_queue_url: str
    ifd_failure_queue_arn: str
    # not in env(): the local runtime's history poller turns the queue path on
    history_queue_url: str = ""
    history_dlq_url: str = ""

    def env(self) -> dict[str, str]:
        """Environment the handlers need to find these resources."""
        s = self.settings
        return {
            r.MARKET_TABLE.env_var: s.market_table,
            r.HISTORY_TABLE.env_var: s.history_table,
            r.SIGNALS_TABLE.env_var: s.signals_table,
            r.STATE_TABLE.env_var: s.state_table,
            r.IDEMPOTENCY_TABLE.env_var: s.idempotency_table,
            r.BARS_TABLE.env_var: s.bars_table,
            r.FLOW_STREAM.env_var: s.flow_stream,
            r.ALERTS_TOPIC.env_var: self.alerts_topic_arn,
            r.IFD_FAILURE_QUEUE.env_var: self.ifd_failure_queue_url,
            r.ALERTS_SUBSCRIBER_QUEUE.env_var: self.alerts_queue_url,
        }


def _table_name(settings: AwsSettings, spec: r.TableSpec) -> str:
    return {
        r.MARKET_TABLE.logical_id: settings.market_table,
        r.HISTORY_TABLE.logical_id: settings.history_table,
        r.SIGNALS_TABLE.logical_id: settings.signals_table,
        r.STATE_TABLE.logical_id: settings.state_table,
        r.IDEMPOTENCY_TABLE.logical_id: settings.idempotency_table,
        r.BARS_TABLE.logical_id: settings.bars_table,
    }[spec.logical_id]


def create_table(ddb: object, name: str, spec: r.TableSpec) -> None:
    kwargs: dict[str, object] = {
        "TableName": name,
        "KeySchema": spec.key_schema(),
        "AttributeDefinitions": spec.attribute_definitions(),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": ix.name,
                "KeySchema": [{"AttributeName": ix.partition_key.name, "KeyType": "HASH"}]
                + (
                    [{"AttributeName": ix.sort_key.name, "KeyType": "RANGE"}] if ix.sort_key else []
                ),
                "Projection": {"ProjectionType": "ALL"},
            }
            for ix in spec.indexes
        ]
    try:
        ddb.create_table(**kwargs)  # type: ignore[attr-defined]
    except ddb.exceptions.ResourceInUseException:  # type: ignore[attr-defined]
        return
    if spec.ttl_attribute:
        ddb.update_time_to_live(  # type: ignore[attr-defined]
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )


def provision(settings: AwsSettings | None = None) -> LocalResources:
    """Idempotently create every resource; returns names/ARNs/URLs for the handlers."""
    settings = settings or AwsSettings()
    ddb = client("dynamodb")
    for spec in r.TABLES:
        create_table(ddb, _table_name(settings, spec), spec)

    kinesis = client("kinesis")
    with contextlib.suppress(kinesis.exceptions.ResourceInUseException):
        kinesis.create_stream(StreamName=settings.flow_stream, ShardCount=r.FLOW_STREAM.shard_count)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=settings.flow_stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )

    sqs = client("sqs")
    failure_url = sqs.create_queue(QueueName=r.local_name(r.IFD_FAILURE_QUEUE.logical_id))[
        "QueueUrl"
    ]
    # nobody reads the alerts subscriber queue locally: keep an hour of alerts (AWS: 4 days),
    # the emulator's housekeeping deletes older ones as SQS does
    alerts_url = sqs.create_queue(
        QueueName=r.local_name(r.ALERTS_SUBSCRIBER_QUEUE.logical_id),
        Attributes={"MessageRetentionPeriod": str(LOCAL_ALERTS_RETENTION_S)},
    )["QueueUrl"]
    failure_arn = sqs.get_queue_attributes(QueueUrl=failure_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    history_dlq_url = sqs.create_queue(QueueName=r.local_name(r.HISTORY_DLQ.logical_id))["QueueUrl"]
    history_dlq_arn = sqs.get_queue_attributes(
        QueueUrl=history_dlq_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    history_url = sqs.create_queue(
        QueueName=r.local_name(r.HISTORY_QUEUE.logical_id),
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": history_dlq_arn, "maxReceiveCount": r.HISTORY_MAX_RECEIVES}
            ),
        },
    )["QueueUrl"]

    sns = client("sns")
    topic_arn = sns.create_topic(Name=r.local_name(r.ALERTS_TOPIC.logical_id))["TopicArn"]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Endpoint"] == alerts_arn for s in subs):
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=alerts_arn,
            Attributes={"RawMessageDelivery": "false"},
        )
    # Allow the topic to deliver to the queue (moto does not enforce it; AWS would).
    sqs.set_queue_attributes(
        QueueUrl=alerts_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": alerts_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                        }
                    ],
                }
            )
        },
    )
    return LocalResources(
        settings=settings,
        alerts_topic_arn=topic_arn,
        ifd_failure_queue_url=failure_url,
        alerts_queue_url=alerts_url,
        ifd_failure_queue_arn=failure_arn,
        history_queue_url=history_url,
        history_dlq_url=history_dlq_url,
    )
