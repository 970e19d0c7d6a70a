"""The predict API end to end in-process: API Gateway REST events -> the real Mangum handler
(functions.predict.handler) -> FastAPI -> PredictionService with the real XGBoost hierarchy
from models/ and the real feature module -> DynamoDB on the embedded moto server (market
snapshots written by the project's seeder, confidence history written by the service)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.predict import handler as predict_handler
from functions.predict.deps import build_handler
from functions.predict.settings import ApiSettings
from magic8.adapters.history_dynamo import DynamoHistoryRepository
from magic8.adapters.market_dynamo import DynamoMarketRepository
from magic8.adapters.prediction_service import build_prediction_service
from magic8.domain.confidence import ConfidencePoint
from magic8.domain.features import FEATURE_NAMES
from magic8.domain.service import PredictionService
from magic8_dev.local.api_front import LambdaContext, apigw_event, response_body
from magic8_dev.local.provision import LocalResources
from magic8_dev.ml.seed import seed_market
from tests.factories import BUTTERFLY, DISCORD_BATCH
from tests.factories import IRON_CONDOR as CONDOR

pytestmark = pytest.mark.xdist_group("predict_api")


Call = Callable[..., tuple[int, Any]]


def _caller(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Call:
    def call(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, list[str]] | None = None,
        raw: bytes | str | None = None,
    ) -> tuple[int, Any]:
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        event = apigw_event(method, path, payload, {"content-type": "application/json"}, query)
        with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics lines
            resp = handler(event, LambdaContext())
        data = response_body(resp)
        try:
            return resp["statusCode"], json.loads(data)
        except ValueError:
            return resp["statusCode"], data.decode(errors="replace")

    return call


@pytest.fixture()
def seeded(aws_resources: LocalResources) -> LocalResources:
    seed_market(aws_resources.settings)
    return aws_resources


@pytest.fixture()
def api(seeded: LocalResources) -> Iterator[Call]:
    """The real entry point, functions.predict.handler.handler, built on first invoke."""
    predict_handler.reset()
    yield _caller(predict_handler.handler)
    predict_handler.reset()


@pytest.fixture()
def api_unseeded() -> Iterator[Call]:
    """The real handler for requests that are refused before the service is built (bad
    input never reaches the model or AWS: no tables needed)."""
    predict_handler.reset()
    yield _caller(predict_handler.handler)
    predict_handler.reset()


def pinned_api(now: datetime) -> Call:
    """The same handler construction with the service's clock pinned (for comparisons that
    must not straddle a 5-minute feature-time boundary)."""

    def factory(settings: ApiSettings) -> PredictionService:
        svc = build_prediction_service(settings)
        svc.clock = lambda: now
        return svc

    return _caller(build_handler(ApiSettings(), factory))


def test_discordtrading_batch_returns_predictions_and_repeats_from_cache(api: Call) -> None:
    status, body = api("POST", "/predict/batch", DISCORD_BATCH)
    assert status == 200, body
    preds = body["predictions"]
    assert [(p["symbol"], p["strategy"]) for p in preds] == [
        ("SPX", "Butterfly"),
        ("SPX", "Iron Condor"),
    ]
    for p in preds:
        assert 0.0 <= p["win_probability"] <= 1.0
        assert p["prediction"] in ("WIN", "LOSS")
        assert p["prediction"] == ("WIN" if p["win_probability"] >= p["threshold"] else "LOSS")
        assert 0.0 < p["threshold"] < 1.0
        assert p["model_type"] and p["model_version"]
        assert p["data_source"] == "seed" and p["data_age_s"] is not None
        assert p["n_features"] == len(FEATURE_NAMES)
    m = body["batch_metrics"]
    assert m["prediction_misses"] == 2 and m["prediction_hits"] == 0
    assert m["market_data_fetches"] == 1
    assert set(m) >= {
        "feature_hits",
        "feature_misses",
        "prediction_hits",
        "prediction_misses",
        "market_data_fetches",
        "elapsed_ms",
    }
    status, again = api("POST", "/predict/batch", DISCORD_BATCH)
    assert status == 200
    assert again["batch_metrics"]["prediction_hits"] == 2
    assert again["batch_metrics"]["market_data_fetches"] == 0
    # the cached answers are the same model answers, decayed by their (small) cache age
    assert [p["probability_undecayed"] for p in again["predictions"]] == [
        p["win_probability"] for p in preds
    ]
    for p in preds:
        assert p["cache_age_s"] == 0.0 and p["decay_factor"] == 1.0
    for p in again["predictions"]:
        assert p["cache_age_s"] > 0.0 and 0.0 < p["decay_factor"] < 1.0
        assert p["win_probability"] == pytest.approx(p["probability_undecayed"], abs=1e-3)


def _mixed() -> list[dict[str, Any]]:
    return [
        BUTTERFLY,
        CONDOR,
        {**BUTTERFLY, "premium": 12.5},
        {**CONDOR, "strategy": "Sonar", "strikes": [5900, 5890, 5820, 5810], "premium": 2.1},
        {
            "strategy": "Vertical",
            "symbol": "XSP",
            "premium": 1.1,
            "predicted_price": 587,
            "strikes": [580, 585],
            "action": "SELL",
        },
        {
            "strategy": "Vertical",
            "symbol": "SPY",
            "premium": 2.0,
            "predicted_price": 590,
            "strikes": [585, 590],
            "action": "BUY",
            "option_type": "call",
        },
        {
            "strategy": "Butterfly",
            "symbol": "NDX",
            "premium": 60,
            "predicted_price": 21050,
            "strikes": [21150, 21050, 20950],
            "action": "BUY",
            "short_term": 21040,
            "long_term": 21100,
        },
        {
            "strategy": "Iron Condor",
            "symbol": "QQQ",
            "premium": 0.4,
            "predicted_price": 511,
            "strikes": [520, 518, 504, 502],
            "action": "SELL",
        },
        {
            "strategy": "Sonar",
            "symbol": "RUT",  # not seeded: answered with data_source "unavailable"
            "premium": 1.5,
            "predicted_price": 2350,
            "strikes": [2400, 2390, 2310, 2300],
            "action": "SELL",
        },
    ]


def test_batch_equals_the_same_trades_one_by_one(seeded: LocalResources) -> None:
    now = datetime.now(UTC)
    trades = _mixed()
    batch_api = pinned_api(now)
    status, body = batch_api("POST", "/predict/batch", {"requests": trades})
    assert status == 200, body
    single_api = pinned_api(now)  # a separate container: nothing cached
    singles = []
    for trade in trades:
        s, one = single_api("POST", "/predict", trade)
        assert s == 200, one
        assert one["cache_hit"] is False
        singles.append(one)
    keys = ("symbol", "strategy", "win_probability", "prediction", "threshold", "model_type")
    assert [{k: p[k] for k in keys} for p in body["predictions"]] == [
        {k: p[k] for k in keys} for p in singles
    ]
    assert body["predictions"][-1]["data_source"] == "unavailable"


@pytest.mark.parametrize(
    ("field", "variants"),
    [
        ("premium", [{"premium": 5.0}, {"premium": 40.0}]),
        ("strikes", [{"strikes": [5955, 5905, 5855]}, {"strikes": [5885, 5855, 5825]}]),
        ("predicted_price", [{"predicted_price": 5905}, {"predicted_price": 5800}]),
        ("action", [{"action": "SELL"}]),
        ("strategy", [{"strategy": "Vertical", "strikes": [5855, 5805]}]),
    ],
)
def test_each_trade_field_moves_the_probability(
    seeded: LocalResources, field: str, variants: list[dict[str, Any]]
) -> None:
    call = pinned_api(datetime.now(UTC))
    # a fixed time inside a session: at the wall clock after the close (the seeded
    # snapshot's time) the model is saturated and a premium may not move it
    at = {"timestamp": "2026-11-17T11:30:00-05:00"}
    trades = [{**BUTTERFLY, **at}] + [{**BUTTERFLY, **at, **v} for v in variants]
    status, body = call("POST", "/predict/batch", {"requests": trades})
    assert status == 200, body
    base = body["predictions"][0]["win_probability"]
    moved = [p["win_probability"] for p in body["predictions"][1:]]
    assert all(abs(p - base) > 1e-6 for p in moved), (field, base, moved)
    assert body["batch_metrics"]["prediction_misses"] == len(trades)


def test_trades_differing_only_in_premium_never_share_a_cached_row_or_answer(api: Call) -> None:
    a = dict(BUTTERFLY)
    b = {**BUTTERFLY, "premium": 24.83}
    status, body = api("POST", "/predict/batch", {"requests": [a, b]})
    assert status == 200
    m = body["batch_metrics"]
    assert m["prediction_misses"] == 2 and m["feature_misses"] == 2
    # each is then served from its own cache entry
    _, one = api("POST", "/predict", b)
    assert one["cache_hit"] is True
    assert one["probability_undecayed"] == body["predictions"][1]["win_probability"]
    # and a third premium is a new row again
    _, three = api("POST", "/predict/batch", {"requests": [{**BUTTERFLY, "premium": 24.84}]})
    assert three["batch_metrics"]["prediction_misses"] == 1
    assert three["batch_metrics"]["feature_misses"] == 1


def _missing(field: str) -> dict[str, Any]:
    return {k: v for k, v in BUTTERFLY.items() if k != field}


@pytest.mark.parametrize(
    ("path", "body", "raw", "status", "loc"),
    [
        ("/predict", _missing("premium"), None, 422, ["body", "premium"]),
        ("/predict", _missing("predicted_price"), None, 422, ["body", "predicted_price"]),
        ("/predict", {**BUTTERFLY, "strikes": []}, None, 422, ["body", "strikes"]),
        ("/predict", {**BUTTERFLY, "strategy": "Straddle"}, None, 422, ["body", "strategy"]),
        ("/predict", {**BUTTERFLY, "symbol": "AAPL"}, None, 422, ["body", "symbol"]),
        ("/predict", {**BUTTERFLY, "premium": -1}, None, 422, ["body", "premium"]),
        ("/predict", {**BUTTERFLY, "strikes": [5900, 5850]}, None, 422, ["body", "strikes"]),
        (
            "/predict",
            {**CONDOR, "strikes": [5880, 5880, 5835, 5830]},
            None,
            422,
            ["body", "strikes"],
        ),
        ("/predict", {**BUTTERFLY, "action": "HOLD"}, None, 422, ["body", "action"]),
        ("/predict", {**BUTTERFLY, "symbol": "S" * 5000}, None, 422, ["body", "symbol"]),
        ("/predict", {**BUTTERFLY, "option_type": "x" * 5000}, None, 422, ["body", "option_type"]),
        ("/predict", None, "{not json", 422, ["body"]),
        ("/predict", None, "[1, 2, 3]", 422, ["body"]),
        ("/predict", None, "[" * 100_000 + "]" * 100_000, 422, ["body"]),  # too deep
        ("/predict", None, '{"premium": ' + "9" * 5000 + "}", 422, ["body"]),  # huge int
        ("/predict/batch", {"requests": []}, None, 422, ["body", "requests"]),
        ("/predict/batch", {"requests": [BUTTERFLY] * 101}, None, 413, ["body", "requests"]),
        ("/predict/batch", {}, None, 422, ["body", "requests"]),
        (
            "/predict/batch",
            {"requests": [BUTTERFLY, {**CONDOR, "premium": "cheap"}]},
            None,
            422,
            ["body", "requests", 1, "premium"],
        ),
        ("/predict/batch", None, "x" * 300_000, 413, ["body"]),
        (
            "/calculate_risk_reward",
            {**CONDOR, "strikes": [1, 2, 3]},
            None,
            422,
            ["body", "strikes"],
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    api_unseeded: Call, path: str, body: Any, raw: str | None, status: int, loc: list[Any]
) -> None:
    got, detail = api_unseeded("POST", path, body, raw=raw)
    assert got == status, detail
    locs = [d["loc"] for d in detail["detail"]]
    assert any(item[: len(loc)] == loc for item in locs), locs
    assert all(isinstance(d["msg"], str) and d["msg"] for d in detail["detail"])


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/market/AAPL", None),
        ("/confidence/history/SPX/Straddle", None),
        ("/confidence/history/FOO/Butterfly", None),
        ("/confidence/history/SPX/Butterfly", {"hours": ["-1"]}),
        ("/confidence/trends", {"hours": ["soon"]}),
        ("/market/SPX", {"bars": ["1000"]}),
    ],
)
def test_bad_path_or_query_is_a_422(
    api_unseeded: Call, path: str, query: dict[str, list[str]] | None
) -> None:
    status, body = api_unseeded("GET", path, query=query)
    assert status == 422, body
    assert body["detail"][0]["loc"][0] in ("path", "query")


def test_risk_reward_endpoint(api: Call) -> None:
    status, body = api("POST", "/calculate_risk_reward", BUTTERFLY)
    assert status == 200
    assert body["max_profit"] == pytest.approx((50 - 24.82) * 100)
    assert body["max_loss"] == pytest.approx(24.82 * 100)
    assert body["breakevens"] == pytest.approx([5829.82, 5880.18])


def test_market_endpoint(api: Call) -> None:
    status, body = api("GET", "/market/SPX", query={"bars": ["3"]})
    assert status == 200
    assert body["symbol"] == "SPX" and body["data_source"] == "seed" and len(body["bars"]) == 3
    assert body["n_bars"] > 20
    status, body = api("GET", "/market/vix")
    assert status == 200 and body["symbol"] == "VIX"
    status, body = api("GET", "/market/RUT")  # no honest RUT source: not seeded
    assert status == 404


def test_stale_market_data_is_served_and_flagged(aws_resources: LocalResources) -> None:
    seed_market(aws_resources.settings, now=datetime.now(UTC) - timedelta(hours=1))
    predict_handler.reset()
    try:
        api = _caller(predict_handler.handler)
        status, body = api("POST", "/predict/batch", DISCORD_BATCH)
        assert status == 200
        for p in body["predictions"]:
            assert p["data_source"] == "stale" and p["data_age_s"] >= 3590
    finally:
        predict_handler.reset()


def test_no_market_data_at_all_still_answers(aws_resources: LocalResources) -> None:
    predict_handler.reset()
    try:
        api = _caller(predict_handler.handler)
        status, body = api("POST", "/predict/batch", DISCORD_BATCH)
        assert status == 200
        assert {p["data_source"] for p in body["predictions"]} == {"unavailable"}
        assert all(p["data_age_s"] is None for p in body["predictions"])
        status, health = api("GET", "/health/detailed")
        assert status == 200 and health["status"] == "degraded"
    finally:
        predict_handler.reset()


def test_history_is_written_and_served(api: Call) -> None:
    status, body = api("POST", "/predict/batch", DISCORD_BATCH)
    assert status == 200
    assert body["batch_metrics"]["history_written"] == 2
    status, hist = api("GET", "/confidence/history/SPX/Iron%20Condor", query={"hours": ["1"]})
    assert status == 200, hist
    assert hist["series"] == "SPX#Iron Condor" and hist["count"] == 1
    point = hist["points"][0]
    assert point["win_probability"] == body["predictions"][1]["win_probability"]
    assert point["model_type"] == body["predictions"][1]["model_type"]
    status, hist = api("GET", "/confidence/history/spx/iron_condor")
    assert status == 200 and hist["count"] == 1
    status, trends = api("GET", "/confidence/trends", query={"hours": ["1"]})
    assert status == 200
    series = {t["series"]: t for t in trends["trends"]}
    assert set(series) == {"SPX#Butterfly", "SPX#Iron Condor"}
    assert (
        series["SPX#Butterfly"]["latest"]["win_probability"]
        == (body["predictions"][0]["win_probability"])
    )


def test_health(api: Call) -> None:
    status, body = api("GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["model_loaded"] is False
    status, body = api("GET", "/health/detailed")
    assert status == 200
    assert body["model"]["loaded"] is True and body["model"]["n_features"] == len(FEATURE_NAMES)
    assert body["market"]["SPX"]["data_source"] == "seed"
    assert body["history"]["reachable"] is True
    assert body["status"] == "ok", body["problems"]
    # the /health call above, in this warm container's last minute
    assert body["requests_per_minute"] >= 1 and body["avg_latency_ms"] > 0


# --- the DynamoDB history adapter on moto -------------------------------------------------


def _pt(ts_ms: int, p: float, series: tuple[str, str] = ("SPX", "Butterfly")) -> ConfidencePoint:
    return ConfidencePoint(series[0], series[1], ts_ms, p, "WIN", 0.5, "default", "v1", "seed")


def test_history_adapter_batches_dedupes_and_filters_expired(
    aws_resources: LocalResources,
) -> None:
    table = aws_resources.settings.history_table
    repo = DynamoHistoryRepository(table)
    base = 1_800_000_000_000
    # 60 points (3 BatchWriteItem calls), two of them in the same millisecond
    points = [_pt(base + i * 1000, i / 100) for i in range(59)] + [_pt(base, 0.99)]
    assert repo.record(points) == 60
    got = repo.query("SPX#Butterfly", base, base + 3_600_000)
    assert len(got) == 60
    assert [p.ts_ms for p in got] == sorted(p.ts_ms for p in got)
    assert {p.win_probability for p in got if p.ts_ms in (base, base + 1)} == {0.0, 0.99}
    # items past their TTL are not served, although moto never deletes them
    later = DynamoHistoryRepository(table, wall_clock=lambda: 4_000_000_000.0)
    assert later.query("SPX#Butterfly", base, base + 3_600_000) == []


def test_history_adapter_trends(aws_resources: LocalResources) -> None:
    repo = DynamoHistoryRepository(aws_resources.settings.history_table)
    now = int(datetime.now(UTC).timestamp() * 1000)
    hour = 3_600_000
    repo.record(
        [
            _pt(now - 3 * hour, 0.40),
            _pt(now - 2 * hour, 0.50),
            _pt(now - 10_000, 0.70),
            _pt(now - 60_000, 0.30, ("NDX", "Sonar")),
        ]
    )
    trends = {t.series: t for t in repo.trends(2.0, now)}
    assert set(trends) == {"SPX#Butterfly", "NDX#Sonar"}
    spx = trends["SPX#Butterfly"]
    assert spx.latest.win_probability == 0.70
    assert spx.previous is not None and spx.previous.win_probability == 0.50
    assert spx.change == pytest.approx(0.20)
    assert trends["NDX#Sonar"].previous is None
    assert trends["NDX#Sonar"].to_dict()["change"] is None


def test_seeded_snapshots_are_read_in_one_batch(seeded: LocalResources) -> None:
    repo = DynamoMarketRepository(seeded.settings.market_table)
    snaps = repo.get_snapshots(["SPX", "SPY", "XSP", "NDX", "QQQ", "RUT", "VIX"])
    assert set(snaps) == {"SPX", "SPY", "XSP", "NDX", "QQQ", "VIX"}


# --- issue 15: answers that make sense ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({**BUTTERFLY, "premium": 80}, "can never profit"),
        (
            {
                "symbol": "SPX",
                "strategy": "Vertical",
                "action": "SELL",
                "premium": 7.0,
                "predicted_price": 5855,
                "strikes": [5840, 5845],
            },
            "credit is above the width",
        ),
        ({**CONDOR, "premium": 6.0}, "can never lose"),
    ],
)
def test_impossible_premium_is_a_422_that_says_why(
    api_unseeded: Call, body: dict[str, Any], why: str
) -> None:
    status, single = api_unseeded("POST", "/predict", body)
    assert status == 422
    assert single["detail"][0]["loc"] == ["body", "premium"]
    assert why in single["detail"][0]["msg"]
    status, batch = api_unseeded("POST", "/predict/batch", {"requests": [BUTTERFLY, body]})
    assert status == 422
    assert batch["detail"][0]["loc"] == ["body", "requests", 1, "premium"]


def test_naive_timestamp_is_eastern_and_the_answer_says_so(api: Call) -> None:
    naive = {**BUTTERFLY, "timestamp": "2026-03-02T12:00:00"}
    aware = {**BUTTERFLY, "timestamp": "2026-03-02T17:00:00+00:00"}  # the same instant
    status, body = api("POST", "/predict/batch", {"requests": [naive, aware, BUTTERFLY]})
    assert status == 200, body
    p_naive, p_aware, p_none = body["predictions"]
    assert p_naive["time_used"] == {
        "at": "2026-03-02T12:00:00-05:00",
        "source": "timestamp without zone (read as US/Eastern)",
    }
    assert p_naive["assumed"] == ["timezone"]
    assert p_aware["time_used"]["at"] == "2026-03-02T12:00:00-05:00"
    assert p_aware["time_used"]["source"] == "timestamp" and p_aware["assumed"] == []
    # the same instant: the same features and probability
    assert p_naive["win_probability"] == p_aware["win_probability"]
    assert p_naive["market_open"] is True and p_naive["session"] == "regular"
    assert p_none["time_used"]["source"].startswith("serve time")


def test_closed_sessions_are_answered_but_flagged(api: Call) -> None:
    saturday = {**BUTTERFLY, "timestamp": "2026-03-07T12:00:00-05:00"}
    christmas = {**BUTTERFLY, "timestamp": "2026-12-25T11:00:00-05:00"}
    early = {**BUTTERFLY, "timestamp": "2026-11-27T12:00:00-05:00"}
    status, body = api("POST", "/predict/batch", {"requests": [saturday, christmas, early]})
    assert status == 200, body
    sat, xmas, half = body["predictions"]
    for p in (sat, xmas):
        assert p["market_open"] is False and p["session"] == "closed"
        assert p["warnings"] and "market closed" in p["warnings"][0]
    assert half["session"] == "early_close" and half["market_open"] is True
    assert half["warnings"] == []


def test_history_has_one_line_per_trade_identity(api: Call) -> None:
    watched = {**CONDOR, "premium": 0.65}
    unrelated = {**CONDOR, "strikes": [5790, 5800, 5910, 5920], "premium": 2.0}
    for premium in (0.65, 0.70):  # two answers for the watched trade, one for the other
        status, _ = api("POST", "/predict/batch", {"requests": [{**watched, "premium": premium}]})
        assert status == 200
    status, _ = api("POST", "/predict/batch", {"requests": [unrelated]})
    assert status == 200
    status, hist = api("GET", "/confidence/history/SPX/Iron%20Condor", query={"hours": ["1"]})
    assert status == 200, hist
    lines = {line["trade"]: line for line in hist["lines"]}
    assert set(lines) == {"SELL 5830/5835/5875/5880", "SELL 5790/5800/5910/5920"}
    assert lines["SELL 5830/5835/5875/5880"]["count"] == 2
    assert lines["SELL 5790/5800/5910/5920"]["count"] == 1
    assert all(p["trade"] for p in hist["points"])
    status, one = api(
        "GET",
        "/confidence/history/SPX/Iron%20Condor",
        query={"hours": ["1"], "trade": ["SELL 5790/5800/5910/5920"]},
    )
    assert status == 200 and one["count"] == 1 and len(one["lines"]) == 1


def test_trends_filters_and_aliases(api: Call) -> None:
    spy = {**BUTTERFLY, "symbol": "SPY", "predicted_price": 585.5, "strikes": None, "premium": 2.0}
    status, _ = api("POST", "/predict/batch", {"requests": [BUTTERFLY, CONDOR, spy]})
    assert status == 200
    status, all_ = api("GET", "/confidence/trends", query={"window": ["30m"]})
    assert status == 200 and all_["hours"] == pytest.approx(0.5, abs=1e-9)
    assert {t["series"] for t in all_["trends"]} == {
        "SPX#Butterfly",
        "SPX#Iron Condor",
        "SPY#Butterfly",
    }
    status, some = api(
        "GET", "/confidence/trends", query={"symbols": ["SPXW,$SPY"], "strategies": ["fly"]}
    )
    assert status == 200, some
    assert {t["series"] for t in some["trends"]} == {"SPX#Butterfly", "SPY#Butterfly"}
    status, bad = api("GET", "/confidence/trends", query={"symbols": ["AAPL"]})
    assert status == 422 and bad["detail"][0]["loc"] == ["query", "symbols"]
    status, bad = api("GET", "/confidence/trends", query={"window": ["soon"]})
    assert status == 422
    status, hist = api("GET", "/confidence/history/SPXW/IronCondor")
    assert status == 200 and hist["series"] == "SPX#Iron Condor"


def test_emf_metrics_have_symbol_and_strategy_dimensions(seeded: LocalResources) -> None:
    handler = build_handler(ApiSettings())
    event = apigw_event(
        "POST", "/predict/batch", json.dumps(DISCORD_BATCH), {"content-type": "application/json"}
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        resp = handler(event, LambdaContext())
    assert resp["statusCode"] == 200
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]
    by_trade = [x for x in lines if "PredictionsByTrade" in x]
    dims = {(x["symbol"], x["strategy"]) for x in by_trade}
    assert dims == {("SPX", "Butterfly"), ("SPX", "Iron Condor")}
    # every answer counted once, under the function's namespace
    assert sum(x["PredictionsByTrade"] for x in by_trade) == len(DISCORD_BATCH["requests"])
    for x in by_trade:
        assert x["_aws"]["CloudWatchMetrics"][0]["Namespace"]
        declared = x["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        assert {"symbol", "strategy"} <= set(declared)


def test_cached_answer_decays_to_the_base_rate_with_a_tiny_half_life(
    seeded: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAGIC8_DECAY_HALF_LIFE_S reaches the service: with a 1 µs half-life any cached answer
    is (to 6 decimals) the model's training base rate for its strategy, and says so."""
    from magic8.settings import DEFAULT_MODEL_DIR

    monkeypatch.setenv("MAGIC8_DECAY_HALF_LIFE_S", "0.000001")
    call = _caller(build_handler(ApiSettings()))
    _, first = call("POST", "/predict", BUTTERFLY)
    _, again = call("POST", "/predict", BUTTERFLY)
    assert first["cache_hit"] is False and first["decay_factor"] == 1.0
    assert again["cache_hit"] is True and again["decay_factor"] == 0.0
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    base = manifest["data"]["win_rate_by_strategy"]["Butterfly"]
    assert again["win_probability"] == pytest.approx(base, abs=1e-6)
    assert again["probability_undecayed"] == first["win_probability"]
    wins = again["win_probability"] >= again["threshold"]
    assert again["prediction"] == ("WIN" if wins else "LOSS")


