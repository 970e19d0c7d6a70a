"""AlertPublisher on SNS: subject, message attributes kind/symbol/severity, and the message
as MessageStructure=json (e-mail: readable text; SQS/Lambda/default: the Alert JSON)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from magic8.adapters.aws import LazyClient
from magic8.domain.alerts import Alert

RETRYABLE = {
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "ServiceUnavailable",
    "KMSThrottling",
    "RequestLimitExceeded",
}


def clean_subject(subject: str) -> str:
    """SNS subjects: printable ASCII, no line breaks, under 100 characters."""
    text = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in subject).strip()
    return (text or "magic8 alert")[:99]


class SnsAlertPublisher:
    """Publishes magic8.domain.alerts.Alert to a topic; retries transient failures.

    botocore's standard retry mode already retries throttling and 5xx per call; on top of
    that, ``attempts`` whole publishes are tried with exponential backoff before raising.
    """

    sns = LazyClient("sns")

    def __init__(
        self,
        topic_arn: str,
        sns: Any = None,
        attempts: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        if not topic_arn:
            raise ValueError("topic_arn is required")
        self.topic_arn = topic_arn
        self._sns = sns
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s

    def publish(self, alert: Alert) -> str | None:
        for attempt in range(1, self.attempts + 1):
            try:
                out = self.sns.publish(
                    TopicArn=self.topic_arn,
                    Message=alert.sns_message(),
                    MessageStructure="json",
                    Subject=clean_subject(alert.subject),
                    MessageAttributes=alert.message_attributes(),
                )
                return str(out["MessageId"])
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE or attempt == self.attempts:
                    raise
            except BotoCoreError:
                if attempt == self.attempts:
                    raise
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return None  # pragma: no cover - loop always returns or raises
