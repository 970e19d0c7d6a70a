"""`make run`'s API path end to end: a LocalStack (moto server on 127.0.0.1, tables from
magic8.resources) with only the market seeder and the API front, then real HTTP requests:
HTTP -> API Gateway event -> functions.predict.handler -> HTTP, with the x-api-key check."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from functions.predict import handler as predict_handler
from magic8_dev.local.moto_server import free_port
from tests.e2e.stacks import api_url as stack_api_url
from tests.e2e.stacks import running_stack
from tests.factories import DISCORD_BATCH

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("predict_api")]

KEY = "e2e-key"
COMPONENTS = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    "magic8_dev.local.api_front:ApiFrontComponent",
)


@pytest.fixture()
def api_url() -> Iterator[str]:
    with running_stack(api_port=free_port(), api_key=KEY, components=COMPONENTS) as stack:
        yield stack_api_url(stack)


def test_local_api_answers_with_the_key_and_refuses_without(api_url: str) -> None:
    assert api_url.startswith("http://127.0.0.1:")
    # the module's after-response collector lives as long as the process (other tests ran
    # through it): count from here
    before = dict(predict_handler.AFTER_RESPONSE.by_task)
    with httpx.Client(base_url=api_url, timeout=60) as http:
        ok = http.post("/predict/batch", json=DISCORD_BATCH, headers={"x-api-key": KEY})
        assert ok.status_code == 200, ok.text
        preds = ok.json()["predictions"]
        assert len(preds) == 2
        assert all(p["data_source"] == "seed" for p in preds)
        assert all(p["prediction"] in ("WIN", "LOSS") for p in preds)

        no_key = http.post("/predict/batch", json=DISCORD_BATCH)
        assert no_key.status_code == 403
        assert no_key.json() == {"message": "Forbidden"}
        wrong = http.post("/predict/batch", json=DISCORD_BATCH, headers={"x-api-key": "nope"})
        assert wrong.status_code == 403
        assert http.get("/market/SPX").status_code == 403

        assert http.get("/health").status_code == 200  # open, for probes

        again = http.post("/predict/batch", json=DISCORD_BATCH, headers={"x-api-key": KEY})
        assert again.json()["batch_metrics"]["prediction_hits"] == 2

        # make run's front sends each answer, then runs its history hand-over
        deadline = time.monotonic() + 30
        while True:
            after = http.get("/health/detailed", headers={"x-api-key": KEY}).json()
            done = after["after_response"]["by_task"]
            if done.get("history", 0) > before.get("history", 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # one new batch: one hand-over; the collector ran after the answers too
        assert after["after_response"]["mode"] == "host"
        assert after["after_response"]["failed"] == 0
        assert done["history"] - before.get("history", 0) == 1
        assert done["gc"] > before.get("gc", 0)
        assert after["after_response"]["gc"]["young_collections"] >= 1

        bad = http.post(
            "/predict",
            json={**DISCORD_BATCH["requests"][0], "premium": -1},
            headers={"x-api-key": KEY},
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "premium"]
        junk = http.post(
            "/predict/batch",
            content=b"{oops",
            headers={"x-api-key": KEY, "content-type": "application/json"},
        )
        assert junk.status_code == 422
