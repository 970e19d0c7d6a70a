"""The gateway host: one ECS Fargate task owning the only IB and Databento sessions.

- One task, never two: desiredCount 1, minHealthyPercent 0, maxHealthyPercent 100, so a
  deployment stops the old task before starting the new one (IB allows one session per
  client id; a second Databento session would double-bill and double-count).
- Network: public subnets with a public IP and no inbound rules, no NAT gateway. The task
  only makes outbound connections (IB, Databento, AWS APIs); a NAT gateway would cost
  ~$33/month + $0.045/GB for nothing but egress, a public IPv4 address costs ~$3.65/month.
- Two containers in the task: the IB Gateway (sidecar, image from context `ibGatewayImage`,
  logs in with the `magic8/ib` secret) and gateway_host (our image, from
  gateway_host/Dockerfile with the repository root as build context), which talks to the
  sidecar over the task's localhost and to Databento with the `magic8/databento` key.
- Least privilege: read/write on exactly the market and state tables, write on the stream.
"""

from __future__ import annotations

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
DEFAULT_IB_GATEWAY_IMAGE = "ghcr.io/gnzsnz/ib-gateway:stable"
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
        ib_gateway_image: str = DEFAULT_IB_GATEWAY_IMAGE,
        trading_mode: str = "paper",
    ) -> None:
        super().__init__(scope, construct_id)
        if trading_mode not in IB_API_PORT:
            raise ValueError(f"trading_mode must be paper or live, not {trading_mode!r}")

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
            environment={
                "TRADING_MODE": trading_mode,
                # magic8 never places orders: the API session is read-only
                "READ_ONLY_API": "yes",
                "TWOFA_TIMEOUT_ACTION": "restart",
            },
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
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(120),
            ),
            stop_timeout=Duration.seconds(60),  # SIGTERM flush of open windows and Kinesis
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
