"""The synthesized magic8 stack: every resource the issue asks for, with its key properties."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from aws_cdk.assertions import Match
from pydantic import ValidationError

from magic8 import resources as r
from magic8.domain.trades import TradeRequest
from magic8.settings import AwsSettings
from tests.infrastructure.conftest import ALERT_EMAILS, Synth

pytestmark = pytest.mark.xdist_group("cdk")


def _ref_id(value: Any) -> str | None:
    """The logical id a {Ref}/{Fn::GetAtt} points to."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _mentions(value: Any) -> set[str]:
    """Every logical id referenced anywhere inside `value`."""
    found: set[str] = set()
    if isinstance(value, dict):
        rid = _ref_id(value)
        if rid:
            found.add(rid)
        for v in value.values():
            found |= _mentions(v)
    elif isinstance(value, list):
        for v in value:
            found |= _mentions(v)
    return found


def _table_ids(s: Synth) -> dict[str, str]:
    """TableSpec logical id -> CloudFormation logical id."""
    out: dict[str, str] = {}
    for spec in r.TABLES:
        matches = [
            k for k in s.resources("AWS::DynamoDB::Table") if k.startswith(f"Data{spec.logical_id}")
        ]
        assert len(matches) == 1, (spec.logical_id, matches)
        out[spec.logical_id] = matches[0]
    return out


def _function_id(s: Synth, prefix: str) -> str:
    ids = [k for k in s.resources("AWS::Lambda::Function") if k.startswith(prefix)]
    assert len(ids) == 1, (prefix, ids)
    return ids[0]


