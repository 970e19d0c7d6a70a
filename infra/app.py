"""CDK entry point: `npx cdk synth` runs `.venv/bin/python -m infra.app` (see cdk.json).

Context (cdk.json, cdk.context.json or `-c key=value`):
- account / region: the target environment (default: CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION,
  region falling back to us-east-1). With an explicit account the VPC's AZs are looked up
  once and cached in cdk.context.json (committed, so synth stays offline).
- alertEmails: e-mail addresses subscribed to the alerts topic (list or comma-separated).
- ibGatewayImage: the IB Gateway container image, pinned by digest (default: the pin in
  infra/constructs/gateway.py); ibTradingMode: paper | live.

cdk-nag (AwsSolutions) always runs: an unacknowledged finding fails synthesis.
aws-cdk-lib's built-in CloudFormation template validation costs ~20 s of CPU per synth,
so `cdk synth` skips it unless CDK_VALIDATION=true; tests/infrastructure always runs it
(and fails on any finding).
"""

from __future__ import annotations

import os
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.constructs.gateway import DEFAULT_IB_GATEWAY_IMAGE
from infra.stack import Magic8Stack

STACK_NAME = "Magic8"


def _emails(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [e.strip() for e in value.split(",") if e.strip()]
    return [str(e) for e in value]


def build_app(app: App | None = None, *, nag: bool = True) -> tuple[App, Magic8Stack]:
    app = app or App()
    ctx = app.node.try_get_context
    account = ctx("account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = ctx("region") or os.environ.get("CDK_DEFAULT_REGION") or "us-east-1"
    stack = Magic8Stack(
        app,
        STACK_NAME,
        env=Environment(account=account, region=region),
        description="magic8: 0DTE win-probability API and NQ options institutional flow alerts",
        alert_emails=_emails(ctx("alertEmails")),
        ib_gateway_image=ctx("ibGatewayImage") or DEFAULT_IB_GATEWAY_IMAGE,
        ib_trading_mode=ctx("ibTradingMode") or "paper",
    )
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def main() -> None:
    validate = os.environ.get("CDK_VALIDATION", "false").lower() in ("1", "true", "yes")
    app, _ = build_app(App(builtin_cloud_formation_validation=validate))
    app.synth()


if __name__ == "__main__":
    main()
