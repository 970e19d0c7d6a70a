"""Open-loop HTTP load generator, run as a second process on loopback.

`python -m magic8_dev.resilience.loadgen --url URL --key KEY --rates 10,20,40 --step-s 5`
sends POST /predict/batch at each rate for step-s seconds (requests scheduled on a fixed
timetable, so a slow server shows up as latency, not as a lower offered rate) and prints
one JSON object per step: rate, sent, ok, errors, p50/p95/p99 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import sys
import threading
import time
from urllib.parse import urlparse

import numpy as np

SYMBOLS = ("SPX", "NDX", "SPY", "QQQ", "XSP", "RUT")


def batch_body(n: int = 32, seed: int = 0) -> bytes:
    """A DiscordTrading-like batch: n trades across symbols and strategies."""
    rng = np.random.default_rng(seed)
    base = {"SPX": 5855.0, "NDX": 20500.0, "SPY": 585.5, "QQQ": 500.0, "XSP": 585.5, "RUT": 2300.0}
    reqs = []
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        px = base[sym]
        w = max(1.0, round(px * 0.004))
        c = round(px + rng.normal(0, px * 0.002))
        kind = i % 4
        if kind == 0:
            strategy, strikes, action, prem = "Butterfly", [c + w, c, c - w], "BUY", w * 0.3
        elif kind == 1:
            strategy, strikes, action, prem = (
                "Iron Condor",
                [c + 2 * w, c + w, c - w, c - 2 * w],
                "SELL",
                w * 0.2,
            )
        elif kind == 2:
            strategy, strikes, action, prem = "Vertical", [c, c - w], "SELL", w * 0.4
        else:
            strategy, strikes, action, prem = (
                "Sonar",
                [c + 3 * w, c + 2 * w, c - 2 * w, c - 3 * w],
                "SELL",
                w * 0.15,
            )
        reqs.append(
            {
                "strategy": strategy,
                "symbol": sym,
                "premium": round(prem + rng.uniform(0, 0.5), 2),
                "predicted_price": c,
                "strikes": strikes,
                "action": action,
                "quantity": 1,
            }
        )
    return json.dumps({"requests": reqs, "share_market_data": True}).encode()


def run_step(
    url: str, key: str, body: bytes, rate: float, seconds: float, workers: int
) -> dict[str, float]:
    parsed = urlparse(url)
    slots: queue.Queue[float | None] = queue.Queue()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
        while True:
            scheduled = slots.get()
            if scheduled is None:
                return
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request(
                    "POST",
                    "/predict/batch",
                    body=body,
                    headers={"x-api-key": key, "content-type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(
                    parsed.hostname or "127.0.0.1", parsed.port, timeout=10
                )
            # latency from the scheduled send time: queueing in the client counts too
            elapsed = (time.perf_counter() - scheduled) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.perf_counter() + 0.05
    n = max(1, int(rate * seconds))
    for i in range(n):
        slots.put(start + i / rate)
    for _ in threads:
        slots.put(None)
    for t in threads:
        t.join()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "rate": rate,
        "sent": n,
        "ok": len(latencies),
        "errors": errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--rates", default="10,20,40,80")
    p.add_argument("--step-s", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--stop-p99-ms", type=float, default=50.0)
    args = p.parse_args(argv)
    body = batch_body(args.batch)
    for rate in (float(r) for r in args.rates.split(",")):
        step = run_step(args.url, args.key, body, rate, args.step_s, args.workers)
        print(json.dumps(step), flush=True)
        if step["errors"] or step["p99_ms"] > args.stop_p99_ms:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
