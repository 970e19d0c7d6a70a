"""Load benchmark: the local API under sustained load from a second process on loopback.

Ramp: batch-32 requests at a rising rate until p99 breaks 50 ms or errors appear; the
sustained rate is the highest step that held. Soak: half the sustained rate for 10
minutes (60 s with --quick) with the server's resident memory sampled; growth beyond
warm-up is reported.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from magic8_dev.local.moto_server import free_port
from magic8_dev.local.runner import LocalStack

LOAD_COMPONENTS = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    "magic8_dev.local.api_front:ApiFrontComponent",
)
RAMP_RATES = (5, 10, 20, 40, 60, 80, 120, 160, 200, 250, 300, 400)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def wait_ready(url: str, key: str, timeout_s: float = 120.0) -> float:
    """Block until one real batch answers 200 (model loaded, caches warm); returns seconds."""
    import http.client
    from urllib.parse import urlparse

    from magic8_dev.resilience.loadgen import batch_body

    parsed = urlparse(url)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port, timeout=timeout_s
        )
        try:
            conn.request(
                "POST",
                "/predict/batch",
                body=batch_body(32),
                headers={"x-api-key": key, "content-type": "application/json"},
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
        finally:
            conn.close()
    raise TimeoutError(f"API at {url} not ready after {timeout_s} s")


def _loadgen(url: str, key: str, rates: list[float], step_s: float) -> list[dict[str, Any]]:
    cmd = [
        sys.executable,
        "-m",
        "magic8_dev.resilience.loadgen",
        "--url",
        url,
        "--key",
        key,
        "--rates",
        ",".join(str(r) for r in rates),
        "--step-s",
        str(step_s),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run(results_dir: Path, quick: bool = False) -> dict[str, Any]:
    port = free_port()
    key = "bench-load-key"
    stack = LocalStack(api_port=port, api_key=key, components=LOAD_COMPONENTS)
    ctx = stack.start()
    url = ctx.facts.get("api_url", f"http://127.0.0.1:{port}")
    try:
        ready_s = wait_ready(url, key)
        # warm the caches the way traffic would
        _loadgen(url, key, [5], 1.0)
        step_s = 3.0 if quick else 8.0
        steps = _loadgen(url, key, list(RAMP_RATES), step_s)
        held = [s for s in steps if not s["errors"] and s["p99_ms"] <= 50.0]
        sustained = max((s["rate"] for s in held), default=0.0)
        soak_rate = max(1.0, sustained / 2)
        soak_s = 60.0 if quick else 600.0
        samples: list[tuple[float, float]] = []
        done = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not done.is_set():
                samples.append((round(time.monotonic() - t0, 1), round(rss_mb(), 1)))
                done.wait(5.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        soak = _loadgen(url, key, [soak_rate], soak_s)
        done.set()
        sampler.join()
        warm = [m for t, m in samples if t >= soak_s * 0.2]
        first_third = warm[: max(1, len(warm) // 3)]
        last_third = warm[-max(1, len(warm) // 3) :]
        growth = (sum(last_third) / len(last_third)) - (sum(first_third) / len(first_third))
        return {
            "what": "POST /predict/batch (32 trades), loopback HTTP, load from a second process",
            "ramp": steps,
            "sustained_rate_rps": sustained,
            "sustained_trades_per_s": sustained * 32,
            "soak": {
                "rate_rps": soak_rate,
                "seconds": soak_s,
                "result": soak[0] if soak else None,
                "rss_mb_samples": samples,
                "rss_growth_after_warmup_mb": round(growth, 1),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
            },
            "ready_after_s": round(ready_s, 2),
            "quick": quick,
        }
    finally:
        stack.stop()
