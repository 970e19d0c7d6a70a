"""Lambda function defaults shared by every magic8 function."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.common import ack, log_group

POWERTOOLS_NAMESPACE = "magic8"


def powertools_env(service: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": POWERTOOLS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }


def acknowledge_function_role(fn: lambda_.Function) -> None:
    """The two findings every magic8 function role has, with their reasons."""
    ack(
        fn,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "The CDK-default Lambda execution policy only allows writing the function's own"
        " CloudWatch logs (CreateLogGroup/CreateLogStream/PutLogEvents).",
    )
    ack(
        fn,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords do not support"
        " resource-level permissions, so their resource must be '*'.",
    )


def image_function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.DockerImageCode,
    service: str,
    environment: dict[str, str],
    memory_size: int,
    timeout: Duration,
    description: str,
    reads: Sequence[ddb.ITable] = (),
    writes: Sequence[ddb.ITable] = (),
    publishes: Sequence[sns.ITopic] = (),
) -> lambda_.DockerImageFunction:
    """One function of the shared image, with exactly the data access it is given:
    read-only tables, read/write tables, topics it publishes to."""
    fn = lambda_.DockerImageFunction(
        scope,
        construct_id,
        code=code,
        description=description,
        architecture=lambda_.Architecture.X86_64,
        memory_size=memory_size,
        timeout=timeout,
        tracing=lambda_.Tracing.ACTIVE,
        environment={**environment, **powertools_env(service)},
        log_group=log_group(scope, f"{construct_id}Logs"),
    )
    acknowledge_function_role(fn)
    for table in reads:
        table.grant_read_data(fn)
    for table in writes:
        table.grant_read_write_data(fn)
    for topic in publishes:
        topic.grant_publish(fn)
    return fn
