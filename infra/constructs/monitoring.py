"""The 5-minute monitoring sweep: the monitor function on EventBridge rate(5 minutes).

The monitor runs the same prediction service as the API (no HTTP call to itself), so it
ships in the predict container image with a different CMD: one image to build and scan.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.common import failure_queue
from infra.constructs.functions import MONITOR, SharedImage, image_function

SWEEP_EVERY = Duration.minutes(5)


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: SharedImage,
        read_tables: list[ddb.ITable],
        write_tables: list[ddb.ITable],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = image_function(
            self,
            "MonitorFunction",
            MONITOR,
            image,
            reads=read_tables,
            writes=write_tables,
            publishes=[topic],
        )
        # A late sweep is superseded by the next one: no async retries piling up; a sweep
        # that fails (or expires) is recorded in an on-failure queue, never silently lost.
        self.failure_queue = failure_queue(
            self,
            "MonitorFailureQueue",
            "the monitor's asynchronous invocations (failed sweeps' records)",
        )
        self.function.configure_async_invoke(
            retry_attempts=0,
            max_event_age=Duration.minutes(4),
            on_failure=destinations.SqsDestination(self.failure_queue),
        )

        self.rule = events.Rule(
            self,
            "Schedule",
            description="magic8 monitoring sweep",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[
                targets.LambdaFunction(
                    self.function, retry_attempts=2, max_event_age=Duration.minutes(4)
                )
            ],
        )