def _policies_of_role(s: Synth, role_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _role_of_function(s: Synth, fn_id: str) -> str:
    role = s.template_json["Resources"][fn_id]["Properties"]["Role"]
    rid = _ref_id(role)
    assert rid
    return rid


# --------------------------------------------------------------------------- synthesis


def test_synthesizes(synth: Synth) -> None:
    assert synth.template is not None, synth.error
    assert synth.error is None, synth.error


def test_committed_context_resolves_the_az_lookup(synth: Synth) -> None:
    # Explicit env + VPC -> AZ lookup; cdk.context.json answers it, so nothing is missing.
    assert not synth.manifest.get("missing"), synth.manifest.get("missing")
    subnets = synth.resources("AWS::EC2::Subnet").values()
    azs = {json.dumps(sn["Properties"]["AvailabilityZone"]) for sn in subnets}
    assert azs == {'"us-east-1a"', '"us-east-1b"'}


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("spec", r.TABLES, ids=lambda t: t.logical_id)
def test_table_from_shared_definition(synth: Synth, spec: r.TableSpec) -> None:
    props: dict[str, Any] = {
        "KeySchema": spec.key_schema(),
        "AttributeDefinitions": Match.array_equals(spec.attribute_definitions()),
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
    }
    if spec.ttl_attribute:
        props["TimeToLiveSpecification"] = {"AttributeName": spec.ttl_attribute, "Enabled": True}
    if spec.indexes:
        props["GlobalSecondaryIndexes"] = [
            Match.object_like(
                {
                    "IndexName": ix.name,
                    "KeySchema": [
                        {"AttributeName": ix.partition_key.name, "KeyType": "HASH"},
                        *(
                            [{"AttributeName": ix.sort_key.name, "KeyType": "RANGE"}]
                            if ix.sort_key
                            else []
                        ),
                    ],
                }
            )
            for ix in spec.indexes
        ]
    synth.template.has_resource_properties("AWS::DynamoDB::Table", props)


def test_exactly_the_shared_tables(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::DynamoDB::Table", len(r.TABLES))
    for table in synth.resources("AWS::DynamoDB::Table").values():
        assert table["DeletionPolicy"] == "Retain"


def test_flow_stream_encrypted_with_retention(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "ShardCount": r.FLOW_STREAM.shard_count,
            "RetentionPeriodHours": r.FLOW_STREAM.retention_hours,
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        },
    )


def test_alerts_topic_kms_and_ssl_only(synth: Synth) -> None:
    topics = synth.resources("AWS::SNS::Topic")
    assert len(topics) == 1
    ((topic_id, topic),) = topics.items()
    key_id = _ref_id(topic["Properties"]["KmsMasterKeyId"])
    key = synth.template_json["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    # CloudWatch alarms may use the key to publish to the encrypted topic.
    principals = [
        st.get("Principal", {}).get("Service") for st in key["Properties"]["KeyPolicy"]["Statement"]
    ]
    assert "cloudwatch.amazonaws.com" in principals

    synth.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_email_subscriptions_from_context(synth: Synth) -> None:
    emails = {
        s["Properties"]["Endpoint"]
        for s in synth.resources("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    }
    assert emails == set(ALERT_EMAILS)
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "sqs", "RawMessageDelivery": True}
    )


def test_every_queue_encrypted_and_ssl_only(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    # ifd on-failure, monitor on-failure, alerts subscriber + its DLQ, history + its DLQ
    assert len(queues) == 6
    policies = synth.resources("AWS::SQS::QueuePolicy").values()
    for qid, q in queues.items():
        props = q["Properties"]
        assert props.get("KmsMasterKeyId") or props.get("SqsManagedSseEnabled"), qid
        denied = [
            p
            for p in policies
            if {"Ref": qid} in p["Properties"]["Queues"]
            and any(
                st["Effect"] == "Deny"
                and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                for st in p["Properties"]["PolicyDocument"]["Statement"]
            )
        ]
        assert denied, f"{qid} has no SSL-only policy"
    subscriber = next(q for k, q in queues.items() if k.startswith("DataAlertsSubscriberQueue"))
    assert subscriber["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5


# --------------------------------------------------------------------------- functions


FUNCTION_CMDS = {
    # every function names its handler, the image's default CMD (predict) included
    "PredictionApiPredictFunction": ["functions.predict.handler.handler"],
    "MonitoringMonitorFunction": ["functions.monitor.handler.handler"],
    "FlowDetectionIfdFunction": ["functions.ifd.handler.handler"],
    "PushWebSocketFunction": ["functions.websocket.handler.handler"],
    "HistoryHistoryFunction": ["functions.history.handler.handler"],
}


def test_function_packaging(synth: Synth) -> None:
    res = synth.template_json["Resources"]
    uris = set()
    for prefix, cmd in FUNCTION_CMDS.items():
        props = res[_function_id(synth, prefix)]["Properties"]
        assert props["PackageType"] == "Image", prefix
        assert props["Architectures"] == ["x86_64"], prefix
        uris.add(json.dumps(props["Code"]["ImageUri"]))
        assert props["ImageConfig"]["Command"] == cmd, prefix
    assert len(uris) == 1  # one image for every function, built once
    synth.template.resource_count_is("AWS::Lambda::LayerVersion", 1)  # CDK's AWS CLI layer only
    assets = json.loads((synth.outdir / "Magic8.assets.json").read_text())
    dockerfiles = sorted(a["source"]["dockerFile"] for a in assets["dockerImages"].values())
    assert dockerfiles == ["functions/Dockerfile", "gateway_host/Dockerfile"]


@pytest.mark.parametrize(
    ("prefix", "service"),
    [
        ("PredictionApiPredictFunction", "predict"),
        ("MonitoringMonitorFunction", "monitor"),
        ("FlowDetectionIfdFunction", "ifd"),
        ("PushWebSocketFunction", "websocket"),
        ("HistoryHistoryFunction", "history"),
    ],
)
def test_function_environment_tracing_and_logs(synth: Synth, prefix: str, service: str) -> None:
    res = synth.template_json["Resources"]
    props = res[_function_id(synth, prefix)]["Properties"]
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == service
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "magic8"
    # every resource name the typed settings read is set, and each is a real settings field
    fields = {
        (f.validation_alias or f"MAGIC8_{name}").upper()
        for name, f in AwsSettings.model_fields.items()
        if isinstance(f.validation_alias, str | type(None))
    }
    if service == "predict":  # + the predict function's own settings (AppConfig location)
        from functions.predict.settings import ApiSettings

        fields |= {f"MAGIC8_{name}".upper() for name in ApiSettings.model_fields}
    if service == "websocket":  # + the connection cap
        from functions.websocket.deps import WebSocketSettings

        fields |= {f"MAGIC8_{name}".upper() for name in WebSocketSettings.model_fields}
    magic8_vars = {k for k in env if k.startswith("MAGIC8_")} - {"MAGIC8_WS_ENDPOINT"}
    assert magic8_vars <= fields, magic8_vars - fields
    expected = {t.env_var for t in r.TABLES} | {
        r.FLOW_STREAM.env_var,
        r.ALERTS_TOPIC.env_var,
        r.IFD_FAILURE_QUEUE.env_var,
        r.ALERTS_SUBSCRIBER_QUEUE.env_var,
    }
    assert expected <= set(env)
    for spec in r.TABLES:
        assert _ref_id(env[spec.env_var]) == _table_ids(synth)[spec.logical_id]
    if service != "history":  # the history writer pushes nothing
        assert "MAGIC8_WS_ENDPOINT" in env
    assert props["TracingConfig"] == {"Mode": "Active"}
    log_group = res[_ref_id(props["LoggingConfig"]["LogGroup"])]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_ifd_kinesis_event_source(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": _function_id(synth, "FlowDetectionIfdFunction")},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 100,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 3600,
            "ParallelizationFactor": 1,
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": {
                        "Fn::GetAtt": [Match.string_like_regexp("DataIfdFailureQueue"), "Arn"]
                    }
                }
            },
        },
    )


