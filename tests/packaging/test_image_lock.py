"""The images install exactly what the tests ran: their requirement files are the locked
closure of their extra (same versions as requirements.lock), without scipy, and the
Dockerfiles copy the runtime package only, never the tooling or its sample data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from magic8.settings import REPO_ROOT

IMAGES = {
    "functions/Dockerfile": "functions/requirements.txt",
    "gateway_host/Dockerfile": "gateway_host/requirements.txt",
}


def pins(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned with =="
        out[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return out


LOCK = pins(REPO_ROOT / "requirements.lock")


@pytest.mark.parametrize("requirements", sorted(IMAGES.values()))
def test_image_requirements_are_the_lock(requirements: str) -> None:
    image = pins(REPO_ROOT / requirements)
    assert image, requirements
    differ = {n: (v, LOCK.get(n)) for n, v in image.items() if LOCK.get(n) != v}
    assert not differ, f"{requirements} differs from requirements.lock: {differ}"


def test_lambda_image_has_no_scipy_and_no_tooling_stack() -> None:
    image = pins(REPO_ROOT / "functions/requirements.txt")
    assert {"xgboost-cpu", "fastapi", "mangum", "numpy"} <= set(image)
    for heavy in ("scipy", "pandas", "scikit-learn", "matplotlib", "arch", "moto"):
        assert heavy not in image, heavy


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_dockerfiles_install_the_lock_and_copy_no_tooling(dockerfile: str) -> None:
    text = (REPO_ROOT / dockerfile).read_text()
    assert re.search(r"pip install [^\n]*--no-deps -r [^\n]*requirements\.txt", text), dockerfile
    copied = re.findall(r"^COPY\s+(\S+)\s", text, flags=re.MULTILINE)
    assert "layers/shared/magic8" in copied
    for src in copied:
        assert (REPO_ROOT / src).exists(), src
        assert "magic8_dev" not in src and not src.startswith(("tests", "infra")), src
