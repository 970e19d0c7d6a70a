"""Institutional flow detection: Kinesis `flow` -> ifd function (zip + shared layer).

The ifd function does no XGBoost, so it stays a zip (fast cold start) on the shared layer.
Event source: per-shard order kept (parallelization factor 1, partition key = instrument),
partial batch failures reported by Powertools BatchProcessor, the batch bisected on error,
bounded retries and record age, and what still fails goes to the on-failure queue.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.functions import zip_function

BATCH_SIZE = 100
MAX_BATCHING_WINDOW_S = 2
RETRY_ATTEMPTS = 3
MAX_RECORD_AGE = Duration.hours(1)


class FlowDetection(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        stream: kinesis.IStream,
        failure_queue: sqs.IQueue,
        signals_table: ddb.ITable,
        state_table: ddb.ITable,
        idempotency_table: ddb.ITable,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = zip_function(
            self,
            "IfdFunction",
            code=code,
            handler="functions.ifd.handler.handler",
            layers=[layer],
            service="ifd",
            environment=environment,
            memory_size=512,
            timeout=Duration.seconds(60),
            description="magic8 ifd: pressure windows -> baselines -> signals -> SNS alerts",
        )
        self.event_source = sources.KinesisEventSource(
            stream,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=BATCH_SIZE,
            max_batching_window=Duration.seconds(MAX_BATCHING_WINDOW_S),
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=RETRY_ATTEMPTS,
            max_record_age=MAX_RECORD_AGE,
            parallelization_factor=1,
            on_failure=sources.SqsDlq(failure_queue),
        )
        self.function.add_event_source(self.event_source)
        for table in (signals_table, state_table, idempotency_table):
            table.grant_read_write_data(self.function)
        topic.grant_publish(self.function)
