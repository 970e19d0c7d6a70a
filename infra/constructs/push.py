"""Live push: a WebSocket API ($connect, $disconnect, subscribe, unsubscribe, ping, $default)
backed by the websocket function (routes: magic8.monitor.websocket_routes).

Connections are kept in the state table. The function runs from the shared Lambda image
(CMD functions.websocket.handler.handler; see flow_detection.py for why not a zip).
Producers (monitor, ifd) get execute-api:ManageConnections on this stage (`grant_push`).
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.common import ack, log_group, nag_env, nag_ref
from infra.constructs.functions import WEBSOCKET, WEBSOCKET_AUTHORIZER, SharedImage, image_function
from magic8.monitor.websocket_routes import DEFAULT_MAX_CONNECTIONS, ROUTE_KEYS

MAX_CONNECTIONS_ENV = "MAGIC8_WS_MAX_CONNECTIONS"
WS_ENDPOINT_ENV = "MAGIC8_WS_ENDPOINT"  # https://{api}.execute-api.{region}.amazonaws.com/{stage}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """IAccessLogSettings is an interface (not a struct) in jsii: implement it."""

    def __init__(self, destination: apigwv2.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(
            json.dumps(
                {
                    "requestId": "$context.requestId",
                    "connectionId": "$context.connectionId",
                    "eventType": "$context.eventType",
                    "routeKey": "$context.routeKey",
                    "status": "$context.status",
                    "ip": "$context.identity.sourceIp",
                    "requestTime": "$context.requestTime",
                    "error": "$context.error.message",
                }
            )
        )


class Push(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: SharedImage,
        state_table: ddb.ITable,
        stage_name: str = "prod",
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = image_function(
            self, "WebSocketFunction", WEBSOCKET, image, writes=[state_table]
        )

        # $connect is authorised with the REST API's key (use_api_key wires which one)
        self.authorizer_function = image_function(
            self, "ConnectAuthorizerFunction", WEBSOCKET_AUTHORIZER, image
        )
        self.authorizer = authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer",
            self.authorizer_function,
            identity_source=["route.request.querystring.api_key"],
        )

        def integration(name: str) -> integrations.WebSocketLambdaIntegration:
            return integrations.WebSocketLambdaIntegration(name, self.function)

        self.api = apigwv2.WebSocketApi(
            self,
            "WebSocketApi",
            api_name="magic8-push",
            description="magic8 live updates: IFD signals, confidence, gateway health",
            route_selection_expression="$request.body.action",
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration("Connect"), authorizer=self.authorizer
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration("Disconnect")
            ),
            # an unknown action gets an error naming the actions (not API Gateway's Forbidden)
            default_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration("UnknownAction")
            ),
        )
        for key in ROUTE_KEYS:  # subscribe, unsubscribe, ping (the heartbeat)
            self.api.add_route(key, integration=integration(key.capitalize()))

        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage_name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=50, burst_limit=100),
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(log_group(self, "AccessLogs"))
            ),
        )
        region = Stack.of(self).region
        self.callback_url = f"https://{self.api.api_id}.execute-api.{region}.{Stack.of(self).url_suffix}/{stage_name}"
        self.function.add_environment(WS_ENDPOINT_ENV, self.callback_url)
        # $connect refuses connections beyond this many (429, "connection_limit")
        self.function.add_environment(MAX_CONNECTIONS_ENV, str(max_connections))
        # The handler answers `subscribe` by posting to the connection itself.
        self.grant_push(self.function)

        ack(
            self.api,
            "AwsSolutions-APIG4",
            "$connect has a Lambda authorizer (the REST API key); $disconnect, $default,"
            " subscribe, unsubscribe and ping run on an authorised connection only, which"
            " API Gateway enforces.",
        )

    def use_api_key(self, api_key: apigw.IApiKey) -> None:
        """The authorizer accepts exactly this REST API key (read with GetApiKey)."""
        self.authorizer_function.add_environment("MAGIC8_API_KEY_ID", api_key.key_id)
        self.authorizer_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["apigateway:GET"],
                resources=[
                    Stack.of(self).format_arn(
                        service="apigateway",
                        account="",
                        resource="/apikeys",
                        resource_name=api_key.key_id,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )

    def grant_push(self, grantee: iam.IGrantable) -> None:
        """execute-api:ManageConnections on this stage's @connections (post, get, delete)."""
        self.stage.grant_management_api_access(grantee)
        if isinstance(grantee, Construct):
            partition, region, account = nag_env(self)
            ack(
                grantee,
                f"AwsSolutions-IAM5[Resource::arn:{partition}:execute-api:"
                f"{region}:{account}:{nag_ref(self.api)}/{self.stage.stage_name}/*/@connections/*]",
                "Pushing to WebSocket clients: connection ids are created at run time, so the"
                " grant names this API and stage and leaves only the connection id open.",
            )
