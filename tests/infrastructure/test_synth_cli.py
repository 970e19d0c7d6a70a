"""`npx cdk synth --quiet` from the repository root: offline, no Docker, within 60 s.

Runs the pinned CDK CLI (package.json) the way the Makefile does, into a fresh output
directory (as a fresh clone would), with AWS credentials removed from the environment so
nothing can reach AWS. Then checks what the real (locally bundled) assets contain: the
shared layer holds magic8 + its third-party closure, and the zip functions import with
only that layer and the packages the Lambda runtime provides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.infrastructure.conftest import REPO_ROOT

pytestmark = pytest.mark.xdist_group("cdk")

SYNTH_BUDGET_S = 60.0
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six.py")


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


def _asset_dir(out: Path, path_fragment: str) -> Path:
    assets = json.loads((out / "Magic8.assets.json").read_text())
    for asset in assets["files"].values():
        if asset.get("displayName", "").startswith(path_fragment):
            return out / asset["source"]["path"]
    raise AssertionError(
        f"no asset {path_fragment}: {[a.get('displayName') for a in assets['files'].values()]}"
    )


def test_cli_synth_offline_within_budget(cli_synth: tuple[Path, float, str]) -> None:
    out, elapsed, output = cli_synth
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, output[-5000:]
    template = json.loads((out / "Magic8.template.json").read_text())
    assert len(template["Resources"]) > 100
    assert elapsed <= SYNTH_BUDGET_S, f"cdk synth took {elapsed:.1f}s"
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest.get("missing"), manifest.get("missing")


def test_container_images_are_staged_not_built(cli_synth: tuple[Path, float, str]) -> None:
    out, _, _ = cli_synth
    assets = json.loads((out / "Magic8.assets.json").read_text())
    images = {
        a["source"]["dockerFile"]: out / a["source"]["directory"]
        for a in assets["dockerImages"].values()
    }
    # predict + monitor share one image; the gateway has its own
    assert set(images) == {"functions/predict/Dockerfile", "gateway_host/Dockerfile"}
    for dockerfile, context in images.items():
        assert (context / dockerfile).is_file()
        assert (context / "layers" / "shared" / "magic8" / "__init__.py").is_file()
        for heavy in (".venv", "node_modules", ".git", "cdk.out"):
            assert not (context / heavy).exists(), heavy


def test_shared_layer_bundled_locally(cli_synth: tuple[Path, float, str]) -> None:
    out, _, _ = cli_synth
    layer = _asset_dir(out, "SharedLayer")
    python = layer / "python"
    for pkg in (
        "magic8",
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "numpy",
    ):
        assert (python / pkg).is_dir(), pkg
    assert not (python / "boto3").exists()  # provided by the runtime
    assert not (python / "xgboost").exists()
    size = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    assert size < 250 * 1024 * 1024, size


def test_zip_functions_import_with_only_the_layer(
    cli_synth: tuple[Path, float, str], tmp_path: Path
) -> None:
    """Import each zip handler the way Lambda would: function code + layer + runtime boto3."""
    out, _, _ = cli_synth
    layer = _asset_dir(out, "SharedLayer") / "python"
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    for name in RUNTIME_PROVIDED:
        (runtime / name).symlink_to(site / name)
    for fn_asset, module in (
        ("FlowDetection/IfdFunction", "functions.ifd.handler"),
        ("Push/WebSocketFunction", "functions.websocket.handler"),
    ):
        code = _asset_dir(out, fn_asset)
        probe = (
            "import sys; sys.path[:0] = " + repr([str(code), str(layer), str(runtime)]) + "\n"
            f"import {module} as m\n"
            "assert callable(m.handler)\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('xgboost', 'pandas', 'scipy')]\n"
            "assert not bad, bad\n"
        )
        proc = subprocess.run(
            [sys.executable, "-S", "-c", probe],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": os.environ.get("PATH", "")},
        )
        assert proc.returncode == 0, f"{module}: {proc.stderr[-3000:]}"
