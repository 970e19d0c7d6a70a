"""The confidence history's write path: the history queue -> λ history -> the history table.

The predict function (and the monitor) hand each answered batch's points to the queue in
ONE SendMessage; the history function, from the shared image with its own CMD, writes one
item per trade identity. SQS event source with ReportBatchItemFailures; a message that
keeps failing goes to the dead-letter queue after HISTORY_MAX_RECEIVES receives (alarmed
on depth by the Observability construct). SSE-SQS: only the functions' roles use the queues.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.common import failure_queue
from infra.constructs.functions import HISTORY, HISTORY_TIMEOUT_S, SharedImage, image_function
from magic8 import resources as r

BATCH_SIZE = 10
MAX_BATCHING_WINDOW_S = 1


class HistoryWriter(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: SharedImage,
        history_table: ddb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = failure_queue(
            self,
            r.HISTORY_DLQ.logical_id,
            "the history queue (points failing 5 receives)",
            redrive_target=True,
        )
        self.queue = sqs.Queue(
            self,
            r.HISTORY_QUEUE.logical_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(4),
            # six times the function's timeout, as Lambda's SQS guidance asks
            visibility_timeout=Duration.seconds(6 * HISTORY_TIMEOUT_S),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=r.HISTORY_MAX_RECEIVES, queue=self.dlq
            ),
        )
        self.function = image_function(
            self, "HistoryFunction", HISTORY, image, writes=[history_table]
        )
        self.event_source = sources.SqsEventSource(
            self.queue,
            batch_size=BATCH_SIZE,
            max_batching_window=Duration.seconds(MAX_BATCHING_WINDOW_S),
            report_batch_item_failures=True,
        )
        self.function.add_event_source(self.event_source)

    def grant_send(self, fn: lambda_.IFunction) -> None:
        """The function hands history points to the queue (and learns its URL)."""
        self.queue.grant_send_messages(fn)
        if isinstance(fn, lambda_.Function):
            fn.add_environment(r.HISTORY_QUEUE.env_var, self.queue.queue_url)
