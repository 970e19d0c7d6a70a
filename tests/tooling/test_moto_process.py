"""The local emulator's housekeeping (TTL expiry, bounded shards) and its process."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from magic8_dev.local.moto_process import (
    ServiceLocks,
    expire_ttl_items,
    forget_tracked_instances,
    patch_moto,
    service_of,
    sweep,
    trim_kinesis,
)
from magic8_dev.local.moto_server import EmbeddedAws, PortTaken


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _ttl_table() -> Any:
    """Table "t" (key pk) with TTL on attribute exp, on the mocked AWS."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName="t", TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"}
    )
    return ddb


def test_expired_items_are_deleted_as_dynamodb_would(aws: None) -> None:
    ddb = _ttl_table()
    for pk, exp in (("old", "100"), ("new", "300")):
        ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "exp": {"N": exp}})
    ddb.put_item(TableName="t", Item={"pk": {"S": "no-ttl"}})
    assert expire_ttl_items(200.0, ServiceLocks()) == 1
    keys = sorted(i["pk"]["S"] for i in ddb.scan(TableName="t")["Items"])
    assert keys == ["new", "no-ttl"]


def test_old_records_leave_the_shard_and_numbering_goes_on(aws: None) -> None:
    patch_moto()
    kin = boto3.client("kinesis", region_name="us-east-1")
    kin.create_stream(StreamName="s", ShardCount=1)
    seqs = [
        kin.put_record(StreamName="s", Data=b"x", PartitionKey="k")["SequenceNumber"]
        for _ in range(5)
    ]
    from moto.kinesis.models import kinesis_backends

    (shard,) = kinesis_backends["123456789012"]["us-east-1"].streams["s"].shards.values()
    for i, record in enumerate(shard.records.values()):
        record.created_at = 1000.0 + i
    # retention 10 s at t=1013: records created before 1003 go, the newest always stays
    assert trim_kinesis(1013.0, 10.0, ServiceLocks()) == 3
    assert len(shard.records) == 2
    assert trim_kinesis(5000.0, 10.0, ServiceLocks()) == 1
    nxt = kin.put_record(StreamName="s", Data=b"y", PartitionKey="k")["SequenceNumber"]
    assert int(nxt) > int(seqs[-1])


def test_service_is_read_from_the_credential_scope() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    assert service_of({"HTTP_AUTHORIZATION": auth}) == "kinesis"
    assert service_of({"PATH_INFO": "/moto-api/reset"}) == "moto-api"


def test_a_taken_port_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortTaken, match=str(port)):
            EmbeddedAws(port)


