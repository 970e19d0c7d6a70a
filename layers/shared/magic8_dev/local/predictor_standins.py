"""Local stand-ins for the two external predictors of POST /recommend, started by
`make run` before the API front (which reads their URLs from the environment):

- MLOptionTrading: POST /predict -> {"score", "confidence"}: a simple, deterministic read
  of the trade (how much of the structure's width the premium pays for, by action);
- Magic8-Companion: POST /recommendation -> {"score", "confidence"}: a fixed preference per
  strategy, as its scheduled market analysis would publish.

Both are stand-ins with the real wire shape, so the path (HTTP, timeouts, retries,
circuit breakers, flags) is real end to end. `delay_s` / `down` make one slow or broken
for tests. The flags file (.local/recommend_flags.json, written with the defaults if
missing) is what the API re-reads on every /recommend: edit it to switch a source off or
change a weight, no restart.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from magic8.settings import REPO_ROOT
from magic8_dev.local.context import LocalContext
from magic8_dev.local.http_thread import ServedHttp

COMPANION_PREFERENCE = {
    "Butterfly": (0.78, 0.85),
    "Iron Condor": (0.82, 0.88),
    "Vertical": (0.65, 0.8),
    "Sonar": (0.72, 0.82),
}


def ml_option_trading_score(trade: dict[str, Any]) -> dict[str, float]:
    strikes = sorted(float(k) for k in trade.get("strikes") or [1.0, 2.0])
    width = max(1e-9, min(b - a for a, b in itertools.pairwise(strikes)) or 1.0)
    paid = min(1.0, float(trade.get("premium", 0.0)) / width)
    # a credit trade is likelier to win the less it collects; a debit trade the less it pays
    score = 1.0 - paid * (0.8 if trade.get("action") == "SELL" else 0.9)
    score = min(0.99, max(0.01, score))
    return {"score": round(score, 6), "confidence": 0.85}


def companion_score(trade: dict[str, Any]) -> dict[str, float]:
    score, conf = COMPANION_PREFERENCE.get(str(trade.get("strategy")), (0.5, 0.5))
    return {"score": score, "confidence": conf}


class StandIn:
    def __init__(self, name: str, path: str, scorer: Any, host: str = "127.0.0.1") -> None:
        self.name = name
        self.path = path
        self.scorer = scorer
        self.delay_s = 0.0
        self.down = False
        self.calls = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                stand_in.calls += 1
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if stand_in.delay_s:
                    time.sleep(stand_in.delay_s)
                if stand_in.down or self.path != stand_in.path:
                    status, body = (503 if stand_in.down else 404), {"error": "unavailable"}
                else:
                    try:
                        status, body = 200, stand_in.scorer(json.loads(raw))
                    except Exception as exc:
                        status, body = 400, {"error": type(exc).__name__}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ServedHttp(Handler, name, host, join_requests=True)

    @property
    def url(self) -> str:
        return f"{self.http.base_url}{self.path}"

    def start(self) -> StandIn:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()


def write_default_flags(path: Path) -> Path:
    from magic8.adapters.recommend_sources import DEFAULT_FLAGS

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(DEFAULT_FLAGS, indent=2) + "\n")
    return path


class PredictorStandInsComponent:
    name = "predictors"

    def __init__(self, flags_file: Path | None = None) -> None:
        env = os.environ.get("MAGIC8_RECOMMEND_FLAGS_FILE")
        self.flags_file = flags_file or (
            Path(env) if env else REPO_ROOT / ".local" / "recommend_flags.json"
        )
        self.ml = StandIn("MLOptionTrading", "/predict", ml_option_trading_score)
        self.companion = StandIn("Magic8-Companion", "/recommendation", companion_score)

    def start(self, ctx: LocalContext) -> None:
        self.ml.start()
        self.companion.start()
        write_default_flags(self.flags_file)
        os.environ["MAGIC8_MLOPTIONTRADING_URL"] = self.ml.url
        os.environ["MAGIC8_COMPANION_URL"] = self.companion.url
        os.environ["MAGIC8_RECOMMEND_FLAGS_FILE"] = str(self.flags_file)
        ctx.facts["mloptiontrading_url"] = self.ml.url
        ctx.facts["companion_url"] = self.companion.url
        ctx.facts["recommend_flags_file"] = str(self.flags_file)

    def status(self) -> str:
        return (
            f"MLOptionTrading {self.ml.url} ({self.ml.calls} calls), Magic8-Companion "
            f"{self.companion.url} ({self.companion.calls} calls); flags {self.flags_file}"
        )

    def stop(self) -> None:
        self.ml.stop()
        self.companion.stop()
