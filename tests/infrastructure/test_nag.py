"""cdk-nag AwsSolutions over the whole app: zero unacknowledged findings, every
acknowledgement with its reason.

The plugin is registered by infra.app.build_app exactly as `cdk synth` runs it; a
violation interrupts synthesis (the fixture records the error) and is listed in the
cloud assembly's validation-report.json.
"""

from __future__ import annotations

import json

import pytest

from tests.infrastructure.conftest import Synth

pytestmark = pytest.mark.xdist_group("cdk")


def _plugin(synth: Synth) -> dict:
    assert synth.validation_report is not None, synth.error
    (report,) = [
        p for p in synth.validation_report["pluginReports"] if p["pluginName"] == "AwsSolutions"
    ]
    return report


def test_nag_plugin_ran_and_passed(synth: Synth) -> None:
    report = _plugin(synth)
    unacknowledged = [
        f"{v['ruleName']} @ {c['constructPath']}"
        for v in report["violations"]
        for c in v["violatingConstructs"]
    ]
    assert unacknowledged == [], "\n".join(unacknowledged)
    assert report["conclusion"] == "success"
    assert synth.error is None, synth.error


def test_every_acknowledgement_names_its_reason(synth: Synth) -> None:
    suppressed = _plugin(synth)["suppressedViolations"]
    assert suppressed, "expected the documented acknowledgements to be exercised"
    for v in suppressed:
        assert v["reason"].strip() and len(v["reason"]) > 30, v["ruleName"]
        assert v["acknowledgedId"].startswith("AwsSolutions::"), v["acknowledgedId"]


def test_no_blanket_acknowledgements(synth: Synth) -> None:
    # Wildcard findings are acknowledged one by one (IAM5[...]), never the whole rule,
    # and the only stack-wide acknowledgement is the runtime-version rule.
    suppressed = _plugin(synth)["suppressedViolations"]
    for v in suppressed:
        assert v["acknowledgedId"] not in (
            "AwsSolutions::AwsSolutions-IAM5",
            "AwsSolutions::AwsSolutions-IAM4",
        )
        if v["acknowledgedAt"] == "Magic8":
            assert v["ruleName"] == "AwsSolutions-L1", v


def test_no_stale_acknowledgements(synth: Synth) -> None:
    """Every AwsSolutions acknowledgement recorded in the assembly silences a real finding."""
    metadata = json.loads((synth.outdir / "Magic8.metadata.json").read_text())
    recorded = {
        (path.lstrip("/"), rule_id)
        for path, entries in metadata.items()
        for e in entries
        if e["type"] == "aws:cdk:acknowledged-rules"
        for rule_id in e["data"]
        if rule_id.startswith("AwsSolutions::")
    }
    used = {
        (v["acknowledgedAt"], v["acknowledgedId"]) for v in _plugin(synth)["suppressedViolations"]
    }
    assert recorded, "no acknowledgements recorded"
    assert recorded <= used, sorted(recorded - used)


def test_cloudformation_validation_clean(synth: Synth) -> None:
    """aws-cdk-lib's built-in template validation (skipped by the CLI app for speed) runs
    here: no findings, warnings included (it caught a KMS key <-> topic cycle once)."""
    assert synth.validation_report is not None
    others = [
        p for p in synth.validation_report["pluginReports"] if p["pluginName"] != "AwsSolutions"
    ]
    assert others, "the built-in CloudFormation validation did not run"
    findings = [
        f"{p['pluginName']}: {v['ruleName']} @ {c['constructPath']}"
        for p in others
        for v in p["violations"]
        for c in v["violatingConstructs"]
    ]
    assert findings == [], "\n".join(findings)


def test_nag_catches_a_violation() -> None:
    """Control: the same registration fails synthesis for an unencrypted queue, and an
    acknowledgement in our form (infra.constructs.common.ack) silences exactly its rule."""
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    from infra.constructs.common import ack

    app = App()
    stack = Stack(app, "Control")
    queue = sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    ack(queue, "AwsSolutions-SQS3", "control: acknowledged to prove acknowledgements work")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-SQS2") as failure:
        app.synth()
    assert "AwsSolutions-SQS4" in str(failure.value)
    assert "AwsSolutions-SQS3" not in str(failure.value)