def test_history_queue_consumer_dlq_and_senders(synth: Synth) -> None:
    """Predict and monitor hand history points to the history queue (SendMessage, its URL
    in their environment); λ history consumes it with partial batch failures; a message
    failing HISTORY_MAX_RECEIVES times goes to its dead-letter queue, alarmed on depth."""
    res = synth.template_json["Resources"]
    queues = synth.resources("AWS::SQS::Queue")
    history_q = next(k for k in queues if k.startswith(f"History{r.HISTORY_QUEUE.logical_id}"))
    dlq = next(k for k in queues if k.startswith(f"History{r.HISTORY_DLQ.logical_id}"))
    redrive = queues[history_q]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == r.HISTORY_MAX_RECEIVES
    assert _ref_id(redrive["deadLetterTargetArn"]) == dlq
    consumer = _function_id(synth, "HistoryHistoryFunction")
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": consumer},
            "EventSourceArn": {"Fn::GetAtt": [history_q, "Arn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    timeout = res[consumer]["Properties"]["Timeout"]
    assert queues[history_q]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    for prefix in ("PredictionApiPredictFunction", "MonitoringMonitorFunction"):
        fn = _function_id(synth, prefix)
        env = res[fn]["Properties"]["Environment"]["Variables"]
        assert _ref_id(env[r.HISTORY_QUEUE.env_var]) == history_q, prefix
        sends = [
            st
            for st in _policies_of_role(synth, _role_of_function(synth, fn))
            if history_q in _mentions(st["Resource"])
        ]
        actions = {
            a
            for st in sends
            for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        }
        assert "sqs:SendMessage" in actions and not any("Receive" in a for a in actions), prefix
    depth = [
        a
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and any(_ref_id(d.get("Value")) == dlq for d in a["Properties"].get("Dimensions", []))
    ]
    assert depth, "the history DLQ has no depth alarm"


def assert_every_five_minutes(synth: Synth, function: str, target: dict[str, Any]) -> None:
    """An enabled rate(5 minutes) rule targets `function` with `target`'s extra properties."""
    arn = {"Fn::GetAtt": [_function_id(synth, function), "Arn"]}
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": arn, **target})],
        },
    )


def test_monitor_schedule_every_five_minutes(synth: Synth) -> None:
    assert_every_five_minutes(
        synth,
        "MonitoringMonitorFunction",
        {"RetryPolicy": Match.object_like({"MaximumRetryAttempts": 2})},
    )


# --------------------------------------------------------------------------- APIs


