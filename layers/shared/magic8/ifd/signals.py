"""IFD signals: the stored record, the alert thresholds and the rate-capped dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime

from magic8.domain.ports import AlertPublisher
from magic8.ifd.ports import AlertRateLimiter
from magic8.ifd.values import (
    DispatchResult,
    Signal,
    SignalPolicy,
)


def rate_bucket(ts: datetime) -> str:
    """The clock hour (UTC, event time) an alert counts against."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H")


class AlertDispatcher:
    """Rate cap then publish. Wrap ``dispatch`` in idempotency so a window alerts once."""

    def __init__(
        self,
        publisher: AlertPublisher,
        limiter: AlertRateLimiter,
        policy: SignalPolicy = SignalPolicy(),
    ) -> None:
        self.publisher = publisher
        self.limiter = limiter
        self.policy = policy

    def dispatch(self, signal: Signal) -> DispatchResult:
        bucket = rate_bucket(signal.window_end)
        if not self.limiter.try_acquire(bucket, self.policy.max_alerts_per_hour):
            self.limiter.record_excess(bucket)
            return DispatchResult("rate_limited")
        message_id = self.publisher.publish(signal.with_status("sent").to_alert(self.policy))
        return DispatchResult("sent", message_id)
