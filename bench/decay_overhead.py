"""CPU per cached batch of 100 trades (real feature module and service, the unit tests'
fake model and market): confidence decay off vs on, and on + per-trade request counting
(cache warming). Configurations alternate, min of 15 x 200 batches each.

    PYTHONPATH=. .venv/bin/python bench/decay_overhead.py
"""

from __future__ import annotations

import time

from tests.unit.domain.test_service import make, mixed_batch

CONFIGS = {"decay off": (0.0, 0), "decay on": (600.0, 0), "decay on + counting": (600.0, 1024)}


def main() -> None:
    services = {}
    reqs = mixed_batch(100)
    for name, (half_life, track) in CONFIGS.items():
        svc, _, _, _, clocks, _ = make(decay_half_life_s=half_life, track_requests=track)
        svc.predict_batch(reqs)
        clocks.advance(30)  # every answer cached, 30 s old
        services[name] = svc
    best = dict.fromkeys(CONFIGS, float("inf"))
    for _ in range(15):
        for name, svc in services.items():
            t0 = time.process_time()
            for _ in range(200):
                svc.predict_batch(reqs)
            best[name] = min(best[name], (time.process_time() - t0) / 200 * 1000)
    print("cached batch of 100, CPU ms per batch (min of 15 x 200):")
    for name, ms in best.items():
        print(f"  {name:<22} {ms:.3f}")


if __name__ == "__main__":
    main()
