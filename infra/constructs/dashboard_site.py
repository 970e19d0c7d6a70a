"""Static hosting of the trader dashboard: private S3 bucket + CloudFront (origin access control).

The assets come from a folder (layers/shared/magic8_dev/dashboard/static); a `config.json`
next to them tells the page where the API and the WebSocket live.

The page reads the REST API through the same distribution (behaviours for the read-only
paths it uses -> the API stage, uncached, x-api-key forwarded), so the browser never
makes a cross-origin call and the API needs no CORS. The key is still required: the
page asks the trader for it. WebSockets are not subject to CORS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.constructs.common import ack, log_group

# The read-only API paths the dashboard page calls (served by the predict function).
DASHBOARD_API_PATHS: tuple[str, ...] = (
    "/signals*",
    "/nq/*",
    "/watchlist*",
    "/confidence/*",
    "/market/*",
    "/accuracy*",
    "/health*",
)


class DashboardSite(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        static_dir: Path,
        api: apigw.RestApi,
        ws_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        private: dict[str, Any] = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "removal_policy": RemovalPolicy.DESTROY,
        }
        self.logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,  # CloudFront logs
            auto_delete_objects=False,
            **private,
        )
        self.bucket = s3.Bucket(
            self,
            "AssetsBucket",
            server_access_logs_bucket=self.logs_bucket,
            server_access_logs_prefix="s3/",
            **private,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="magic8 dashboard",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            enable_logging=True,
            log_bucket=self.logs_bucket,
            log_file_prefix="cloudfront/",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        api_origin = origins.RestApiOrigin(api)
        for pattern in DASHBOARD_API_PATHS:
            self.distribution.add_behavior(
                pattern,
                api_origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            )
        self.url = f"https://{self.distribution.distribution_domain_name}"
        config = {"apiUrl": self.url, "wsUrl": ws_url}

        self.deployment: s3deploy.BucketDeployment | None = None
        if static_dir.is_dir():
            self.deployment = s3deploy.BucketDeployment(
                self,
                "Deploy",
                destination_bucket=self.bucket,
                sources=[
                    s3deploy.Source.asset(str(static_dir)),
                    s3deploy.Source.json_data("config.json", config),
                ],
                distribution=self.distribution,
                distribution_paths=["/*"],
                prune=True,
                log_group=log_group(self, "DeployLogs"),
            )

        ack(
            self.distribution,
            "AwsSolutions-CFR1",
            "No geo restriction: traders may read the dashboard from anywhere.",
        )
        ack(
            self.distribution,
            "AwsSolutions-CFR2",
            "No WAF: static files only behind CloudFront; the data APIs have their own"
            " throttling. A web ACL would be the largest line of the monthly bill.",
        )
        ack(
            self.distribution,
            "AwsSolutions-CFR4",
            "Uses the default *.cloudfront.net certificate (no custom domain), for which"
            " CloudFront does not allow choosing the minimum TLS version.",
        )