def _methods(s: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, verb) -> method properties, paths rebuilt from the resource tree."""
    res = s.template_json["Resources"]
    paths: dict[str, str] = {}

    def path_of(rid: str) -> str:
        if rid in paths:
            return paths[rid]
        props = res[rid]["Properties"]
        parent = props["ParentId"]
        parent_path = "" if "Fn::GetAtt" in parent else path_of(_ref_id(parent) or "")
        paths[rid] = f"{parent_path}/{props['PathPart']}"
        return paths[rid]

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for m in s.resources("AWS::ApiGateway::Method").values():
        rid = m["Properties"]["ResourceId"]
        path = "/" if "Fn::GetAtt" in rid else path_of(_ref_id(rid) or "")
        out[(path, m["Properties"]["HttpMethod"])] = m["Properties"]
    return out


def test_rest_api_keys_and_routes(synth: Synth) -> None:
    methods = _methods(synth)
    assert methods[("/health", "GET")].get("ApiKeyRequired") in (None, False)
    for route in [
        ("/predict", "POST"),
        ("/predict/batch", "POST"),
        ("/{proxy+}", "ANY"),
        ("/health/detailed", "GET"),
    ]:
        assert methods[route]["ApiKeyRequired"] is True, route
    for route in [("/predict", "POST"), ("/predict/batch", "POST")]:
        assert "RequestValidatorId" in methods[route], route
        assert "application/json" in methods[route]["RequestModels"], route


def test_nq_bars_route_is_keyed_and_served_by_the_app(synth: Synth) -> None:
    from functions.predict.app import create_app

    method = _methods(synth)[("/nq/bars", "GET")]
    assert method["ApiKeyRequired"] is True
    assert set(method["RequestParameters"]) == {
        f"method.request.querystring.{q}" for q in ("since", "until", "hours", "symbol")
    }
    # the same route and query parameters in the FastAPI app behind the integration
    route = create_app().openapi()["paths"]["/nq/bars"]
    assert set(route) == {"get"}
    assert {p["name"] for p in route["get"]["parameters"] if p["in"] == "query"} == {
        "since",
        "until",
        "hours",
        "symbol",
    }
    (dist,) = synth.resources("AWS::CloudFront::Distribution").values()
    behaviours = dist["Properties"]["DistributionConfig"]["CacheBehaviors"]
    patterns = {b["PathPattern"] for b in behaviours}
    assert "/nq/*" in patterns  # the dashboard reads the bars through its own origin


def test_request_validator_and_batch_model(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True}
    )
    models = {
        m["Properties"]["Name"]: m["Properties"]
        for m in synth.resources("AWS::ApiGateway::Model").values()
    }
    batch = models["BatchRequest"]["Schema"]
    assert batch["required"] == ["requests"]
    # the batch size is the app's: 413 "Request too large" in AWS as locally
    assert "maxItems" not in batch["properties"]["requests"]
    assert batch["properties"]["requests"]["minItems"] == 1
    # one source: the edge requires exactly what the app's TradeRequest requires
    required = [n for n, f in TradeRequest.model_fields.items() if f.is_required()]
    assert sorted(required) == ["predicted_price", "premium", "strategy", "symbol"]
    assert models["TradeRequest"]["Schema"]["required"] == required
    assert batch["properties"]["requests"]["items"]["required"] == required
    # the bot's curl body passes the synthesized models and the app's own model
    bot = {
        "requests": [
            {"symbol": "SPX", "strategy": "Butterfly", "premium": 24.82, "predicted_price": 5855},
            {"symbol": "SPXW", "strategy": "IronCondor", "premium": 0.65, "predicted_price": 5855},
        ]
    }
    jsonschema.Draft4Validator(batch).validate(bot)
    jsonschema.Draft4Validator(batch).validate({"requests": bot["requests"] * 101})
    for trade in bot["requests"]:
        jsonschema.Draft4Validator(models["TradeRequest"]["Schema"]).validate(trade)
        TradeRequest.model_validate(trade)
    missing = {"symbol": "SPX", "strategy": "Butterfly", "premium": 24.82}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(models["TradeRequest"]["Schema"]).validate(missing)
    with pytest.raises(ValidationError):
        TradeRequest.model_validate(missing)
    too_large = [
        r["Properties"]
        for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["ResponseType"] == "REQUEST_TOO_LARGE"
    ]
    assert too_large[0]["StatusCode"] == "413"
    assert "Request too large" in too_large[0]["ResponseTemplates"]["application/json"]
    synth.template.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {"ResponseType": "BAD_REQUEST_BODY", "StatusCode": "422"},
    )


def test_api_key_and_usage_plan(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    synth.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 10, "BurstLimit": 20},
            "Quota": {"Limit": 20000, "Period": "DAY"},
            "ApiStages": Match.array_with([Match.object_like({"Stage": Match.any_value()})]),
        },
    )
    synth.template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)
    # per-method throttles per client (key): 100/min /predict, 20/min /predict/batch
    plan = next(iter(synth.resources("AWS::ApiGateway::UsagePlan").values()))["Properties"]
    throttles = plan["ApiStages"][0]["Throttle"]
    assert throttles["/predict/POST"] == {"RateLimit": 1.6667, "BurstLimit": 100}
    assert throttles["/predict/batch/POST"] == {"RateLimit": 0.3333, "BurstLimit": 20}
    synth.template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "prod",
            "TracingEnabled": True,
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100})]
            ),
        },
    )


def test_websocket_api(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"},
    )
    routes = {
        r_["Properties"]["RouteKey"] for r_ in synth.resources("AWS::ApiGatewayV2::Route").values()
    }
    # every action the handler answers has its route (no "Forbidden" for unsubscribe/ping),
    # and $default answers unknown actions with an error naming them
    assert routes == {"$connect", "$disconnect", "$default", "subscribe", "unsubscribe", "ping"}
    function_id = _function_id(synth, "PushWebSocketFunction")
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    assert integrations and all(
        function_id in json.dumps(i["Properties"]["IntegrationUri"]) for i in integrations.values()
    )
    env = synth.resources("AWS::Lambda::Function")[function_id]["Properties"]["Environment"]
    assert env["Variables"]["MAGIC8_WS_MAX_CONNECTIONS"] == "100"
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {"StageName": "prod", "AutoDeploy": True, "AccessLogSettings": Match.any_value()},
    )
    # monitor and ifd (and the websocket function itself) may post to connections
    for prefix in (
        "MonitoringMonitorFunction",
        "FlowDetectionIfdFunction",
        "PushWebSocketFunction",
    ):
        role = _role_of_function(synth, _function_id(synth, prefix))
        actions = {
            a
            for st in _policies_of_role(synth, role)
            for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        }
        assert "execute-api:ManageConnections" in actions, prefix


# --------------------------------------------------------------------------- gateway


def test_gateway_single_task_service(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DesiredCount": 1,
            "LaunchType": "FARGATE",
            "DeploymentConfiguration": Match.object_like(
                {"MinimumHealthyPercent": 0, "MaximumPercent": 100}
            ),
            "NetworkConfiguration": {
                "AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "ENABLED"})
            },
        },
    )
    synth.template.resource_count_is("AWS::EC2::NatGateway", 0)
    synth.template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )
    for sg in synth.resources("AWS::EC2::SecurityGroup").values():
        assert not sg["Properties"].get("SecurityGroupIngress")
    synth.template.resource_count_is("AWS::EC2::FlowLog", 1)


def test_gateway_containers_secrets_health_logs(synth: Synth) -> None:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    containers = {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}
    host, ib = containers["GatewayHost"], containers["IbGateway"]
    secret_names = {s_["Name"] for s_ in host["Secrets"]} | {s_["Name"] for s_ in ib["Secrets"]}
    assert secret_names == {"DATABENTO_API_KEY", "TWS_USERID", "TWS_PASSWORD"}
    arns = json.dumps([s_["ValueFrom"] for s_ in host["Secrets"] + ib["Secrets"]])
    assert "magic8/databento" in arns and "magic8/ib" in arns
    assert "/health" in " ".join(host["HealthCheck"]["Command"])
    for c in (host, ib):
        assert c["LogConfiguration"]["LogDriver"] == "awslogs"
    env = {e["Name"]: e["Value"] for e in host["Environment"]}
    assert {t.env_var for t in (r.MARKET_TABLE, r.STATE_TABLE)} <= set(env)
    assert r.FLOW_STREAM.env_var in env
    assert not any("secret" in k.lower() or "password" in k.lower() for k in env)
    for lg in synth.resources("AWS::Logs::LogGroup").values():
        assert lg["Properties"]["RetentionInDays"] == 30


def test_gateway_ib_sidecar_pinned_unattended_read_only(synth: Synth) -> None:
    from infra.constructs.gateway import (
        DEFAULT_IB_GATEWAY_IMAGE,
        DIGEST_PINNED,
        HEALTH_RETRIES,
        HEALTH_START_PERIOD_S,
    )

    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    containers = {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}
    host, ib = containers["GatewayHost"], containers["IbGateway"]
    # pinned by digest, never a floating tag
    assert ib["Image"] == DEFAULT_IB_GATEWAY_IMAGE and DIGEST_PINNED.match(ib["Image"])
    assert "@sha256:" in ib["Image"] and ":stable" not in ib["Image"]
    env = {e["Name"]: e["Value"] for e in ib["Environment"]}
    assert env["TRADING_MODE"] == "paper"
    assert env["READ_ONLY_API"] == "yes"
    assert env["TWOFA_TIMEOUT_ACTION"] == "restart" and env["RELOGIN_AFTER_TWOFA_TIMEOUT"] == "yes"
    assert env["AUTO_RESTART_TIME"]  # the nightly restart without a second factor
    # credentials only from Secrets Manager, never in the environment
    assert {s_["Name"] for s_ in ib["Secrets"]} == {"TWS_USERID", "TWS_PASSWORD"}
    assert not any("PASSWORD" in k or "USERID" in k for k in env)
    # no health check on the sidecar (unhealthy essential container = task stop = crash
    # loop while a 2FA prompt waits); the host's check has a grace period and retries
    assert "HealthCheck" not in ib
    hc = host["HealthCheck"]
    assert hc["StartPeriod"] == HEALTH_START_PERIOD_S and hc["Retries"] == HEALTH_RETRIES
    assert host["StopTimeout"] == 30  # SIGTERM flush fits the ECS stop timeout
    host_env = {e["Name"]: e["Value"] for e in host["Environment"]}
    assert host_env["MAGIC8_FLOW_SPILL_DIR"].startswith("/tmp/")
    assert float(host_env["MAGIC8_SHUTDOWN_TIMEOUT_S"]) < 30


def test_gateway_refuses_a_floating_ib_image_tag() -> None:
    from pathlib import Path

    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as ddb
    from aws_cdk import aws_kinesis as kinesis

    from infra.constructs.gateway import GatewayHost

    stack = cdk.Stack(cdk.App(), "T")
    table = ddb.Table(
        stack, "Tb", partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING)
    )
    with pytest.raises(ValueError, match="pinned by digest"):
        GatewayHost(
            stack,
            "Gw",
            build_context=Path("."),
            dockerfile="gateway_host/Dockerfile",
            environment={},
            market_table=table,
            state_table=table,
            stream=kinesis.Stream(stack, "S"),
            ib_gateway_image="ghcr.io/gnzsnz/ib-gateway:stable",
        )


def test_gateway_least_privilege(synth: Synth) -> None:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    role_id = _ref_id(task["Properties"]["TaskRoleArn"])
    statements = _policies_of_role(synth, role_id)
    referenced = set().union(*(_mentions(st["Resource"]) for st in statements))
    tables = _table_ids(synth)
    stream_id = next(iter(synth.resources("AWS::Kinesis::Stream")))
    assert referenced == {
        tables["MarketTable"],
        tables["StateTable"],
        tables["BarsTable"],
        stream_id,
    }
    # the NQ bars table: upserts only (no read, no delete)
    bars_actions = {
        a
        for st in statements
        if tables["BarsTable"] in _mentions(st["Resource"])
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert bars_actions == {"dynamodb:PutItem", "dynamodb:BatchWriteItem"}
    actions = {a for st in statements for a in st["Action"]}
    assert all(a.split(":")[0] in {"dynamodb", "kinesis"} for a in actions), actions
    assert "kinesis:PutRecords" in actions
    assert not any(a.startswith("kinesis:Get") for a in actions)


# --------------------------------------------------------------------------- IAM


def test_no_wildcard_actions_on_data_resources(synth: Synth) -> None:
    data_types = {
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
    }
    data_ids = {k for k, v in synth.template_json["Resources"].items() if v["Type"] in data_types}
    for pid, policy in synth.resources("AWS::IAM::Policy").items():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
            assert "*" not in actions, pid
            if _mentions(st.get("Resource")) & data_ids or st.get("Resource") == "*":
                wild = [a for a in actions if a.endswith(":*")]
                assert not wild, (pid, wild)
            if st.get("Resource") == "*":
                services = {a.split(":")[0] for a in actions}
                assert not services & {"dynamodb", "kinesis", "sns", "sqs"}, (pid, actions)


def test_function_data_access_is_scoped(synth: Synth) -> None:
    tables = _table_ids(synth)

    def tables_of(prefix: str) -> set[str]:
        role = _role_of_function(synth, _function_id(synth, prefix))
        refs = set().union(*(_mentions(st["Resource"]) for st in _policies_of_role(synth, role)))
        return {name for name, tid in tables.items() if tid in refs}

    assert tables_of("PushWebSocketFunction") == {"StateTable"}
    assert tables_of("FlowDetectionIfdFunction") == {
        "SignalsTable",
        "StateTable",
        "IdempotencyTable",
    }
    assert tables_of("PredictionApiPredictFunction") == {
        "MarketTable",
        "HistoryTable",
        "SignalsTable",
        "StateTable",
        "BarsTable",
    }
    assert tables_of("MonitoringMonitorFunction") == {"MarketTable", "HistoryTable", "StateTable"}
    assert tables_of("HistoryHistoryFunction") == {"HistoryTable"}


# --------------------------------------------------------------------------- observability


def test_alarms_to_alerts_topic(synth: Synth) -> None:
    alarms = list(synth.resources("AWS::CloudWatch::Alarm").values())
    topic_id = next(iter(synth.resources("AWS::SNS::Topic")))
    metrics = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms
    }
    for expected in [
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/Lambda", "Invocations"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("magic8", "GatewayStale"),
        ("AWS/ApiGateway", "5XXError"),
    ]:
        assert expected in metrics, expected
    errors = [a for a in alarms if a["Properties"]["MetricName"] == "Errors"]
    assert len(errors) == 5  # predict, monitor, ifd, websocket, history
    for a in alarms:
        assert {"Ref": topic_id} in a["Properties"]["AlarmActions"], a
    gateway = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in alarms
        if a["Properties"].get("Dimensions") == [{"Name": "service", "Value": "gateway"}]
    }
    assert set(gateway) == {
        "MboAgeSeconds",
        "ProducerOldestAgeSeconds",
        "Gaps",
        "BudgetExceeded",
    }
    assert gateway["MboAgeSeconds"]["Threshold"] == 300
    assert gateway["MboAgeSeconds"]["TreatMissingData"] == "notBreaching"  # outside the window
    assert gateway["BudgetExceeded"]["Threshold"] == 1
    from gateway_host.metrics import METRIC_NAMES

    assert set(gateway) <= METRIC_NAMES  # the names the gateway emits
    stale = next(a for a in alarms if a["Properties"]["MetricName"] == "GatewayStale")
    assert stale["Properties"]["Dimensions"] == [{"Name": "service", "Value": "monitor"}]
    synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


# --------------------------------------------------------------------------- dashboard + outputs


def test_dashboard_hosting(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "DefaultRootObject": "index.html",
                    "DefaultCacheBehavior": Match.object_like(
                        {"ViewerProtocolPolicy": "redirect-to-https"}
                    ),
                    "Origins": Match.array_with(
                        [Match.object_like({"OriginAccessControlId": Match.any_value()})]
                    ),
                }
            )
        },
    )
    (dist,) = synth.resources("AWS::CloudFront::Distribution").values()
    behaviours = {
        b["PathPattern"]: b for b in dist["Properties"]["DistributionConfig"]["CacheBehaviors"]
    }
    assert {"/signals*", "/confidence/*", "/health*"} <= set(behaviours)
    for b in behaviours.values():  # API reads through the same origin: uncached, read-only
        assert b["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"]
    # the page's config.json (markers resolved at deploy) names the distribution itself
    # (same origin, no CORS) and the WebSocket API
    (deploy,) = synth.resources("Custom::CDKBucketDeployment").values()
    markers = json.dumps(deploy["Properties"].get("SourceMarkers"))
    dist_id = next(iter(synth.resources("AWS::CloudFront::Distribution")))
    ws_id = next(iter(synth.resources("AWS::ApiGatewayV2::Api")))
    assert dist_id in markers and ws_id in markers, markers
    for bucket in synth.resources("AWS::S3::Bucket").values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
        assert bucket["Properties"]["BucketEncryption"]


def test_outputs(synth: Synth) -> None:
    outputs = synth.template_json["Outputs"]
    for name in ("ApiUrl", "WebSocketUrl", "AlertsTopicArn", "DashboardUrl", "ApiKeyId"):
        assert name in outputs, name
    assert re.search("wss://", json.dumps(outputs["WebSocketUrl"]["Value"]))


# --- least privilege (issue 16) -------------------------------------------------------------


def test_every_rest_method_but_get_health_requires_the_key(synth: Synth) -> None:
    methods = _methods(synth)
    assert ("/", "ANY") in methods  # the root is routed too, and keyed
    open_methods = [
        route
        for route, props in methods.items()
        if route[1] != "OPTIONS" and props.get("ApiKeyRequired") is not True
    ]
    assert open_methods == [("/health", "GET")]


def test_websocket_connect_is_authorised_with_the_api_key(synth: Synth) -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.resources("AWS::ApiGatewayV2::Route").values()
    }
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    (auth,) = synth.resources("AWS::ApiGatewayV2::Authorizer").values()
    assert auth["Properties"]["AuthorizerType"] == "REQUEST"
    assert auth["Properties"]["IdentitySource"] == ["route.request.querystring.api_key"]
    functions = synth.resources("AWS::Lambda::Function").values()
    authorizer = [
        f
        for f in functions
        if "MAGIC8_API_KEY_ID" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(authorizer) == 1
    assert authorizer[0]["Properties"]["ImageConfig"]["Command"] == [
        "functions.websocket.authorizer.handler"
    ]


def test_ib_gateway_is_read_only_and_the_host_root_filesystem_too(synth: Synth) -> None:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    containers = {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}
    ib_env = {e["Name"]: e["Value"] for e in containers["IbGateway"]["Environment"]}
    assert ib_env["READ_ONLY_API"] == "yes"
    assert containers["GatewayHost"]["ReadonlyRootFilesystem"] is True
    assert {m["ContainerPath"] for m in containers["GatewayHost"]["MountPoints"]} == {"/tmp"}


def test_predict_cache_is_warmed_every_five_minutes(synth: Synth) -> None:
    """The warm event goes to the predict function (its caches are in its memory)."""
    from magic8.domain.warming import WARM_EVENT

    assert_every_five_minutes(
        synth,
        "PredictionApiPredictFunction",
        {
            "Input": json.dumps(WARM_EVENT, separators=(",", ":")),
            "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 0}),
        },
    )


def test_monitor_async_invocations_have_an_on_failure_destination(synth: Synth) -> None:
    configs = list(synth.resources("AWS::Lambda::EventInvokeConfig").values())
    assert configs
    for cfg in configs:
        dest = cfg["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert "Fn::GetAtt" in dest and dest["Fn::GetAtt"][1] == "Arn"
        queue_id = dest["Fn::GetAtt"][0]
        assert synth.resources("AWS::SQS::Queue")[queue_id]


def test_recommend_flags_live_in_appconfig(synth: Synth) -> None:
    """POST /recommend's flags and weights: a hosted AppConfig profile with the defaults,
    deployed to an environment the predict function may read (changeable without a deploy
    of the stack); the function is told where it is."""
    from magic8.adapters.recommend_sources import DEFAULT_FLAGS

    synth.template.has_resource_properties(
        "AWS::AppConfig::Application", {"Name": "magic8-recommend"}
    )
    versions = synth.resources("AWS::AppConfig::HostedConfigurationVersion")
    assert [json.loads(v["Properties"]["Content"]) for v in versions.values()] == [DEFAULT_FLAGS]
    synth.template.resource_count_is("AWS::AppConfig::Deployment", 1)
    fns = [
        f["Properties"]
        for f in synth.resources("AWS::Lambda::Function").values()
        if "MAGIC8_APPCONFIG_PROFILE" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(fns) == 1
    env = fns[0]["Environment"]["Variables"]
    assert env["MAGIC8_APPCONFIG_APPLICATION"] == "magic8-recommend"
    policies = json.dumps(synth.resources("AWS::IAM::Policy"))
    assert "appconfig:GetLatestConfiguration" in policies
