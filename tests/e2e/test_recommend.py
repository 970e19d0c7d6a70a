"""POST /recommend end to end on `make run`'s path: the local API front, the real handler,
and the two external predictors' local stand-ins over HTTP; flags from the local JSON
file, re-read on every request (no restart)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from magic8.adapters.recommend_sources import DEFAULT_FLAGS
from magic8_dev.local.moto_server import free_port
from magic8_dev.local.predictor_standins import PredictorStandInsComponent
from tests.e2e.stacks import api_url as stack_api_url
from tests.e2e.stacks import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("predict_api")]

KEY = "rec-key"
COMPONENTS = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    "magic8_dev.local.predictor_standins:PredictorStandInsComponent",
    "magic8_dev.local.api_front:ApiFrontComponent",
)
TRADE = {"symbol": "SPX", "strategy": "Iron Condor", "premium": 0.65, "predicted_price": 5855}


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[str, PredictorStandInsComponent, Path]]:
    flags = tmp_path / "flags.json"
    env = {"MAGIC8_RECOMMEND_FLAGS_FILE": str(flags), "MAGIC8_RECOMMEND_TIMEOUT_S": "0.5"}
    with running_stack(env, api_port=free_port(), api_key=KEY, components=COMPONENTS) as local:
        standins = next(c for c in local.components if c.name == "predictors")
        assert isinstance(standins, PredictorStandInsComponent)
        yield stack_api_url(local), standins, flags


def _recommend(url: str, body: dict[str, Any] = TRADE) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60, headers={"x-api-key": KEY}) as http:
        resp = http.post("/recommend", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def test_all_sources_weighted_and_decided(stack: tuple[str, Any, Path]) -> None:
    url, standins, _ = stack
    out = _recommend(url)
    rec = out["recommendation"]
    assert rec["sources_used"] == ["magic8", "MLOptionTrading", "Magic8-Companion"]
    assert rec["weights_used"] == {"magic8": 0.5, "MLOptionTrading": 0.3, "Magic8-Companion": 0.2}
    p = out["prediction"]["win_probability"]
    expected = 0.5 * p + 0.3 * rec["scores"]["MLOptionTrading"]["score"] + 0.2 * 0.82
    assert rec["final_score"] == pytest.approx(expected, abs=1e-5)
    assert rec["decision"] == (
        "EXECUTE" if rec["final_score"] >= 0.7 and rec["confidence"] >= 0.8 else "SKIP"
    )
    assert rec["reason"]
    assert standins.ml.calls == 1 and standins.companion.calls == 1


def test_one_off_one_down_and_a_flag_flip_without_restart(stack: tuple[str, Any, Path]) -> None:
    url, standins, flags = stack
    config = json.loads(json.dumps(DEFAULT_FLAGS))
    config["recommend_mloptiontrading"] = {"default": False}
    flags.write_text(json.dumps(config))
    standins.companion.down = True
    started = time.monotonic()
    rec = _recommend(url)["recommendation"]
    elapsed = time.monotonic() - started
    assert rec["sources_used"] == ["magic8"]
    assert rec["weights_used"] == {"magic8": 1.0}
    assert rec["left_out"]["MLOptionTrading"] == "off"
    assert "HTTPError" in rec["left_out"]["Magic8-Companion"]
    assert standins.ml.calls == 0
    print(f"recommend with one source down: {elapsed * 1000:.0f} ms")
    # flip the flag back on: the next answer uses it, no restart
    config["recommend_mloptiontrading"] = {"default": True}
    flags.write_text(json.dumps(config))
    rec = _recommend(url)["recommendation"]
    assert "MLOptionTrading" in rec["sources_used"]
    assert rec["weights_used"]["magic8"] == pytest.approx(0.5 / 0.8, abs=1e-6)


def test_a_slow_source_is_left_out_by_its_timeout(stack: tuple[str, Any, Path]) -> None:
    url, standins, _ = stack
    standins.ml.delay_s = 2.0
    rec = _recommend(url)["recommendation"]
    assert "MLOptionTrading" not in rec["sources_used"]
    assert "timed out" in rec["left_out"]["MLOptionTrading"].lower() or "timeout" in (
        rec["left_out"]["MLOptionTrading"].lower()
    )
    standins.ml.delay_s = 0.0


def test_batch_answers_carry_a_recommendation_when_asked(stack: tuple[str, Any, Path]) -> None:
    url, _, _ = stack
    with httpx.Client(base_url=url, timeout=60, headers={"x-api-key": KEY}) as http:
        plain = http.post("/predict/batch", json={"requests": [TRADE]}).json()
        asked = http.post("/predict/batch", json={"requests": [TRADE], "recommend": True}).json()
    assert "recommendation" not in plain["predictions"][0]
    rec = asked["predictions"][0]["recommendation"]
    assert rec["decision"] in ("EXECUTE", "SKIP") and rec["sources_used"][0] == "magic8"
