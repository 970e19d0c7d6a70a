"""Alarms -> the alerts topic, and one CloudWatch dashboard.

- every function: Errors >= 1 and Throttles >= 1 in 5 minutes;
- ifd: IteratorAge (how far the consumer lags the Kinesis stream) > 5 minutes;
- DLQ depth: the ifd on-failure queue and the alerts subscriber DLQ hold any message;
- stale heartbeat: the monitor's `GatewayStale` metric (namespace magic8, dimension
  service=monitor) >= 1, and the monitor not running at all for 15 minutes;
- API: 5XXError >= 5 in 5 minutes;
- gateway (its EMF metrics, dimension service=gateway): no MBO record for 5 minutes inside
  the streaming window, the oldest Kinesis-pending window older than 5 minutes, 5+ gaps in
  15 minutes, a Databento daily budget reached (spend and budgets on the dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

STALE_METRIC_NAMESPACE = "magic8"
STALE_METRIC_NAME = "GatewayStale"
STALE_METRIC_DIMENSIONS = {"service": "monitor"}
GATEWAY_METRIC_NAMESPACE = "magic8"
GATEWAY_METRIC_DIMENSIONS = {"service": "gateway"}
FIVE_MIN = Duration.minutes(5)


@dataclass(frozen=True)
class Watched:
    functions: dict[str, lambda_.IFunction]
    ifd_function: lambda_.IFunction
    monitor_function: lambda_.IFunction
    stream: kinesis.IStream
    queues: dict[str, sqs.IQueue]
    api: apigw.RestApi


class Observability(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, topic: sns.ITopic, watched: Watched
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cw.Alarm] = []
        action = cw_actions.SnsAction(topic)

        def alarm(
            name: str,
            metric: cw.IMetric,
            threshold: float,
            description: str,
            *,
            missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
            comparison: cw.ComparisonOperator = (
                cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            periods: int = 1,
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )
            a.add_alarm_action(action)
            a.add_ok_action(action)
            self.alarms.append(a)
            return a

        for name, fn in watched.functions.items():
            alarm(
                f"{name}Errors",
                fn.metric_errors(period=FIVE_MIN, statistic="Sum"),
                1,
                f"magic8 {name} function errors",
            )
            alarm(
                f"{name}Throttles",
                fn.metric_throttles(period=FIVE_MIN, statistic="Sum"),
                1,
                f"magic8 {name} function throttled",
            )

        iterator_age = watched.ifd_function.metric(
            "IteratorAge", period=FIVE_MIN, statistic="Maximum"
        )
        alarm(
            "IfdIteratorAge",
            iterator_age,
            Duration.minutes(5).to_milliseconds(),
            "magic8 ifd lags the Kinesis flow stream by more than 5 minutes",
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        for name, queue in watched.queues.items():
            alarm(
                f"{name}Depth",
                queue.metric_approximate_number_of_messages_visible(
                    period=FIVE_MIN, statistic="Maximum"
                ),
                1,
                f"magic8 {name} holds failed messages",
            )

        stale = cw.Metric(
            namespace=STALE_METRIC_NAMESPACE,
            metric_name=STALE_METRIC_NAME,
            dimensions_map=STALE_METRIC_DIMENSIONS,
            period=FIVE_MIN,
            statistic="Maximum",
        )
        alarm("GatewayHeartbeatStale", stale, 1, "magic8 gateway heartbeat stale (market hours)")
        alarm(
            "MonitorNotRunning",
            watched.monitor_function.metric_invocations(
                period=Duration.minutes(15), statistic="Sum"
            ),
            1,
            "magic8 monitor sweep has not run for 15 minutes (so staleness is unchecked)",
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cw.TreatMissingData.BREACHING,
        )
        api_5xx = watched.api.metric_server_error(period=FIVE_MIN, statistic="Sum")
        alarm("Api5xx", api_5xx, 5, "magic8 API answered 5xx")

        # the gateway's own EMF metrics (gateway_host/metrics.py; service=gateway)
        def gw(name: str, statistic: str = "Maximum", period: Duration = FIVE_MIN) -> cw.Metric:
            return cw.Metric(
                namespace=GATEWAY_METRIC_NAMESPACE,
                metric_name=name,
                dimensions_map=GATEWAY_METRIC_DIMENSIONS,
                period=period,
                statistic=statistic,
            )

        mbo_age = gw("MboAgeSeconds")
        alarm(
            "GatewayNoMboData",
            mbo_age,
            300,
            "magic8 gateway: no NQ options MBO record for 5 minutes inside the streaming"
            " window (only emitted in the window, so missing data outside it is fine)",
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            periods=2,
        )
        backlog_age = gw("ProducerOldestAgeSeconds")
        alarm(
            "GatewayProducerBacklogAge",
            backlog_age,
            300,
            "magic8 gateway: the oldest flow window waiting for Kinesis is over 5 minutes old",
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        gaps = gw("Gaps", statistic="Sum", period=Duration.minutes(15))
        alarm("GatewayGapRate", gaps, 5, "magic8 gateway: 5+ Databento gaps in 15 minutes")
        budget = gw("BudgetExceeded")
        alarm(
            "GatewayBudgetExceeded",
            budget,
            1,
            "magic8 gateway: a Databento daily budget (streaming or backfill) is reached;"
            " backfill is stopped for the day (see the gateway /health `spend`)",
        )
        self.dashboard_gateway_metrics = [mbo_age, backlog_age, gaps, budget]
        self.spend_metrics = [
            gw("StreamingSpendUsd", period=Duration.hours(1)),
            gw("BackfillSpendUsd", period=Duration.hours(1)),
            gw("StreamingBudgetUsd", period=Duration.hours(1)),
            gw("BackfillBudgetUsd", period=Duration.hours(1)),
        ]

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name="magic8")
        fn_items = list(watched.functions.items())
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Invocations",
                left=[fn.metric_invocations(period=FIVE_MIN, label=n) for n, fn in fn_items],
                width=8,
            ),
            cw.GraphWidget(
                title="Errors / throttles",
                left=[fn.metric_errors(period=FIVE_MIN, label=f"{n} errors") for n, fn in fn_items],
                right=[
                    fn.metric_throttles(period=FIVE_MIN, label=f"{n} throttles")
                    for n, fn in fn_items
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Duration p95 (ms)",
                left=[
                    fn.metric_duration(period=FIVE_MIN, statistic="p95", label=n)
                    for n, fn in fn_items
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API requests / latency",
                left=[watched.api.metric_count(period=FIVE_MIN)],
                right=[watched.api.metric_latency(period=FIVE_MIN, statistic="p95")],
                width=8,
            ),
            cw.GraphWidget(
                title="Flow stream: records in / ifd iterator age",
                left=[watched.stream.metric_incoming_records(period=FIVE_MIN)],
                right=[iterator_age],
                width=8,
            ),
            cw.GraphWidget(
                title="Gateway stale / failed messages",
                left=[stale],
                right=[
                    q.metric_approximate_number_of_messages_visible(period=FIVE_MIN, label=n)
                    for n, q in watched.queues.items()
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Gateway: MBO age / Kinesis backlog age (s)",
                left=[mbo_age],
                right=[backlog_age],
                width=8,
            ),
            cw.GraphWidget(
                title="Gateway: records/s, windows, gaps",
                left=[gw("MboRecordsPerSecond", statistic="Average")],
                right=[gw("WindowsSent", statistic="Sum"), gaps],
                width=8,
            ),
            cw.GraphWidget(
                title="Databento spend vs budget (USD, today)",
                left=self.spend_metrics,
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24)
        )
