"""Offline, Docker-free asset bundling for the zip Lambda functions and the shared layer.

CDK tries an `ILocalBundling` before Docker; ours copies files in-process, so `cdk synth`
needs neither Docker nor the network:
- the shared layer = layers/shared/magic8 + the third-party distributions it needs, copied
  from this interpreter's site-packages (the project .venv: Python 3.11, manylinux wheels,
  the same platform as Lambda's python3.11 x86_64 runtime) into `python/`;
- a zip function = functions/__init__.py + functions/<name>/
  (handler `functions.<name>.handler.handler`).

Packages the Lambda runtime already provides (boto3 and its dependencies) are left out.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Roots of the shared layer; their dependency closure is copied too.
LAYER_DISTRIBUTIONS: tuple[str, ...] = (
    "aws-lambda-powertools",
    "aws-xray-sdk",  # Powertools Tracer
    "pydantic",
    "pydantic-settings",
    "numpy",  # magic8.flow / magic8.ifd vector maths
    "tzdata",  # zoneinfo on runtimes without /usr/share/zoneinfo
)
# Provided by the Lambda Python runtime.
RUNTIME_PROVIDED: frozenset[str] = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "python-dateutil", "six")
)
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}

# A placeholder image: never pulled, because local bundling always succeeds.
_NO_DOCKER = DockerImage.from_registry("public.ecr.aws/docker/library/busybox:latest")


def distribution_closure(
    roots: Iterable[str], exclude: frozenset[str] = RUNTIME_PROVIDED
) -> list[str]:
    """Canonical names of `roots` and their (non-extra) requirements, installed here."""
    seen: dict[str, None] = {}
    stack = [canonicalize_name(n) for n in roots]
    while stack:
        name = stack.pop()
        if name in seen or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = None
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            stack.append(canonicalize_name(req.name))
    return sorted(seen)


def _dist_files(name: str) -> list[tuple[Path, str]]:
    dist = metadata.distribution(name)
    out: list[tuple[Path, str]] = []
    for f in dist.files or []:
        rel = str(f)
        parts = Path(rel).parts
        if not parts or parts[0] == ".." or _SKIP_PARTS & set(parts):
            continue
        if Path(rel).suffix in _SKIP_SUFFIXES:
            continue
        src = Path(str(dist.locate_file(f)))
        if src.is_file():
            out.append((src, rel))
    return out


def distributions_size(names: Sequence[str]) -> int:
    """Installed (unzipped) bytes of the given distributions' files."""
    return sum(src.stat().st_size for n in names for src, _ in _dist_files(n))


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(
        src,
        dst,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache"),
    )


@jsii.implements(ILocalBundling)
class _CopyBundler:
    """Copies (source, destination) trees and site-packages distributions into the asset."""

    def __init__(
        self, trees: Sequence[tuple[Path, str]], distributions: Sequence[str] = ()
    ) -> None:
        self._trees = list(trees)
        self._distributions = list(distributions)

    def try_bundle(self, output_dir: str, *_options: Any, **_kw: Any) -> bool:
        out = Path(output_dir)
        for src, dst in self._trees:
            target = out / dst
            if src.is_dir():
                _copy_tree(src, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
        for name in self._distributions:
            for src, rel in _dist_files(name):
                target = out / "python" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
        return True


def _fingerprint(trees: Sequence[tuple[Path, str]], distributions: Sequence[str]) -> str:
    """Content hash of the sources and the exact distribution versions."""
    h = hashlib.sha256()
    for src, dst in trees:
        h.update(dst.encode())
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for p in files:
            if _SKIP_PARTS & set(p.parts) or p.suffix in _SKIP_SUFFIXES:
                continue
            h.update(str(p.relative_to(src.parent)).encode())
            h.update(p.read_bytes())
    for name in distributions:
        h.update(f"{name}=={metadata.version(name)}".encode())
    return h.hexdigest()


def _bundled_code(
    source: Path, trees: Sequence[tuple[Path, str]], distributions: Sequence[str] = ()
) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=_fingerprint(trees, distributions),
        bundling=BundlingOptions(
            image=_NO_DOCKER,
            local=_CopyBundler(trees, distributions),  # type: ignore[arg-type]
            command=["false"],
        ),
    )


def shared_layer_code(shared_dir: Path) -> lambda_.Code:
    """layers/shared -> python/magic8 + python/<dependency closure of LAYER_DISTRIBUTIONS>."""
    dists = distribution_closure(LAYER_DISTRIBUTIONS)
    return _bundled_code(shared_dir, [(shared_dir / "magic8", "python/magic8")], dists)


def function_code(root: Path, name: str) -> lambda_.Code:
    """functions/<name> as the package functions.<name> (module functions.<name>.handler)."""
    functions = root / "functions"
    trees = [
        (functions / "__init__.py", "functions/__init__.py"),
        (functions / name, f"functions/{name}"),
    ]
    return _bundled_code(functions / name, trees)
