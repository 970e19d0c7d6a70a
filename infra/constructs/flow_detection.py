"""Institutional flow detection: Kinesis `flow` -> ifd function.

The ifd function runs from the shared Lambda container image (functions/Dockerfile,
CMD functions.ifd.handler.handler). It needs no XGBoost, but a zip on a layer assembled
offline from the project's .venv cannot work: that venv is CPython 3.11 and its numpy
wheel is manylinux_2_27/2_28, while Lambda's python3.11 runtime is Amazon Linux 2
(glibc 2.26) and the AL2023 runtimes (3.12+) need cp312+ wheels. The image installs the
right wheels at deploy (`cdk deploy` builds it), so synth stays offline. One shard and a
long-lived consumer make the image's slower cold start rare.
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

from infra.constructs.functions import IFD, SharedImage, image_function

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
        image: SharedImage,
        stream: kinesis.IStream,
        failure_queue: sqs.IQueue,
        signals_table: ddb.ITable,
        state_table: ddb.ITable,
        idempotency_table: ddb.ITable,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = image_function(
            self,
            "IfdFunction",
            IFD,
            image,
            writes=[signals_table, state_table, idempotency_table],
            publishes=[topic],
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
