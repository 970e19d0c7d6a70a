"""The predict (and monitor) container image installs only functions/requirements.txt.

No Docker engine here, so check what the image relies on: in a fresh process where every
third-party package outside that requirement closure is made unimportable (as in the
image), the predict and monitor handlers import, the real model loads and a batch goes
through the real Mangum handler; and the Dockerfile copies paths that exist.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from magic8_dev.benchmarks.predict import image_distributions
from tests.factories import IRON_CONDOR, apigw_event, trade_dict

ROOT = Path(__file__).resolve().parents[2]


SCRIPT = textwrap.dedent(
    """
    import json, sys
    from importlib import metadata

    allowed = set(json.loads(sys.argv[1]))
    providers = metadata.packages_distributions()
    norm = lambda n: n.replace("_", "-").replace(".", "-").lower()
    blocked = []

    class ImageOnly:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("magic8", "functions"):
                return None
            dists = {norm(d) for d in providers.get(top, [])}
            if dists and not dists & allowed:
                blocked.append(top)
                raise ModuleNotFoundError(f"{name} is not in the predict image")
            return None

    sys.meta_path.insert(0, ImageOnly())

    from datetime import UTC, datetime, timedelta
    import contextlib, io

    import functions.monitor.handler  # same image, CMD override
    import functions.predict.handler
    import functions.predict.deps as ph
    import magic8.adapters.history_dynamo, magic8.adapters.market_dynamo
    from functions.predict.settings import ApiSettings
    from magic8.domain.market import Bar, MarketSnapshot
    from magic8.domain.model import ModelHierarchy
    from magic8.adapters.xgb_native import load_hierarchy
    from magic8.domain.service import PredictionService
    from magic8.settings import DEFAULT_MODEL_DIR

    now = datetime.now(UTC)
    start = int(now.timestamp()) // 300 * 300 - 300 * 60
    def snap(symbol, last):
        bars = tuple(Bar(ts=start + 300 * i, open=last, high=last + 1, low=last - 1,
                         close=last + (i % 3 - 1) * 0.5, volume=1) for i in range(60))
        return MarketSnapshot(symbol=symbol, last=last, bars=bars, updated_at=now, source="seed")
    snaps = {"SPX": snap("SPX", 5850.0), "VIX": snap("VIX", 16.0)}

    class Market:
        def get_snapshots(self, symbols):
            return {s: snaps[s] for s in symbols if s in snaps}
        def put_snapshot(self, snapshot, ttl_seconds=3600):
            pass

    def factory(settings):
        return PredictionService(Market(), load_hierarchy(DEFAULT_MODEL_DIR), None)

    handler = ph.build_handler(ApiSettings(), factory)
    event = json.loads(sys.argv[2])  # built outside: the image carries no tooling

    class LambdaContext:
        function_name = "magic8-predict"
        function_version = "$LATEST"
        memory_limit_in_mb = 1024
        aws_request_id = "image-test"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:magic8-predict"
        def get_remaining_time_in_millis(self):
            return 30_000

    with contextlib.redirect_stdout(io.StringIO()):
        resp = handler(event, LambdaContext())
    print(json.dumps({"status": resp["statusCode"], "body": json.loads(resp["body"]),
                      "blocked": sorted(set(blocked))}))
    """
)


BATCH_EVENT = apigw_event(
    "POST",
    "/predict/batch",
    json.dumps({"requests": [trade_dict(), trade_dict(IRON_CONDOR)]}),
    {"content-type": "application/json"},
)


def test_handlers_run_with_only_the_image_packages() -> None:
    closure = image_distributions()
    assert {"fastapi", "mangum", "xgboost-cpu", "numpy", "boto3"} <= closure
    assert "pandas" not in closure and "scikit-learn" not in closure
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(sorted(closure)), json.dumps(BATCH_EVENT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200, result
    preds = result["body"]["predictions"]
    assert len(preds) == 2 and all(0 <= p["win_probability"] <= 1 for p in preds)
    # optional imports that fall back without the package, as in the image: xgboost tries
    # pandas / scikit-learn, botocore certifi (it bundles a CA file), charset_normalizer
    optional = {"pandas", "sklearn", "pyarrow", "cloudpickle", "certifi", "charset_normalizer"}
    assert set(result["blocked"]) <= optional, result


def test_dockerfile_copies_existing_paths_and_runs_the_handler() -> None:
    text = (ROOT / "functions/Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(\S+)\s", text, flags=re.MULTILINE):
        assert (ROOT / src).exists(), src
    assert 'CMD ["functions.predict.handler.handler"]' in text
    assert "MAGIC8_MODEL_DIR" in text
    assert (ROOT / "models/manifest.json").exists()
