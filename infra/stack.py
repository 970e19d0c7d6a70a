"""The magic8 stack: one construct per capability, wired together."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.common import (
    DOCKER_CONTEXT_EXCLUDE,
    AssetPaths,
    ack,
    nag_env,
    nag_ref,
)
from infra.constructs.dashboard_site import DashboardSite
from infra.constructs.data import Data
from infra.constructs.flow_detection import FlowDetection
from infra.constructs.functions import SharedImage
from infra.constructs.gateway import DEFAULT_IB_GATEWAY_IMAGE, GatewayHost
from infra.constructs.history_writer import HistoryWriter
from infra.constructs.monitoring import Monitoring
from infra.constructs.observability import Observability, Watched
from infra.constructs.prediction_api import PredictionApi
from infra.constructs.push import WS_ENDPOINT_ENV, Push
from magic8 import resources as r


class Magic8Stack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        paths: AssetPaths | None = None,
        alert_emails: list[str] | None = None,
        ib_gateway_image: str = DEFAULT_IB_GATEWAY_IMAGE,
        ib_trading_mode: str = "paper",
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        paths = paths or AssetPaths()

        data = Data(self, "Data", alert_emails=alert_emails)
        env = data.environment()
        market = data.table(r.MARKET_TABLE)
        history = data.table(r.HISTORY_TABLE)
        signals = data.table(r.SIGNALS_TABLE)
        state = data.table(r.STATE_TABLE)
        idempotency = data.table(r.IDEMPOTENCY_TABLE)
        bars = data.table(r.BARS_TABLE)

        # Every function runs from ONE image (functions/Dockerfile, built once by
        # `cdk deploy`; synth only stages the context); each overrides the CMD.
        def image_code(cmd: list[str]) -> lambda_.DockerImageCode:
            return lambda_.DockerImageCode.from_image_asset(
                str(paths.root),
                file=paths.functions_dockerfile,
                cmd=cmd,
                exclude=list(DOCKER_CONTEXT_EXCLUDE),
                platform=ecr_assets.Platform.LINUX_AMD64,
            )

        image = SharedImage(image_code, env)
        push = Push(
            self,
            "Push",
            image=image,
            state_table=state,
        )
        image_with_push = image.with_environment(**{WS_ENDPOINT_ENV: push.callback_url})

        api = PredictionApi(
            self,
            "PredictionApi",
            image=image_with_push,
            read_tables=[market, signals, bars],
            write_tables=[history, state],
        )
        push.use_api_key(api.api_key)

        history_writer = HistoryWriter(
            self,
            "History",
            image=image,
            history_table=history,
        )
        history_writer.grant_send(api.function)

        flow = FlowDetection(
            self,
            "FlowDetection",
            image=image_with_push,
            stream=data.stream,
            failure_queue=data.ifd_failure_queue,
            signals_table=signals,
            state_table=state,
            idempotency_table=idempotency,
            topic=data.topic,
        )
        push.grant_push(flow.function)

        monitoring = Monitoring(
            self,
            "Monitoring",
            image=image_with_push,
            read_tables=[market],
            write_tables=[history, state],
            topic=data.topic,
        )
        push.grant_push(monitoring.function)
        history_writer.grant_send(monitoring.function)

        GatewayHost(
            self,
            "Gateway",
            build_context=paths.root,
            dockerfile=paths.gateway_dockerfile,
            environment=env,
            market_table=market,
            state_table=state,
            bars_table=bars,
            stream=data.stream,
            ib_gateway_image=ib_gateway_image,
            trading_mode=ib_trading_mode,
        )

        Observability(
            self,
            "Observability",
            topic=data.topic,
            watched=Watched(
                functions={
                    "Predict": api.function,
                    "Monitor": monitoring.function,
                    "Ifd": flow.function,
                    "WebSocket": push.function,
                    "History": history_writer.function,
                },
                ifd_function=flow.function,
                monitor_function=monitoring.function,
                stream=data.stream,
                queues={
                    "IfdFailureQueue": data.ifd_failure_queue,
                    "AlertsSubscriberDlq": data.alerts_dlq,
                    "HistoryDeadLetterQueue": history_writer.dlq,
                },
                api=api.api,
            ),
        )

        site = DashboardSite(
            self,
            "DashboardSite",
            static_dir=paths.dashboard_static,
            api=api.api,
            ws_url=push.stage.url,
        )

        CfnOutput(self, "ApiUrl", value=api.api.url, description="REST API base URL")
        CfnOutput(
            self,
            "ApiKeyId",
            value=api.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(self, "WebSocketUrl", value=push.stage.url, description="wss:// URL")
        CfnOutput(self, "AlertsTopicArn", value=data.topic.topic_arn)
        CfnOutput(self, "AlertsQueueUrl", value=data.alerts_queue.queue_url)
        CfnOutput(self, "DashboardUrl", value=site.url)

        # Findings of specific grants, acknowledged where they arise.
        signals_index = f"AwsSolutions-IAM5[Resource::{nag_ref(signals, 'Arn')}/index/*]"
        for fn in (api.function, flow.function):
            ack(
                fn,
                signals_index,
                "Read access to the signals table's own global secondary indexes (by_day);"
                " the wildcard is limited to that table's indexes.",
            )
        for fn in (flow.function, monitoring.function):
            ack(
                fn,
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "Publishing to the KMS-encrypted alerts topic needs kms:GenerateDataKey* and"
                " kms:Decrypt; the statement is scoped to the topic's own key.",
            )
        if site.deployment is not None:
            _acknowledge_bucket_deployment(self, site)


def _acknowledge_bucket_deployment(stack: Stack, site: DashboardSite) -> None:
    """Findings of the CDK-provided BucketDeployment handler (a singleton in the stack)."""
    handler = next(
        c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")
    )
    reason = (
        "CDK's BucketDeployment handler (CDK-owned code) copies the dashboard's static files"
        " from the CDK asset bucket into the dashboard bucket; its grants are CDK's"
        " read-from-asset / write-to-destination grants on exactly those two buckets."
    )
    partition, region, account = nag_env(stack)
    findings = [
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Action::s3:GetObject*]",
        "AwsSolutions-IAM5[Action::s3:GetBucket*]",
        "AwsSolutions-IAM5[Action::s3:List*]",
        "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
        "AwsSolutions-IAM5[Action::s3:Abort*]",
        f"AwsSolutions-IAM5[Resource::{nag_ref(site.bucket, 'Arn')}/*]",
        f"AwsSolutions-IAM5[Resource::arn:{partition}:s3:::cdk-hnb659fds-assets-"
        f"{account}-{region}/*]",
    ]
    for finding in findings:
        ack(handler, finding, reason)
    ack(
        handler,
        "AwsSolutions-L1",
        "CDK's BucketDeployment handler is CDK-owned code whose Lambda runtime aws-cdk-lib"
        " chooses (and moves forward on upgrades); it runs only during deployments.",
    )
