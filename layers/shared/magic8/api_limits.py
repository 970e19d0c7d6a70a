"""Per-client request limits of the predict API, one source for API Gateway's usage plans
(infra/constructs/prediction_api.py: per-method throttles) and the local front
(magic8_dev/local/api_front.py: 429 + Retry-After).

Per API key (one key = one client; more keys = more clients, each with its own budget):
POST /predict 100/min, POST /predict/batch 20/min (bursts of the same size), everything
else the plan's default rate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodLimit:
    method: str
    path: str
    per_minute: int

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0

    @property
    def burst(self) -> int:
        return self.per_minute


METHOD_LIMITS: tuple[MethodLimit, ...] = (
    MethodLimit("POST", "/predict", 100),
    MethodLimit("POST", "/predict/batch", 20),
)