def test_a_key_query_reads_its_partition_and_answers_as_before(aws: None) -> None:
    patch_moto()
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="h",
        KeySchema=[
            {"AttributeName": "series", "KeyType": "HASH"},
            {"AttributeName": "ts", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "series", "AttributeType": "S"},
            {"AttributeName": "ts", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for series in ("A", "B", "C"):
        for ts in range(30):
            ddb.put_item(TableName="h", Item={"series": {"S": series}, "ts": {"N": str(ts)}})
    got = ddb.query(
        TableName="h",
        KeyConditionExpression="series = :s AND ts BETWEEN :a AND :b",
        ExpressionAttributeValues={":s": {"S": "B"}, ":a": {"N": "5"}, ":b": {"N": "9"}},
        ScanIndexForward=False,
        Limit=3,
    )
    assert [(i["series"]["S"], i["ts"]["N"]) for i in got["Items"]] == [
        ("B", "9"),
        ("B", "8"),
        ("B", "7"),
    ]
    assert "LastEvaluatedKey" in got
    none = ddb.query(
        TableName="h",
        KeyConditionExpression="series = :s",
        ExpressionAttributeValues={":s": {"S": "Z"}},
    )
    assert none["Items"] == []
    assert len(ddb.scan(TableName="h")["Items"]) == 90  # scans still see every item


def test_dynamodb_requests_lock_the_tables_they_name() -> None:
    import json

    from magic8_dev.local.moto_process import dynamodb_tables

    assert dynamodb_tables(json.dumps({"TableName": "h", "Key": {}}).encode()) == ["h"]
    batch = {"RequestItems": {"b": [], "a": []}}
    assert dynamodb_tables(json.dumps(batch).encode()) == ["a", "b"]  # sorted: lock order
    transact = {"TransactItems": [{"Put": {"TableName": "x"}}, {"Update": {"TableName": "w"}}]}
    assert dynamodb_tables(json.dumps(transact).encode()) == ["w", "x"]
    assert dynamodb_tables(b"not json") == []


def test_replaced_trimmed_and_deleted_objects_are_freed(aws: None) -> None:
    """moto (5.2.5) lists every model object it creates for its dashboard: an overwritten
    item, a trimmed record and a deleted message stayed in memory for the emulator's whole
    life. After a sweep they are garbage; what is live still answers."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.sqs.models import sqs_backends

    patch_moto()
    account, region = "123456789012", "us-east-1"
    ddb = boto3.client("dynamodb", region_name=region)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    table = dynamodb_backends[account][region].tables["t"]
    first_item = weakref.ref(next(iter(table.items.values())))
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"N": "2"}})

    kin = boto3.client("kinesis", region_name=region)
    kin.create_stream(StreamName="s", ShardCount=1)
    for data in (b"old", b"new"):
        kin.put_record(StreamName="s", Data=data, PartitionKey="k")
    (shard,) = kinesis_backends[account][region].streams["s"].shards.values()
    first_record = weakref.ref(next(iter(shard.records.values())))

    sqs = boto3.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="done")
    message = weakref.ref(sqs_backends[account][region].queues["q"]._messages[0])
    (got,) = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])

    # trim with a clock far ahead: every record but the newest is past the retention
    assert trim_kinesis(shard.records[max(shard.records)].created_at + 1e6, 10.0, ServiceLocks())
    gc.collect()
    held = [ref for ref in (first_item, first_record, message) if ref() is not None]
    assert len(held) == 3, "moto no longer tracks its instances: the sweep may be unneeded"

    assert forget_tracked_instances() >= 3
    gc.collect()
    assert [ref() for ref in (first_item, first_record, message)] == [None, None, None]

    # the live state is untouched
    assert ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["v"] == {"N": "2"}
    it = kin.get_shard_iterator(
        StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [r["Data"] for r in kin.get_records(ShardIterator=it)["Records"]] == [b"new"]
    sqs.send_message(QueueUrl=url, MessageBody="next")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["next"]


def test_a_sweep_expires_trims_and_forgets(aws: None) -> None:
    ddb = _ttl_table()
    ddb.put_item(TableName="t", Item={"pk": {"S": "old"}, "exp": {"N": "100"}})
    done = sweep(200.0, ServiceLocks(), retention_s=600.0)
    assert done["ttl_items_deleted"] == 1
    assert done["kinesis_records_trimmed"] == 0
    assert done["tracked_instances_forgotten"] >= 2  # the table and its item, at least
    assert sweep(200.0, ServiceLocks(), retention_s=600.0)["tracked_instances_forgotten"] == 0


def test_messages_past_their_retention_and_sent_notifications_go(aws: None) -> None:
    from moto.sns.models import sns_backends
    from moto.sqs.models import sqs_backends

    account, region = "123456789012", "us-east-1"
    sqs = boto3.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName="alerts", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sns = boto3.client("sns", region_name=region)
    topic = sns.create_topic(Name="t")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{region}:{account}:alerts")
    for i in range(3):
        sns.publish(TopicArn=topic, Message=f"alert {i}")
    queue = sqs_backends[account][region].queues["alerts"]
    assert len(queue._messages) == 3
    sent_ms = [m.sent_timestamp for m in queue._messages]
    queue._messages[0].sent_timestamp = sent_ms[0] - 120_000  # two minutes old
    now = max(sent_ms) / 1000.0 + 1.0
    assert sweep(now, ServiceLocks(), retention_s=600.0)["sqs_messages_expired"] == 1
    assert len(queue._messages) == 2
    assert sns_backends[account][region].topics[topic].sent_notifications == []
    bodies = [
        m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert len(bodies) == 2
