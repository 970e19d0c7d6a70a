"""The gateway image installs gateway_host/requirements.txt + the project with --no-deps.

No Docker engine here, so check what the build relies on: every third-party module the
gateway host imports at runtime is provided by a requirement (or its dependencies), and
the Dockerfile copies paths that exist and runs the right command.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_MODULES = [
    "gateway_host.main",
    "gateway_host.ib",
    "gateway_host.ib.config",
    "gateway_host.ib.contracts",
    "gateway_host.ib.errors",
    "gateway_host.ib.pacing",
    "gateway_host.ib.session",
    "gateway_host.ib.snapshots",
    "gateway_host.heartbeat",
    "gateway_host.health",
    "gateway_host.settings",
    "gateway_host.databento",  # the Databento half, when present
    "gateway_host.databento.config",
    "gateway_host.databento.gaps",
    "gateway_host.databento.outbox",
    "gateway_host.databento.spend",
    "gateway_host.metrics",
    "magic8.adapters.spill",
    "gateway_host.databento.session",
    "magic8.adapters.market_dynamo",  # imported by main at startup, when present
]
FIRST_PARTY = {"magic8", "gateway_host"}
# imported only because it happens to be installed here; the importer falls back without it
OPTIONAL_IMPORTS = {"cloudpickle"}  # pyarrow.lib: `try: import cloudpickle`


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure() -> set[str]:
    reqs = [
        re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0]
        for line in (ROOT / "gateway_host/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    seen: set[str] = set()
    todo = [_norm(r) for r in reqs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(_norm(re.split(r"[<>=!~\[; (]", req, maxsplit=1)[0]))
    return seen


def test_every_imported_third_party_module_is_a_requirement() -> None:
    present = [
        m for m in GATEWAY_MODULES if importlib.util.find_spec(m.rsplit(".", 1)[0]) is not None
    ]
    code = (
        "import importlib, importlib.util, json, sys\n"
        f"for m in {present!r}:\n"
        "    if importlib.util.find_spec(m) is not None: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    top_level = json.loads(out.stdout.strip().splitlines()[-1])
    providers = metadata.packages_distributions()
    closure = requirement_closure()
    missing = []
    for mod in top_level:
        if mod in sys.stdlib_module_names or mod in FIRST_PARTY | OPTIONAL_IMPORTS:
            continue
        if mod.startswith("_"):
            continue
        dists = providers.get(mod)
        if not dists:
            continue  # extension modules / namespace leftovers without a distribution
        if not any(_norm(d) in closure for d in dists):
            missing.append((mod, dists))
    assert not missing, f"imported but not in gateway_host/requirements.txt: {missing}"


def test_dockerfile_copies_existing_paths_and_runs_main() -> None:
    text = (ROOT / "gateway_host/Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert 'CMD ["python", "-m", "gateway_host.main"]' in text
    assert "HEALTHCHECK" in text and "/health" in text
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "layers", "gateway_host", "models"):
        assert needed not in ignore