def test_cache_warming_at_init_and_on_the_warm_event(
    seeded: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAGIC8_WARM_TRADES are predicted when the service is built, so the first request
    for one is a cache hit; the warm event (EventBridge, every 5 minutes) re-predicts
    them and the most requested trades, and /health/detailed reports it."""
    from magic8.domain.warming import WARM_EVENT

    monkeypatch.setenv("MAGIC8_WARM_TRADES", json.dumps([BUTTERFLY]))
    monkeypatch.setenv("MAGIC8_WARM_SYMBOLS", json.dumps(["NDX"]))
    handler = build_handler(ApiSettings())
    call = _caller(handler)
    _, first = call("POST", "/predict", BUTTERFLY)
    assert first["cache_hit"] is True  # warmed at init
    other = {**BUTTERFLY, "premium": 20.5}
    for _ in range(3):
        call("POST", "/predict", other)
    with contextlib.redirect_stdout(io.StringIO()):
        result = handler(WARM_EVENT, LambdaContext())
    assert result["configured"] == 1 and result["most_requested"] == 1
    assert result["trades"] == 2 and result["errors"] == []
    _, health = call("GET", "/health/detailed")
    warming = health["cache_warming"]
    assert warming["runs"] == 2 and warming["configured_trades"] == 1
    assert warming["configured_symbols"] == ["NDX"] and warming["tracked_trades"] == 2
    assert warming["last"]["trades"] == 2


def test_health_detailed_says_where_after_response_work_runs(api: Call) -> None:
    """Called directly (no host sending the response), the history hand-over runs at the
    end of the invocation; /health/detailed says so and counts it."""
    status, _ = api("POST", "/predict/batch", {"requests": [BUTTERFLY, CONDOR]})
    assert status == 200
    _, health = api("GET", "/health/detailed")
    after = health["after_response"]
    assert after["mode"] == "inline" and after["ran"] >= 1 and after["failed"] == 0
    assert health["stats"]["history_failures"] == 0
