"""The Lambda handler's fast path for POST /predict/batch answers exactly what the app
answers through Mangum/Starlette/FastAPI: same status, headers and JSON (only elapsed_ms
differs), on the real service (real model, DynamoDB on moto); every request it does not
take, and every error, still goes through the app."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.predict import handler as predict_handler
from functions.predict.handler import batch_body, build_handler
from functions.predict.settings import ApiSettings
from magic8.benchmarks.predict import make_trades
from magic8.domain.service import PredictionService, build_default_service
from magic8.local.api_front import LambdaContext, apigw_event
from magic8.local.provision import LocalResources
from magic8.ml.seed import seed_market

pytestmark = pytest.mark.xdist_group("predict_api")

NOW = datetime.now(UTC).replace(microsecond=0)
DISCORD_BATCH = {
    "requests": [
        {
            "strategy": "Butterfly",
            "symbol": "SPX",
            "premium": 24.82,
            "predicted_price": 5855,
            "strikes": [5905, 5855, 5805],
            "action": "BUY",
            "quantity": 1,
        },
        {
            "strategy": "iron_condor",
            "symbol": "spx",
            "premium": 0.65,
            "predicted_price": 5855,
            "strikes": [5880, 5875, 5835, 5830],
            "action": "sell",
            "quantity": 1,
            "option_type": "P",
            "timestamp": "2026-03-09T15:00:00Z",
        },
    ],
    "share_market_data": True,
}
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _handler(fast_path: bool) -> Handler:
    def factory(settings: ApiSettings) -> PredictionService:
        svc = build_default_service(settings)
        svc.clock = lambda: NOW
        return svc

    return build_handler(ApiSettings(), factory, fast_path=fast_path)


def _invoke(handler: Handler, event: dict[str, Any]) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics lines
        return handler(event, LambdaContext())


def _event(body: Any, headers: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    hdrs = {"content-type": "application/json"} if headers is None else headers
    return apigw_event(kw.pop("method", "POST"), kw.pop("path", "/predict/batch"), raw, hdrs)


def _comparable(resp: dict[str, Any]) -> dict[str, Any]:
    """The response without what legitimately differs between two runs (elapsed_ms, and
    the content-length that its digits change)."""
    out = dict(resp)
    headers = dict(out["headers"])
    assert int(headers.pop("content-length")) == len(out["body"].encode())
    out["headers"] = headers
    try:
        body = json.loads(out["body"])
    except ValueError:  # e.g. an empty redirect body
        return out
    if isinstance(body, dict) and "batch_metrics" in body:
        body["batch_metrics"].pop("elapsed_ms")
    out["body"] = body
    return out


@pytest.fixture()
def seeded(aws_resources: LocalResources) -> LocalResources:
    seed_market(aws_resources.settings)
    return aws_resources


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fast path's answers."""
    seen: list[int] = []
    real = predict_handler.fast_batch_answer

    def spy(app: Any, body: bytes) -> bytes | None:
        answer = real(app, body)
        seen.append(answer is not None)
        return answer

    monkeypatch.setattr(predict_handler, "fast_batch_answer", spy)
    return seen


def test_fast_path_answers_exactly_like_the_app(seeded: LocalResources, calls: list[int]) -> None:
    slow, fast = _handler(fast_path=False), _handler(fast_path=True)
    lasts = {"SPX": 5850.0, "SPY": 585.0, "NDX": 21000.0, "QQQ": 510.0, "XSP": 585.0}
    batches = [DISCORD_BATCH, {"requests": make_trades(lasts, 100)}]
    for batch in batches:
        for _ in range(2):  # not cached, then cached
            a = _invoke(slow, _event(batch))
            b = _invoke(fast, _event(batch))
            assert a["statusCode"] == 200, a["body"][:500]
            assert _comparable(a) == _comparable(b)
    assert calls == [True] * 4
    second = json.loads(_invoke(fast, _event(batches[1]))["body"])["batch_metrics"]
    assert second["prediction_hits"] == 100


@pytest.mark.parametrize(
    "event",
    [
        _event("{not json"),
        _event({"requests": []}),
        _event({"requests": [DISCORD_BATCH["requests"][0]] * 101}),
        _event({"requests": [{**DISCORD_BATCH["requests"][0], "premium": -1}]}),
        _event({"requests": [{**DISCORD_BATCH["requests"][0], "strikes": [1, 2]}]}),
        _event({"requests": [{**DISCORD_BATCH["requests"][0], "symbol": "ES"}]}),
        _event({"requests": [{**DISCORD_BATCH["requests"][0], "premium": "NaN"}]}),
        _event("x" * 70_000),
    ],
    ids=["not-json", "empty", "101", "negative", "strikes", "symbol", "nan", "huge"],
)
def test_errors_are_the_apps(event: dict[str, Any], calls: list[int]) -> None:
    slow, fast = _handler(fast_path=False), _handler(fast_path=True)
    a, b = _invoke(slow, event), _invoke(fast, event)
    assert a["statusCode"] in (413, 422), a
    assert a == b
    assert calls == [False] or calls == []  # the fast path declined; the app answered


def test_requests_the_fast_path_does_not_take(seeded: LocalResources, calls: list[int]) -> None:
    slow, fast = _handler(fast_path=False), _handler(fast_path=True)
    body = json.dumps(DISCORD_BATCH)
    others = [
        _event(DISCORD_BATCH, headers={"content-type": "text/plain"}),
        _event(DISCORD_BATCH, headers={}),
        _event(DISCORD_BATCH, headers={"Content-Type": "application/json; charset=utf-8"}),
        _event(DISCORD_BATCH, path="/predict/batch/"),
        _event(DISCORD_BATCH, method="PUT"),
        {
            **_event(DISCORD_BATCH),
            "body": base64.b64encode(body.encode()).decode(),
            "isBase64Encoded": True,
        },
        _event(DISCORD_BATCH, headers={"content-type": "application/json", "content-length": "7"}),
    ]
    for event in others:
        a, b = _invoke(slow, event), _invoke(fast, event)
        assert _comparable(a) == _comparable(b), event
    # only the explicit charset variant is taken (the app parses it as JSON too)
    assert calls == [True]


def test_batch_body_is_exactly_mangums_body() -> None:
    event = _event(DISCORD_BATCH, headers={"Content-Type": "Application/JSON"})
    assert batch_body(event, 1_000_000) == json.dumps(DISCORD_BATCH).encode()
    assert batch_body(event, 10) is None  # over the body limit: the app's 413
    assert batch_body({**event, "version": "2.0"}, 1_000_000) is None  # HTTP API event
    alb = {**event, "requestContext": {"elb": {"targetGroupArn": "x"}}}
    assert batch_body(alb, 1_000_000) is None
    assert batch_body({**event, "path": "/predict%2Fbatch"}, 1_000_000) is not None  # unquoted
    assert batch_body({**event, "body": None}, 1_000_000) is None
