"""Helpers shared by the constructs: repo paths, asset excludes, function defaults, nag acks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

REPO_ROOT = Path(__file__).resolve().parents[2]

LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# What a Docker build context rooted at the repository never needs. CDK copies the context
# into cdk.out at synth (no Docker involved) and `cdk deploy` builds from that copy, so
# these excludes keep synth fast and the image small. Merged with any .dockerignore.
DOCKER_CONTEXT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "**/__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    ".local",
    "build",
    "dist",
    "bench/results",
    "tests",
    "infra",
    "docs",
)


@dataclass(frozen=True)
class AssetPaths:
    """Where the deployable artefacts live (overridable for tests)."""

    root: Path = REPO_ROOT
    functions_dockerfile: str = "functions/Dockerfile"
    gateway_dockerfile: str = "gateway_host/Dockerfile"
    dashboard_static: Path = field(
        default_factory=lambda: (
            REPO_ROOT / "layers" / "shared" / "magic8_dev" / "dashboard" / "static"
        )
    )


NAG_PLUGIN = "AwsSolutions"


def ack(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on `scope` (and its children), with its reason.

    `rule_id` is the finding as cdk-nag names it, e.g. "AwsSolutions-IAM5[Resource::*]";
    it is recorded under the plugin's prefix ("AwsSolutions::AwsSolutions-IAM5[...]"),
    the form the validation report asks for.
    """
    if not reason.strip():
        raise ValueError(f"acknowledgement of {rule_id} needs a reason")
    full_id = rule_id if "::" in rule_id.split("[")[0] else f"{NAG_PLUGIN}::{rule_id}"
    Validations.of(scope).acknowledge(Acknowledgment(id=full_id, reason=reason))


def failure_queue(
    scope: Construct, construct_id: str, holds: str, redrive_target: bool = False
) -> sqs.Queue:
    """A terminal on-failure queue (SSE-SQS, TLS only, 14 days): what `holds` says ends
    here. It is itself a dead-letter destination, so it has no DLQ of its own (cdk-nag sees
    that by itself when another queue's redrive policy names it: `redrive_target`)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    if not redrive_target:
        ack(
            queue,
            "AwsSolutions-SQS3",
            f"This queue is itself the on-failure destination of {holds}.",
        )
    return queue


def log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    """A log group with the project's retention, destroyed with the stack."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=LOG_RETENTION,
        removal_policy=RemovalPolicy.DESTROY,
    )


def nag_ref(resource: IConstruct, attribute: str | None = None) -> str:
    """How cdk-nag renders a reference to `resource` in a finding id: <LogicalId> / <Id.Arn>."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), resource
    logical_id = Stack.of(cfn).resolve(cfn.logical_id)
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"


def nag_env(scope: IConstruct) -> tuple[str, str, str]:
    """(partition, region, account) as cdk-nag renders them: literals, or <AWS::Region> etc.

    Which one appears depends on the environment (explicit or agnostic) and on feature
    flags such as @aws-cdk/core:enablePartitionLiterals, so it is read from the stack.
    """
    stack = Stack.of(scope)

    def render(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    return (
        render(stack.partition, "Partition"),
        render(stack.region, "Region"),
        render(stack.account, "AccountId"),
    )
