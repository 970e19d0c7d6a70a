"""Lambda packaging numbers: would the functions fit a zip (250 MB unzipped), and would
the wheels in this environment even run on a zip runtime?

    .venv/bin/python -m infra.packaging            # table
    .venv/bin/python -m infra.packaging --json     # machine-readable

Sizes are the installed (unzipped) bytes of each distribution's files in this
interpreter's site-packages (the project .venv), dependency closure included, minus what
the Lambda Python runtime already provides (boto3 and its dependencies). The predict
set is exactly functions/requirements.txt: the image installs it with --no-deps (it is the
locked closure of the `lambda` extra, written by `make lock`, without scipy).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
LAMBDA_ZIP_LIMIT = 250 * 1024 * 1024  # function + all layers, unzipped
AL2_GLIBC = (2, 26)  # Lambda python3.8-3.11 (Amazon Linux 2); python3.12+ is AL2023 (2.34)

RUNTIME_PROVIDED: frozenset[str] = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "python-dateutil", "six")
)
# What the ifd/websocket functions import (the zip + layer alternative).
IFD_ROOTS: tuple[str, ...] = (
    "aws-lambda-powertools[tracer]",
    "pydantic",
    "pydantic-settings",
    "numpy",
)


def requirements_file(path: Path) -> list[str]:
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln]


def image_distributions(path: Path | None = None) -> list[str]:
    """Canonical names of the distributions an image installs (a pinned, --no-deps file)."""
    path = path or REPO_ROOT / "functions" / "requirements.txt"
    return sorted({canonicalize_name(Requirement(r).name) for r in requirements_file(path)})


def closure(roots: Iterable[str], exclude: frozenset[str] = RUNTIME_PROVIDED) -> list[str]:
    """Canonical names of the installed distributions `roots` pull in (extras honoured)."""
    seen: set[str] = set()
    stack = [Requirement(r) for r in roots]
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        if name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for spec in dist.requires or []:
            sub = Requirement(spec)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker and not any(sub.marker.evaluate(env) for env in envs):
                continue
            stack.append(sub)
    return sorted({k.split("[")[0] for k in seen})


def dist_size(name: str) -> int:
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        if str(f).startswith(".."):
            continue
        p = Path(str(dist.locate_file(f)))
        if p.is_file():
            total += p.stat().st_size
    return total


def tree_size(path: Path) -> int:
    return sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def wheel_glibc(name: str) -> tuple[int, int] | None:
    """Lowest glibc the installed wheel's platform tags need (None: pure Python)."""
    dist = metadata.distribution(name)
    wheel = dist.read_text("WHEEL") or ""
    needs: list[tuple[int, int]] = []
    for tag in re.findall(r"^Tag: (.+)$", wheel, flags=re.M):
        platform = tag.split("-")[-1]
        if platform == "any":
            return None
        m = re.match(r"manylinux_(\d+)_(\d+)_", platform)
        if m:
            needs.append((int(m.group(1)), int(m.group(2))))
        elif platform.startswith("manylinux2014"):
            needs.append((2, 17))
        elif platform.startswith("manylinux1"):
            needs.append((2, 5))
    return min(needs) if needs else None


def measure() -> dict[str, object]:
    image = [n for n in image_distributions() if n not in RUNTIME_PROVIDED]
    out: dict[str, object] = {"limit_bytes": LAMBDA_ZIP_LIMIT}
    shared = tree_size(REPO_ROOT / "layers" / "shared" / "magic8")
    models = tree_size(REPO_ROOT / "models") if (REPO_ROOT / "models").is_dir() else 0
    for label, names, extra in (
        ("predict", image, shared + models),
        (
            "predict_with_pandas_sklearn",
            sorted({*image, *closure(["pandas", "scikit-learn"])}),
            shared + models,
        ),
        ("ifd", closure(IFD_ROOTS), shared),
    ):
        sizes = {n: dist_size(n) for n in names}
        too_new = {
            n: f"{g[0]}.{g[1]}"
            for n in names
            if (g := wheel_glibc(n)) is not None and g > AL2_GLIBC
        }
        total = sum(sizes.values()) + extra
        out[label] = {
            "distributions": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
            "project_code_bytes": extra,
            "total_bytes": total,
            "fits_zip": total <= LAMBDA_ZIP_LIMIT,
            "wheels_needing_newer_glibc_than_al2": too_new,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    mb = 1024 * 1024
    for label in ("predict", "predict_with_pandas_sklearn", "ifd"):
        info = result[label]
        assert isinstance(info, dict)
        print(
            f"== {label}: {info['total_bytes'] / mb:.1f} MB unzipped "
            f"(limit {LAMBDA_ZIP_LIMIT / mb:.0f} MB) -> fits zip: {info['fits_zip']}"
        )
        for name, size in info["distributions"].items():
            if size >= mb:
                print(f"   {name:28s} {size / mb:7.1f} MB")
        print(f"   {'(magic8 + models)':28s} {info['project_code_bytes'] / mb:7.1f} MB")
        if info["wheels_needing_newer_glibc_than_al2"]:
            print(
                f"   wheels needing glibc > 2.26 (python3.11 runtime = AL2): "
                f"{info['wheels_needing_newer_glibc_than_al2']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
