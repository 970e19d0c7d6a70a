"""Reading what reached a (moto) Kinesis stream, for tests that count delivered windows."""

from __future__ import annotations

from typing import Any


def kinesis_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard, oldest first per shard (raw GetRecords entries)."""
    out: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            out += resp["Records"]
            if not resp["Records"] or resp.get("MillisBehindLatest", 0) == 0:
                break
            it = resp.get("NextShardIterator")
    return out
