"""The fault proxy injects the faults real AWS produces, and forwards everything else."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from magic8_dev.local.provision import LocalResources
from magic8_dev.resilience.fault_proxy import FaultProxy, FaultRule


@pytest.fixture()
def proxy(aws_resources: LocalResources, moto_server) -> FaultProxy:  # type: ignore[no-untyped-def]
    p = FaultProxy(moto_server.endpoint_url, seed=3).start()
    yield p
    p.stop()


def _client(service: str, proxy: FaultProxy, attempts: int = 1):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=proxy.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


def test_dynamodb_throttle_is_seen_by_boto3_and_retried(
    proxy: FaultProxy, aws_resources: LocalResources
) -> None:
    table = aws_resources.settings.market_table
    proxy.add(FaultRule("dynamodb", "GetItem", "throttle", remaining=2))
    no_retry = _client("dynamodb", proxy, attempts=1)
    with pytest.raises(ClientError) as err:
        no_retry.get_item(TableName=table, Key={"symbol": {"S": "SPX"}})
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    retrying = _client("dynamodb", proxy, attempts=5)
    assert "Item" not in retrying.get_item(TableName=table, Key={"symbol": {"S": "SPX"}})
    assert proxy.stats.injected["dynamodb:GetItem"] == 2
    assert proxy.stats.forwarded["dynamodb:GetItem"] == 1


def test_kinesis_partial_failure_forwards_only_accepted_entries(
    proxy: FaultProxy, aws_resources: LocalResources
) -> None:
    stream = aws_resources.settings.flow_stream
    proxy.add(FaultRule("kinesis", "PutRecords", "partial_failure"))
    kinesis = _client("kinesis", proxy)
    records = [{"Data": f"r{i}".encode(), "PartitionKey": str(i % 3)} for i in range(40)]
    resp = kinesis.put_records(StreamName=stream, Records=records)
    failed = resp["FailedRecordCount"]
    assert 0 < failed < 40
    assert sum(1 for r in resp["Records"] if "ErrorCode" in r) == failed
    # moto holds exactly the accepted entries
    direct = boto3.client("kinesis", region_name="us-east-1")
    shard = direct.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = direct.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    stored = direct.get_records(ShardIterator=it, Limit=1000)["Records"]
    assert len(stored) == 40 - failed


def test_sns_publish_server_error(proxy: FaultProxy, aws_resources: LocalResources) -> None:
    proxy.add(FaultRule("sns", "Publish", "server_error", remaining=1))
    sns = _client("sns", proxy)
    with pytest.raises(ClientError) as err:
        sns.publish(TopicArn=aws_resources.alerts_topic_arn, Message="x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert sns.publish(TopicArn=aws_resources.alerts_topic_arn, Message="y")["MessageId"]
