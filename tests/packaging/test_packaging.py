"""The Lambda packaging decision, measured: why one container image and not zips.

- infra.packaging measures the unzipped size of the zip alternative from this .venv;
- the image's requirements (functions/requirements.txt) cover everything each
  handler (predict, monitor, ifd, websocket) imports: each is imported in a fresh
  interpreter where any distribution outside the image's dependency closure is blocked.
"""

from __future__ import annotations

import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.packaging import (
    AL2_GLIBC,
    LAMBDA_ZIP_LIMIT,
    REPO_ROOT,
    closure,
    measure,
    requirements_file,
)

HANDLERS = (
    "functions.predict.handler",
    "functions.monitor.handler",
    "functions.ifd.handler",
    "functions.websocket.handler",
)


def test_zip_alternative_measured() -> None:
    m = measure()
    full = m["predict_with_pandas_sklearn"]
    serving = m["predict"]
    assert isinstance(full, dict) and isinstance(serving, dict)
    # the ML stack with pandas + scikit-learn does not fit Lambda's 250 MB zip limit
    assert full["total_bytes"] > LAMBDA_ZIP_LIMIT
    assert not full["fits_zip"]
    # even the serving-only set, which fits, ships wheels that need a newer glibc than
    # the python3.11 zip runtime (Amazon Linux 2, glibc 2.26) has
    too_new = serving["wheels_needing_newer_glibc_than_al2"]
    assert "xgboost-cpu" in too_new
    assert all(tuple(int(x) for x in v.split(".")) > AL2_GLIBC for v in too_new.values())


def test_image_requirements_cover_every_handler() -> None:
    reqs = requirements_file(REPO_ROOT / "functions" / "requirements.txt")
    allowed = set(closure(reqs, exclude=frozenset())) | {
        canonicalize_name(Requirement(r).name) for r in reqs
    }
    allowed |= {"magic8"}  # COPY layers/shared/magic8 in the Dockerfile
    probe = f"""
import importlib.metadata as md, sys
from packaging.utils import canonicalize_name
allowed = {sorted(allowed)!r}
owners = md.packages_distributions()

class NotInImage:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = owners.get(top)
        if dists and not any(canonicalize_name(d) in allowed for d in dists):
            raise ImportError(f"{{top}} ({{dists}}) is not installed in the Lambda image")
        return None

sys.meta_path.insert(0, NotInImage())
for module in {HANDLERS!r}:
    m = __import__(module, fromlist=["handler"])
    assert callable(m.handler), module
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-4000:]
