from __future__ import annotations

import json

from magic8 import resources as r
from magic8.adapters.aws import client
from magic8_dev.local.provision import LocalResources, provision


def test_every_table_exists_with_its_keys_and_ttl(aws_resources: LocalResources) -> None:
    ddb = client("dynamodb")
    names = set(ddb.list_tables()["TableNames"])
    for spec in r.TABLES:
        name = r.local_name(spec.logical_id)
        assert name in names
        desc = ddb.describe_table(TableName=name)["Table"]
        assert desc["KeySchema"] == spec.key_schema()
        if spec.ttl_attribute:
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert ttl["AttributeName"] == spec.ttl_attribute


def test_provision_is_idempotent(aws_resources: LocalResources) -> None:
    again = provision(aws_resources.settings)
    assert again.alerts_topic_arn == aws_resources.alerts_topic_arn
    subs = client("sns").list_subscriptions_by_topic(TopicArn=again.alerts_topic_arn)
    assert len(subs["Subscriptions"]) == 1


def test_alert_topic_delivers_to_subscriber_queue(aws_resources: LocalResources) -> None:
    client("sns").publish(
        TopicArn=aws_resources.alerts_topic_arn,
        Message=json.dumps({"hello": 1}),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "ifd_signal"}},
    )
    msgs = (
        client("sqs")
        .receive_message(QueueUrl=aws_resources.alerts_queue_url, WaitTimeSeconds=1)
        .get("Messages", [])
    )
    assert len(msgs) == 1
    body = json.loads(msgs[0]["Body"])
    assert json.loads(body["Message"]) == {"hello": 1}
    assert body["MessageAttributes"]["kind"]["Value"] == "ifd_signal"


def test_local_names_are_stable() -> None:
    assert r.local_name("MarketTable") == "magic8-market"
    assert r.local_name("IfdFailureQueue") == "magic8-ifd-failure"
    assert r.local_name("FlowStream") == "magic8-flow"
