"""The DiscordTrading bot's own contract against `make run`'s API path (HTTP -> local API
Gateway front -> the real handler): its documented curl body (no strikes, no action), its
check_trades_batch logic (each prediction judged against its own threshold, model_type
logged), the oversized batch (413 "Request too large") and an outcome tied to an answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from magic8_dev.local.moto_server import free_port
from tests.e2e.stacks import api_url as stack_api_url
from tests.e2e.stacks import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("predict_api")]

KEY = "bot-key"
COMPONENTS = (
    "magic8_dev.local.seed_component:SeedMarketComponent",
    "magic8_dev.local.api_front:ApiFrontComponent",
)
# the bot's README curl example, verbatim
BOT_CURL_BODY: dict[str, Any] = {
    "requests": [
        {"symbol": "SPX", "strategy": "Butterfly", "premium": 24.82, "predicted_price": 5855},
        {"symbol": "SPX", "strategy": "Iron Condor", "premium": 0.65, "predicted_price": 5855},
    ]
}


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with running_stack(api_port=free_port(), api_key=KEY, components=COMPONENTS) as stack:
        yield stack_api_url(stack)


def check_trades_batch(http: httpx.Client, trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bot's logic: one batch call; a trade is approved when its prediction's
    win_probability reaches that prediction's own threshold; model_type is logged."""
    resp = http.post("/predict/batch", json={"requests": trades}, headers={"x-api-key": KEY})
    if resp.status_code == 413:
        raise ValueError(resp.text)
    resp.raise_for_status()
    decisions = []
    for trade, pred in zip(trades, resp.json()["predictions"], strict=True):
        approved = pred["win_probability"] >= pred["threshold"]
        decisions.append(
            {
                "trade": trade,
                "approved": approved,
                "model_type": pred["model_type"],
                "prediction": pred,
            }
        )
    return decisions


def test_the_bots_curl_example_is_answered_with_what_was_assumed(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60) as http:
        decisions = check_trades_batch(http, BOT_CURL_BODY["requests"])
    assert len(decisions) == 2
    fly, condor = (d["prediction"] for d in decisions)
    assert (fly["strategy"], condor["strategy"]) == ("Butterfly", "Iron Condor")
    for d in decisions:
        pred = d["prediction"]
        assert pred["assumed"] == ["strikes", "action"]
        assert 0.0 <= pred["win_probability"] <= 1.0
        assert d["approved"] == (pred["prediction"] == "WIN")
        assert d["model_type"]
        assert pred["prediction_id"].startswith("m8p1.SPX.")
    assert fly["strikes"] == [5805.0, 5855.0, 5905.0] and fly["action"] == "BUY"
    assert condor["strikes"] == [5830.0, 5835.0, 5875.0, 5880.0] and condor["action"] == "SELL"


def test_the_bots_names_are_accepted(api_url: str) -> None:
    trades = [
        {"symbol": "SPXW", "strategy": "IronCondor", "premium": 0.65, "predicted_price": 5855},
        {"symbol": "$SPX", "strategy": "Put Spread", "premium": 1.2, "predicted_price": 5855},
        {"symbol": "spx", "strategy": "Vertical Spread", "premium": 1.2, "predicted_price": 5855},
    ]
    with httpx.Client(base_url=api_url, timeout=60) as http:
        decisions = check_trades_batch(http, trades)
    got = [(d["prediction"]["symbol"], d["prediction"]["strategy"]) for d in decisions]
    assert got == [("SPX", "Iron Condor"), ("SPX", "Vertical"), ("SPX", "Vertical")]


def test_an_oversized_batch_is_413_request_too_large(api_url: str) -> None:
    trades = BOT_CURL_BODY["requests"][:1] * 101
    with httpx.Client(base_url=api_url, timeout=60) as http:
        resp = http.post("/predict/batch", json={"requests": trades}, headers={"x-api-key": KEY})
    assert resp.status_code == 413
    assert "Request too large" in resp.text


def test_an_outcome_posted_with_a_prediction_id_shows_in_accuracy(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60, headers={"x-api-key": KEY}) as http:
        pred = http.post("/predict/batch", json=BOT_CURL_BODY).json()["predictions"][1]
        posted = http.post("/outcomes", json={"prediction_id": pred["prediction_id"], "won": True})
        assert posted.status_code == 201, posted.text
        out = posted.json()
        assert out["threshold"] == pytest.approx(pred["threshold"], abs=1e-6)
        assert out["win_probability"] == pytest.approx(pred["win_probability"], abs=1e-6)
        report = http.get("/accuracy").json()
    groups = {(g["symbol"], g["strategy"], g["window_days"]): g for g in report["groups"]}
    assert groups[("SPX", "Iron Condor", 1)]["n"] >= 1
