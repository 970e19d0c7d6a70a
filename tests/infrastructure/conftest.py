"""One synthesis of the real CDK app per test session, shared by the infrastructure tests.

Synth through jsii is slow, so the app (with the cdk-nag AwsSolutions plugin, exactly as
`python -m infra.app` registers it) is built and synthesized once. Bundling is skipped
(`aws:cdk:bundling-stacks: []`): the bundled layer is checked by the CLI synth test.
An explicit account/region exercises the committed cdk.context.json (VPC AZ lookup).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCOUNT = "123456789012"
REGION = "us-east-1"
ALERT_EMAILS = ["ops@example.com", "trader@example.com"]
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Synth:
    template: Any  # aws_cdk.assertions.Template
    template_json: dict[str, Any]
    outdir: Path
    manifest: dict[str, Any]
    validation_report: dict[str, Any] | None
    error: str | None
    stack: Any

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template_json["Resources"].items() if v["Type"] == cfn_type}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from infra.app import build_app

    # the same context the CLI gives the app: cdk.json (feature flags) + cdk.context.json
    committed = {
        **json.loads((REPO_ROOT / "cdk.json").read_text())["context"],
        **json.loads((REPO_ROOT / "cdk.context.json").read_text()),
    }
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(
        outdir=str(outdir),
        context={
            **committed,
            "aws:cdk:bundling-stacks": [],
            "account": ACCOUNT,
            "region": REGION,
            "alertEmails": ",".join(ALERT_EMAILS),
        },
    )
    app, stack = build_app(app)
    error: str | None = None
    try:
        app.synth()
    except Exception as exc:  # nag violations interrupt synthesis
        error = str(exc)
    template_path = outdir / f"{stack.stack_name}.template.json"
    template_json = json.loads(template_path.read_text()) if template_path.exists() else {}
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    manifest_path = outdir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    template = Template.from_json(template_json) if template_json else None
    return Synth(template, template_json, outdir, manifest, report, error, stack)
