"""Lambda function defaults shared by every magic8 function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

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


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between magic8's functions: the handler (the image's CMD), the
    Powertools service name, size, time limit and description."""

    service: str
    cmd: tuple[str, ...]
    memory_size: int
    timeout: Duration
    description: str


# every function of the shared image, in one table
PREDICT = FunctionSpec(
    "predict",
    ("functions.predict.handler.handler",),
    2048,
    Duration.seconds(29),
    "magic8 predict: FastAPI via Mangum, XGBoost hierarchy, 3-tier cache",
)
MONITOR = FunctionSpec(
    "monitor",
    ("functions.monitor.handler.handler",),
    2048,
    Duration.seconds(120),
    "magic8 monitor: watchlist sweep, confidence crossings, stale gateway",
)
IFD = FunctionSpec(
    "ifd",
    ("functions.ifd.handler.handler",),
    512,
    Duration.seconds(60),
    "magic8 ifd: pressure windows -> baselines -> signals -> SNS alerts",
)
WEBSOCKET = FunctionSpec(
    "websocket",
    ("functions.websocket.handler.handler",),
    256,
    Duration.seconds(10),
    "magic8 websocket: (un)subscribe, ping, connection cap; state table",
)
WEBSOCKET_AUTHORIZER = FunctionSpec(
    "websocket-authorizer",
    ("functions.websocket.authorizer.handler",),
    256,
    Duration.seconds(5),
    "magic8 websocket $connect authorizer: the REST API key required",
)


# the history writer's time limit (its queue's visibility timeout is six times it)
HISTORY_TIMEOUT_S = 30
HISTORY = FunctionSpec(
    "history",
    ("functions.history.handler.handler",),
    256,
    Duration.seconds(HISTORY_TIMEOUT_S),
    "magic8 history: history queue -> confidence history per trade identity",
)


@dataclass(frozen=True)
class SharedImage:
    """The one Lambda image (built once by `cdk deploy`; each function overrides its CMD)
    and the environment every function gets."""

    code_for: Callable[[list[str]], lambda_.DockerImageCode]
    environment: dict[str, str] = field(default_factory=dict)

    def with_environment(self, **extra: str) -> SharedImage:
        return replace(self, environment={**self.environment, **extra})


def image_function(
    scope: Construct,
    construct_id: str,
    spec: FunctionSpec,
    image: SharedImage,
    *,
    reads: Sequence[ddb.ITable] = (),
    writes: Sequence[ddb.ITable] = (),
    publishes: Sequence[sns.ITopic] = (),
) -> lambda_.DockerImageFunction:
    """One function of the shared image, with exactly the data access it is given:
    read-only tables, read/write tables, topics it publishes to."""
    fn = lambda_.DockerImageFunction(
        scope,
        construct_id,
        code=image.code_for(list(spec.cmd)),
        description=spec.description,
        architecture=lambda_.Architecture.X86_64,
        memory_size=spec.memory_size,
        timeout=spec.timeout,
        tracing=lambda_.Tracing.ACTIVE,
        environment={**image.environment, **powertools_env(spec.service)},
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
