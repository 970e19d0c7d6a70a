"""`make lint` runs import-linter (pyproject.toml [tool.importlinter]): imports point inward.

The contracts hold on the tree as it is, and they bite: a copy of the code with one
wrong-way import added fails `lint-imports`, naming the broken contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from magic8.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CODE = ("layers", "functions", "gateway_host", "infra")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{root / 'layers' / 'shared'}{os.pathsep}{root}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.dbn.zst", "static", "node_modules")
    for name in CODE:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_every_contract(code_copy: Path) -> None:
    out = lint_imports(code_copy)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "layers/shared/magic8/domain/wrong_way.py",
            "from magic8.adapters import aws",
            "Entry points -> adapters -> use cases -> domain",
        ),
        (
            "layers/shared/magic8/ifd/wrong_way.py",
            "import boto3",
            "The domain knows no AWS SDK and no web framework",
        ),
        (
            "layers/shared/magic8/monitor/wrong_way.py",
            "from magic8_dev import cli",
            "The runtime package imports none of its callers and no tooling",
        ),
        (
            "functions/predict/wrong_way.py",
            "from magic8_dev.local import runner",
            "Images carry no tooling",
        ),
    ],
)
def test_a_wrong_way_import_fails_lint(
    code_copy: Path, module: str, line: str, contract: str
) -> None:
    path = code_copy / module
    path.write_text(f"{line}  # noqa: F401\n")
    try:
        out = lint_imports(code_copy)
    finally:
        path.unlink()
    assert out.returncode != 0
    broken = out.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, out.stdout[-3000:]
