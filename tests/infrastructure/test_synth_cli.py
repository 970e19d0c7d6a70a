"""`npx cdk synth --quiet` from the repository root: offline, no Docker, within 60 s.

Runs the pinned CDK CLI (package.json) the way the Makefile does, into a fresh output
directory (as a fresh clone would), with AWS credentials removed from the environment so
nothing can reach AWS. Then checks the staged assets: the Docker build contexts are
copied (never built) without the venv, node_modules or git, and hold every handler.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.infrastructure.conftest import REPO_ROOT

pytestmark = pytest.mark.xdist_group("cdk")


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, str]:
    npx = shutil.which("npx")
    if npx is None or not (REPO_ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the pinned CDK CLI is not installed: run `npm ci` (make test does)")
    out = tmp_path_factory.mktemp("cli-cdk.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        AWS_EC2_METADATA_DISABLED="true",  # no credential probing of instance metadata
        CDK_DISABLE_CLI_TELEMETRY="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [npx, "cdk", "synth", "--quiet", "--no-notices", "--output", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return out, elapsed, proc.stdout + proc.stderr


def test_cli_synth_offline(cli_synth: tuple[Path, float, str]) -> None:
    out, elapsed, output = cli_synth
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, output[-5000:]
    template = json.loads((out / "Magic8.template.json").read_text())
    assert len(template["Resources"]) > 100
    print(f"npx cdk synth --quiet: {elapsed:.1f} s")  # a figure, never a pass/fail (shared CPUs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest.get("missing"), manifest.get("missing")


def test_container_images_are_staged_not_built(cli_synth: tuple[Path, float, str]) -> None:
    out, _, _ = cli_synth
    assets = json.loads((out / "Magic8.assets.json").read_text())
    images = {
        a["source"]["dockerFile"]: out / a["source"]["directory"]
        for a in assets["dockerImages"].values()
    }
    # the four Lambda functions share one image; the gateway has its own
    assert set(images) == {"functions/Dockerfile", "gateway_host/Dockerfile"}
    for dockerfile, context in images.items():
        assert (context / dockerfile).is_file()
        assert (context / "layers" / "shared" / "magic8" / "__init__.py").is_file()
        for heavy in (".venv", "node_modules", ".git", "cdk.out"):
            assert not (context / heavy).exists(), heavy
    lambda_context = images["functions/Dockerfile"]
    for name in ("predict", "monitor", "ifd", "websocket"):
        assert (lambda_context / "functions" / name / "handler.py").is_file(), name
