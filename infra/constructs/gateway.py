"""The gateway host: one ECS Fargate task owning the only IB and Databento sessions.

- One task, never two: desiredCount 1, minHealthyPercent 0, maxHealthyPercent 100, so a
  deployment stops the old task before starting the new one (IB allows one session per
  client id; a second Databento session would double-bill and double-count).
- Network: public subnets with a public IP and no inbound rules, no NAT gateway. The task
  only makes outbound connections (IB, Databento, AWS APIs); a NAT gateway would cost
  ~$33/month + $0.045/GB for nothing but egress, a public IPv4 address costs ~$3.65/month.
- Two containers in the task: the IB Gateway (sidecar, pinned by digest; IBC logs in with
  the `magic8/ib` secret injected by ECS, restarts nightly, retries after a 2FA timeout; see
  the README's ops runbook) and gateway_host (our image, from
  gateway_host/Dockerfile with the repository root as build context), which talks to the
  sidecar over the task's localhost and to Databento with the `magic8/databento` key.
- Least privilege: read/write on exactly the market and state tables, write on the stream,
  PutItem/BatchWriteItem (no read, no delete) on the NQ bars table.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.common import DOCKER_CONTEXT_EXCLUDE, ack, log_group

IB_SECRET_NAME = "magic8/ib"  # {"username": "...", "password": "..."}
DATABENTO_SECRET_NAME = "magic8/databento"  # {"api_key": "db-..."}
# The IB Gateway sidecar image, pinned by digest (a tag moves; a digest is what was tested).
# gnzsnz/ib-gateway (IB Gateway + IBC for the unattended login), release 10.45.1j: the OCI
# index digest as pinned publicly for that release (it could not be re-resolved from this
# build machine, which has no registry access; verify before the first deploy).
# Refresh: pick a release from https://github.com/gnzsnz/ib-gateway-docker/releases, then
#   docker buildx imagetools inspect ghcr.io/gnzsnz/ib-gateway:<release> \
#       --format '{{json .Manifest.Digest}}'
# (or `crane digest ghcr.io/gnzsnz/ib-gateway:<release>`), put the sha256 here, `make test`
# (tests/infrastructure checks the pin), deploy on a weekend, watch the runbook's login
# checks. A one-off override: `-c ibGatewayImage=ghcr.io/gnzsnz/ib-gateway@sha256:...`.
IB_GATEWAY_RELEASE = "10.45.1j"
IB_GATEWAY_DIGEST = "sha256:91165c0752ca534c0dad3c40683ae7c2745974d4d277651a90e90411ca609d8d"
DEFAULT_IB_GATEWAY_IMAGE = f"ghcr.io/gnzsnz/ib-gateway@{IB_GATEWAY_DIGEST}"
DIGEST_PINNED = re.compile(r"^[\w.\-/:]+@sha256:[0-9a-f]{64}$")
# IBC settings (the image's documented environment variables) for an unattended session:
# - the nightly restart at AUTO_RESTART_TIME reuses the week's authenticated session, so it
#   needs no second factor; IBKR still requires a full login (with 2FA on live accounts)
#   once a week, after its Sunday reset;
# - when a 2FA prompt times out, IBC restarts the Gateway and tries the login again
#   (TWOFA_TIMEOUT_ACTION + RELOGIN_AFTER_TWOFA_TIMEOUT) instead of exiting;
# - READ_ONLY_API: magic8 reads market data only; the API cannot place orders.
IBC_SETTINGS: dict[str, str] = {
    "READ_ONLY_API": "yes",
    "TWOFA_TIMEOUT_ACTION": "restart",
    "RELOGIN_AFTER_TWOFA_TIMEOUT": "yes",
    "TWOFA_EXIT_INTERVAL": "60",
    "AUTO_RESTART_TIME": "11:45 PM",
    "TIME_ZONE": "America/New_York",
    "TZ": "America/New_York",
    "EXISTING_SESSION_DETECTED_ACTION": "primary",
    "BYPASS_WARNING": "yes",
    "TWS_ACCEPT_INCOMING": "reject",
    "ALLOW_BLIND_TRADING": "no",
}
# gateway_host container health check: generous start period (cold imports, the sidecar's
# login), then 5 misses 30 s apart before ECS replaces the task; the ECS service scheduler
# itself backs off exponentially between replacements of a task that keeps failing.
HEALTH_START_PERIOD_S = 300
HEALTH_INTERVAL_S = 30
HEALTH_RETRIES = 5
HEALTH_PORT = 8080
IB_API_PORT = {"paper": 4002, "live": 4001}


class GatewayHost(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        build_context: Path,
        dockerfile: str,
        environment: dict[str, str],
        market_table: ddb.ITable,
        state_table: ddb.ITable,
        stream: kinesis.IStream,
        bars_table: ddb.ITable | None = None,
        ib_gateway_image: str = DEFAULT_IB_GATEWAY_IMAGE,
        trading_mode: str = "paper",
    ) -> None:
        super().__init__(scope, construct_id)
        if trading_mode not in IB_API_PORT:
            raise ValueError(f"trading_mode must be paper or live, not {trading_mode!r}")
        if not DIGEST_PINNED.match(ib_gateway_image):
            raise ValueError(
                f"ib_gateway_image must be pinned by digest (name@sha256:...), not"
                f" {ib_gateway_image!r}: a floating tag changes under a running system"
            )

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)
            ],
            restrict_default_security_group=False,
        )
        self.vpc.add_flow_log(
            "FlowLogs",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group(self, "FlowLogGroup")),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="magic8 gateway host: outbound only (IB, Databento, AWS APIs)",
            allow_all_outbound=True,
        )

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )

        ib_secret = secretsmanager.Secret.from_secret_name_v2(self, "IbSecret", IB_SECRET_NAME)
        databento_secret = secretsmanager.Secret.from_secret_name_v2(
            self, "DatabentoSecret", DATABENTO_SECRET_NAME
        )

        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=1024,
            memory_limit_mib=2048,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        logs = log_group(self, "Logs")

        ib = self.task_definition.add_container(
            "IbGateway",
            image=ecs.ContainerImage.from_registry(ib_gateway_image),
            essential=True,
            memory_reservation_mib=1024,
            environment={"TRADING_MODE": trading_mode, **IBC_SETTINGS},
            # no container health check here on purpose: an essential container marked
            # unhealthy stops the task, and a new task cannot answer a pending 2FA prompt
            # faster than IBC's own restart-and-relogin; gateway_host reports IB as degraded
            secrets={
                "TWS_USERID": ecs.Secret.from_secrets_manager(ib_secret, field="username"),
                "TWS_PASSWORD": ecs.Secret.from_secrets_manager(ib_secret, field="password"),
            },
            logging=ecs.LogDriver.aws_logs(stream_prefix="ib-gateway", log_group=logs),
        )

        self.container = self.task_definition.add_container(
            "GatewayHost",
            image=ecs.ContainerImage.from_asset(
                str(build_context),
                file=dockerfile,
                exclude=list(DOCKER_CONTEXT_EXCLUDE),
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            essential=True,
            environment={
                **environment,
                "MAGIC8_IB_ENABLED": "true",
                "MAGIC8_IB_HOST": "127.0.0.1",
                "MAGIC8_IB_PORT": str(IB_API_PORT[trading_mode]),
                "MAGIC8_HEALTH_PORT": str(HEALTH_PORT),
                "MAGIC8_DATABENTO_ENABLED": "true",
                "MAGIC8_DATABENTO_MODE": "live",
                "MAGIC8_FLOW_SPILL_DIR": "/tmp/magic8-flow-outbox",
                "MAGIC8_SHUTDOWN_TIMEOUT_S": "25",
                "POWERTOOLS_SERVICE_NAME": "gateway",
                "POWERTOOLS_METRICS_NAMESPACE": "magic8",
            },
            secrets={
                "DATABENTO_API_KEY": ecs.Secret.from_secrets_manager(
                    databento_secret, field="api_key"
                ),
            },
            health_check=ecs.HealthCheck(
                command=[
                    "CMD-SHELL",
                    'python -c "import urllib.request; urllib.request.urlopen('
                    f"'http://127.0.0.1:{HEALTH_PORT}/health', timeout=3)\" || exit 1",
                ],
                interval=Duration.seconds(HEALTH_INTERVAL_S),
                timeout=Duration.seconds(5),
                retries=HEALTH_RETRIES,
                start_period=Duration.seconds(HEALTH_START_PERIOD_S),
            ),
            # SIGTERM: stop intake, flush open windows and Kinesis (MAGIC8_FLOW_FLUSH_TIMEOUT_S),
            # spill what Kinesis did not take; the process exits within SHUTDOWN_TIMEOUT_S < 30
            stop_timeout=Duration.seconds(30),
            logging=ecs.LogDriver.aws_logs(stream_prefix="gateway-host", log_group=logs),
            # our own image writes nothing but /tmp (a task-local scratch volume below);
            # the IB Gateway image keeps its settings beside its install under $HOME, so its
            # root filesystem stays writable (read-only API session instead)
            readonly_root_filesystem=True,
        )
        self.task_definition.add_volume(name="gateway-tmp")
        self.container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="gateway-tmp", read_only=False)
        )
        self.container.add_container_dependencies(
            ecs.ContainerDependency(container=ib, condition=ecs.ContainerDependencyCondition.START)
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=1,
            min_healthy_percent=0,
            max_healthy_percent=100,
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            enable_execute_command=False,
        )

        task_role = self.task_definition.task_role
        market_table.grant_read_write_data(task_role)
        state_table.grant_read_write_data(task_role)
        stream.grant_write(task_role)
        if bars_table is not None:  # the NQ 5-minute bars: upserts only
            bars_table.grant(task_role, "dynamodb:PutItem", "dynamodb:BatchWriteItem")

        ack(
            self.task_definition,
            "AwsSolutions-IAM5[Resource::*]",
            "Task execution role: ecr:GetAuthorizationToken has no resource-level"
            " permissions; image pulls and secret reads are scoped to their ARNs.",
        )
        ack(
            self.task_definition,
            "AwsSolutions-ECS2",
            "Environment variables hold resource names and non-secret settings only; the IB"
            " and Databento credentials are injected from Secrets Manager (`secrets`).",
        )
