"""The prediction service: the predict function (container image) behind a REST API.

Packaging: a container image, not a zip. The predict function needs numpy, pandas, scipy
(required by xgboost), xgboost-cpu and the API stack; measured from the project's .venv
(`python -m infra.packaging`) that is more than Lambda's 250 MB unzipped limit for
function + layers (numbers in the README). Images may be 10 GB, and the image is built by
`cdk deploy`; `cdk synth` only stages the build context (no Docker).

API: API key on every route except GET /health; usage plans (rate, burst, daily quota);
a request validator with JSON-schema models on POST /predict and POST /predict/batch built
from the app's own TradeRequest (magic8.domain.trades): the edge requires exactly the
fields the app requires (strategy, symbol, premium, predicted_price; strikes and action are
optional, the app fills in the standard ones) and checks the envelope (`requests` is a
non-empty array of objects). Failed validation answers 422 with API Gateway's message.
The batch size limit is the app's, so a 101-trade batch is the same 413 "Request too large"
in AWS and locally; a body over API Gateway's 10 MB is its REQUEST_TOO_LARGE gateway
response, also 413 "Request too large".
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_appconfig as appconfig
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.common import ack, log_group
from infra.constructs.functions import PREDICT, SharedImage, image_function
from magic8.adapters.recommend_sources import DEFAULT_FLAGS
from magic8.api_limits import METHOD_LIMITS
from magic8.domain.trades import TradeRequest
from magic8.domain.warming import WARM_EVENT

# Expected load: ~2,500 calls/day from DiscordTrading, plus the dashboard and ops.
USAGE_RATE_PER_S = 10
USAGE_BURST = 20
USAGE_QUOTA_PER_DAY = 20_000

# The edge checks the envelope only: a JSON object with the fields TradeRequest requires
# (API Gateway's message names a missing one). Types, ranges, aliases, strike geometry and
# the batch size (413) are the app's job, whose answer names the exact field.
TRADE_REQUIRED = [name for name, f in TradeRequest.model_fields.items() if f.is_required()]
TOO_LARGE_MESSAGE = "Request too large"


def trade_schema(title: str | None = None) -> apigw.JsonSchema:
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4 if title else None,
        title=title,
        type=apigw.JsonSchemaType.OBJECT,
        required=TRADE_REQUIRED,
    )


class PredictionApi(Construct):
    """predict (container image) + REST API with API keys, usage plan and validation."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_name: str = "prod",
        image: SharedImage,
        read_tables: list[ddb.ITable],
        write_tables: list[ddb.ITable],
    ) -> None:
        super().__init__(scope, construct_id)

        self.function = image_function(
            self, "PredictFunction", PREDICT, image, reads=read_tables, writes=write_tables
        )

        # Cache warming (magic8.domain.warming): every 5 minutes, the monitor's cadence, the
        # predict function predicts its configured trades and its most requested ones, so
        # they are in its in-memory prediction cache (the caches live in this function's
        # containers: the monitor cannot warm them). A missed warm-up is not retried.
        self.warm_rule = events.Rule(
            self,
            "WarmSchedule",
            description="magic8 predict cache warming",
            schedule=events.Schedule.rate(Duration.minutes(5)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object(WARM_EVENT),
                    retry_attempts=0,
                    max_event_age=Duration.minutes(4),
                )
            ],
        )

        # POST /recommend's flags and weights: Powertools feature flags on AppConfig
        # (hosted configuration, deployed at once; change it in the console or with
        # `aws appconfig create-hosted-configuration-version` + start-deployment, no deploy
        # of the stack). The function reads it through AppConfig's data plane (max age 30 s).
        self.flags_app = appconfig.Application(
            self, "RecommendFlags", application_name="magic8-recommend"
        )
        self.flags_env = appconfig.Environment(
            self, "RecommendFlagsEnv", application=self.flags_app, environment_name="prod"
        )
        self.flags = appconfig.HostedConfiguration(
            self,
            "RecommendFlagsProfile",
            application=self.flags_app,
            name="recommend-flags",
            type=appconfig.ConfigurationType.FREEFORM,
            content=appconfig.ConfigurationContent.from_inline_json(json.dumps(DEFAULT_FLAGS)),
            deploy_to=[self.flags_env],
            deployment_strategy=appconfig.DeploymentStrategy(
                self,
                "RecommendFlagsAllAtOnce",
                rollout_strategy=appconfig.RolloutStrategy.linear(
                    growth_factor=100, deployment_duration=Duration.minutes(0)
                ),
            ),
        )
        self.function.add_environment("MAGIC8_APPCONFIG_APPLICATION", "magic8-recommend")
        self.function.add_environment("MAGIC8_APPCONFIG_ENVIRONMENT", "prod")
        self.function.add_environment("MAGIC8_APPCONFIG_PROFILE", "recommend-flags")
        # exactly this profile in this environment (no wildcard)
        profile_arn = Stack.of(self).format_arn(
            service="appconfig",
            resource="application",
            resource_name=(
                f"{self.flags_app.application_id}/environment/{self.flags_env.environment_id}"
                f"/configuration/{self.flags.configuration_profile_id}"
            ),
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"],
                resources=[profile_arn],
            )
        )

        access_logs = log_group(self, "AccessLogs")
        self.api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name="magic8",
            description="magic8 win-probability API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=USAGE_RATE_PER_S * 5,
                throttling_burst_limit=USAGE_BURST * 5,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        # Validation failures name the field, like FastAPI's 422; an oversized body says
        # "Request too large" as the app's own 413 does.
        for response_id, response_type, status, body in (
            (
                "BadRequestBody",
                apigw.ResponseType.BAD_REQUEST_BODY,
                "422",
                '{"detail": "request body failed validation",'
                ' "errors": "$context.error.validationErrorString"}',
            ),
            (
                "RequestTooLarge",
                apigw.ResponseType.REQUEST_TOO_LARGE,
                "413",
                '{"detail": [{"loc": ["body"], "msg": "'
                + TOO_LARGE_MESSAGE
                + ': body over API Gateway\'s 10 MB", "type": "too_large"}]}',
            ),
        ):
            self.api.add_gateway_response(
                response_id,
                type=response_type,
                status_code=status,
                templates={"application/json": body},
            )

        integration = apigw.LambdaIntegration(self.function, proxy=True)
        validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        trade_model = self.api.add_model(
            "TradeRequest",
            content_type="application/json",
            model_name="TradeRequest",
            schema=trade_schema("TradeRequest"),
        )
        batch_model = self.api.add_model(
            "BatchRequest",
            content_type="application/json",
            model_name="BatchRequest",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                title="BatchRequest",
                type=apigw.JsonSchemaType.OBJECT,
                required=["requests"],
                properties={
                    # no maxItems: the app answers 413 "Request too large" (more than 100 trades)
                    "requests": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.ARRAY, min_items=1, items=trade_schema()
                    ),
                    "share_market_data": apigw.JsonSchema(type=apigw.JsonSchemaType.BOOLEAN),
                },
            ),
        )

        keyed = apigw.MethodOptions(api_key_required=True)
        root = self.api.root
        predict = root.add_resource("predict")
        methods: dict[tuple[str, str], apigw.Method] = {}
        batch = predict.add_resource("batch")
        for path, resource, model in (
            ("/predict", predict, trade_model),
            ("/predict/batch", batch, batch_model),
        ):
            methods["POST", path] = resource.add_method(
                "POST",
                integration,
                api_key_required=True,
                request_validator=validator,
                request_models={"application/json": model},
            )
        # Every other route (market, confidence history/trends, signals, risk/reward,
        # watchlist, outcomes, accuracy, /health/detailed) goes to the same FastAPI app.
        # The root's ANY first, keyed: add_proxy would otherwise add it without the key.
        root.add_method("ANY", integration, api_key_required=True)
        root.add_proxy(
            default_integration=integration, default_method_options=keyed, any_method=True
        )
        # GET /nq/bars (the NQ price chart): its own keyed method, so the route is visible
        # in the template and its query parameters are declared (the app validates them)
        self.nq_bars_method = (
            root.add_resource("nq")
            .add_resource("bars")
            .add_method(
                "GET",
                integration,
                api_key_required=True,
                request_parameters={
                    f"method.request.querystring.{q}": False
                    for q in ("since", "until", "hours", "symbol")
                },
            )
        )
        health = root.add_resource("health")
        self.health_method = health.add_method("GET", integration, api_key_required=False)
        # API Gateway does not fall back from /health to /{proxy+}: route the child explicitly.
        health.add_resource("detailed").add_method("GET", integration, api_key_required=True)

        self.api_key = self.api.add_api_key(
            "DiscordTradingKey",
            description="magic8 API key for the DiscordTrading bot",
        )
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            name="magic8-default",
            throttle=apigw.ThrottleSettings(rate_limit=USAGE_RATE_PER_S, burst_limit=USAGE_BURST),
            quota=apigw.QuotaSettings(limit=USAGE_QUOTA_PER_DAY, period=apigw.Period.DAY),
            api_stages=[
                apigw.UsagePlanPerApiStage(
                    api=self.api,
                    stage=self.api.deployment_stage,
                    # per method and client (API key): 100/min /predict, 20/min /batch
                    throttle=[
                        apigw.ThrottlingPerMethod(
                            method=methods[(lim.method, lim.path)],
                            throttle=apigw.ThrottleSettings(
                                rate_limit=round(lim.rate_per_s, 4), burst_limit=lim.burst
                            ),
                        )
                        for lim in METHOD_LIMITS
                    ],
                )
            ],
        )
        self.usage_plan.add_api_key(self.api_key)

        ack(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role (needed for execution/access logs);"
            " the AWS policy only allows writing API Gateway's own log groups.",
        )
        ack(
            self.api,
            "AwsSolutions-APIG3",
            "No WAF: the API is key-protected with a usage plan (rate, burst, daily quota) and"
            " stage throttling; a web ACL would cost more than the rest of the API at this load.",
        )
        ack(
            self.api,
            "AwsSolutions-APIG4",
            "Authorization is the API key + usage plan (the DiscordTrading bot's contract);"
            " only GET /health is open, by design, for uptime checks.",
        )
        ack(
            self.api,
            "AwsSolutions-COG4",
            "Machine-to-machine API used by one bot with an API key; there are no end users"
            " to sign in through a Cognito user pool.",
        )
