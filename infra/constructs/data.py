"""State and messaging: DynamoDB tables, the Kinesis `flow` stream, the SNS `alerts` topic, queues.

Tables are built from magic8.resources.TABLES, the same definitions the local runtime
provisions on the moto server, so the two cannot drift.

Encryption choices:
- DynamoDB: the AWS-managed key `aws/dynamodb` (`AWS_MANAGED`): encryption at rest with
  key usage visible in CloudTrail, no monthly key fee, no key policy to keep in step with
  every reader (DynamoDB caches table keys, so KMS request charges stay negligible); the
  data is market data and model output, not personal data.
- Kinesis: the AWS-managed `aws/kinesis` key. A customer-managed key would add KMS
  request costs per producer/consumer and kms:* grants to the gateway and ifd roles for no
  compliance need (cdk-nag KDS3 says the same).
- SNS and the alerts subscriber queue (+ its DLQ): customer-managed keys (rotation on; one
  for the topic, one for the queues, see below). SNS topics encrypted
  with the AWS-managed `aws/sns` key cannot be published to by CloudWatch alarms (its key
  policy cannot be edited), and SNS cannot deliver to a queue encrypted with `aws/sqs`.
  Cost: $1/month per key plus requests (data keys are cached by SNS/SQS).
  The ifd on-failure queue uses SSE-SQS: only Lambda's event source writes to it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.common import failure_queue
from magic8 import resources as r

_ATTR_TYPES = {
    "S": ddb.AttributeType.STRING,
    "N": ddb.AttributeType.NUMBER,
    "B": ddb.AttributeType.BINARY,
}


def _attr(key: r.KeyAttr) -> ddb.Attribute:
    return ddb.Attribute(name=key.name, type=_ATTR_TYPES[key.type])


class Data(Construct):
    """Every stateful resource of magic8, from the shared definitions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alert_emails: list[str] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)

        # Two keys, not one: SNS -> SQS delivery needs the queue key's policy to name the
        # topic (aws:SourceArn) while the topic references its own key, so one shared key
        # would make a circular dependency.
        def rotating_key(key_id: str, description: str) -> kms.Key:
            return kms.Key(
                self,
                key_id,
                description=description,
                enable_key_rotation=True,
                removal_policy=removal_policy,
            )

        self.topic_key = rotating_key("TopicKey", "magic8: SNS alerts topic")
        # CloudWatch alarms publish to the encrypted alerts topic.
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
            )
        )
        self.queue_key = rotating_key("QueueKey", "magic8: alerts subscriber queue and its DLQ")

        self.tables: dict[str, ddb.Table] = {}
        for spec in r.TABLES:
            table = ddb.Table(
                self,
                spec.logical_id,
                partition_key=_attr(spec.partition_key),
                sort_key=_attr(spec.sort_key) if spec.sort_key else None,
                billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
                encryption=ddb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=spec.ttl_attribute,
                removal_policy=removal_policy,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=_attr(index.partition_key),
                    sort_key=_attr(index.sort_key) if index.sort_key else None,
                    projection_type=ddb.ProjectionType.ALL,
                )
            self.tables[spec.logical_id] = table

        self.stream = kinesis.Stream(
            self,
            r.FLOW_STREAM.logical_id,
            shard_count=r.FLOW_STREAM.shard_count,
            stream_mode=kinesis.StreamMode.PROVISIONED,
            retention_period=Duration.hours(r.FLOW_STREAM.retention_hours),
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=removal_policy,
        )

        self.topic = sns.Topic(
            self,
            r.ALERTS_TOPIC.logical_id,
            display_name="magic8 alerts",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
        for email in alert_emails or []:
            self.topic.add_subscription(subs.EmailSubscription(email))

        # On-failure destination of Kinesis -> ifd: the terminal place for poison records.
        # SSE-SQS (SQS-owned key): only Lambda's role writes here, so no key grants needed.
        self.ifd_failure_queue = failure_queue(
            self,
            r.IFD_FAILURE_QUEUE.logical_id,
            "the Kinesis -> ifd event source (failed-batch metadata, alarmed on depth)",
        )

        self.alerts_dlq = sqs.Queue(
            self,
            "AlertsSubscriberDlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.alerts_queue = sqs.Queue(
            self,
            r.ALERTS_SUBSCRIBER_QUEUE.logical_id,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.alerts_dlq),
        )
        self.topic.add_subscription(
            subs.SqsSubscription(self.alerts_queue, raw_message_delivery=True)
        )

    # --- convenience -------------------------------------------------------------------
    def table(self, spec: r.TableSpec) -> ddb.Table:
        return self.tables[spec.logical_id]

    def environment(self) -> dict[str, str]:
        """The resource names every entry point reads through magic8.settings.AwsSettings."""
        env = {spec.env_var: self.tables[spec.logical_id].table_name for spec in r.TABLES}
        env[r.FLOW_STREAM.env_var] = self.stream.stream_name
        env[r.ALERTS_TOPIC.env_var] = self.topic.topic_arn
        env[r.IFD_FAILURE_QUEUE.env_var] = self.ifd_failure_queue.queue_url
        env[r.ALERTS_SUBSCRIBER_QUEUE.env_var] = self.alerts_queue.queue_url
        return env
