"""Hostile input at the API edge (issue 16): each row is an input, the expected status and
what was observed. Probes designed from the OpenAPI contract: extreme and implausible
timestamps, booleans as numbers, schema-valid nonsense, a trailing slash, a premium worth
more than the structure. None may be a 5xx, a redirect or a stored record.

`make test` runs the rows marked quick; `make resilience` (full budget) runs them all.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.predict import monitor_routes, signals_routes
from functions.predict.deps import build_handler
from magic8.adapters.aws import reset_clients
from magic8_dev.local.api_front import LambdaContext, apigw_event
from magic8_dev.local.provision import LocalResources
from magic8_dev.resilience.table import ResilienceRow, budget, record
from tests.factories import BUTTERFLY, IRON_CONDOR

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-hostile_input")]

VERTICAL = {**BUTTERFLY, "strategy": "Vertical", "strikes": [5850, 5860], "premium": 4.0}
SOON = (datetime.now(UTC) + timedelta(days=30)).isoformat()

# (name, method, path, body, expected status, field the 422 must name, quick)
ROWS: list[tuple[str, str, str, Any, int, str | None, bool]] = [
    ("timestamp year 1 at +14:00", "POST", "/predict",
     {**BUTTERFLY, "timestamp": "0001-01-01T00:00:00+14:00"}, 422, "timestamp", True),
    ("timestamp 9999-12-31 at -12:00", "POST", "/predict",
     {**BUTTERFLY, "timestamp": "9999-12-31T23:59:59-12:00"}, 422, "timestamp", True),
    ("timestamp in 1900", "POST", "/predict",
     {**BUTTERFLY, "timestamp": "1900-01-02T15:00:00+00:00"}, 422, "timestamp", False),
    ("timestamp in 2200", "POST", "/predict",
     {**BUTTERFLY, "timestamp": "2200-01-02T15:00:00+00:00"}, 422, "timestamp", False),
    ("a boolean among the strikes", "POST", "/predict",
     {**BUTTERFLY, "strikes": [True, 5855, 5905]}, 422, "strikes", True),
    ("a boolean quantity", "POST", "/predict", {**BUTTERFLY, "quantity": True}, 422, "quantity",
     False),
    ("NDX condor near 999,990, premium 999,999", "POST", "/predict",
     {**IRON_CONDOR, "symbol": "NDX", "strikes": [999980, 999985, 999995, 1000000],
      "predicted_price": 999990, "premium": 999999}, 422, "predicted_price", True),
    ("predicted price 1e9", "POST", "/predict", {**BUTTERFLY, "predicted_price": 1e9}, 422,
     "predicted_price", False),
    ("batch with a year-9999 trade", "POST", "/predict/batch",
     {"requests": [BUTTERFLY, {**BUTTERFLY, "timestamp": "9999-12-31T23:59:59-12:00"}]}, 422,
     "timestamp", False),
    ("trailing slash on /predict/batch/", "POST", "/predict/batch/",
     {"requests": [BUTTERFLY]}, 404, None, True),
    ("SELL vertical at premium 1e6 (risk/reward)", "POST", "/calculate_risk_reward",
     {**VERTICAL, "action": "SELL", "premium": 1e6}, 422, "premium", True),
    ("SELL butterfly worth less than its premium", "POST", "/calculate_risk_reward",
     {**BUTTERFLY, "action": "SELL", "premium": 60.0}, 422, "premium", False),
    ("outcome closed_at year 1 at +14:00", "POST", "/outcomes",
     {"won": True, "symbol": "SPX", "strategy": "Butterfly", "win_probability": 0.6,
      "closed_at": "0001-01-01T00:00:00+14:00"}, 422, "closed_at", True),
    ("outcome closed_at 9999", "POST", "/outcomes",
     {"won": True, "symbol": "SPX", "strategy": "Butterfly", "win_probability": 0.6,
      "closed_at": "9999-12-31T23:59:59-12:00"}, 422, "closed_at", False),
    ("watchlist expiry 9999", "POST", "/watchlist",
     {**BUTTERFLY, "expiry": "9999-12-31T00:00:00+00:00"}, 422, "expiry", True),
    ("watchlist expiry a month ahead", "POST", "/watchlist", {**BUTTERFLY, "expiry": SOON}, 422,
     "expiry", False),
    ("signals since year 1 at +14:00", "GET", "/signals",
     {"?since": ["0001-01-01T00:00:00+14:00"]}, 422, "since", False),
]  # fmt: skip


@pytest.fixture()
def handler(aws_resources: LocalResources) -> Any:
    reset_clients()
    monitor_routes._default_deps.cache_clear()
    signals_routes._default_store.cache_clear()
    yield build_handler()
    monitor_routes._default_deps.cache_clear()
    signals_routes._default_store.cache_clear()


def test_hostile_inputs_are_refused_with_the_field_named(handler: Any) -> None:
    rows = [r for r in ROWS if budget() == "full" or r[6]]
    failures: list[str] = []
    for name, method, path, body, expected, field, _quick in rows:
        headers = {"content-type": "application/json", "x-api-key": "k"}
        if isinstance(body, dict) and "?since" in body:  # a query, not a body
            event = apigw_event(method, path, None, headers, {"since": body["?since"]})
        else:
            event = apigw_event(method, path, None if body is None else json.dumps(body), headers)
        resp = handler(event, LambdaContext())
        status = int(resp["statusCode"])
        text = resp.get("body") or ""
        locs = []
        if status == 422:
            locs = [d["loc"] for d in json.loads(text)["detail"]]
        named = field is None or any(field in loc for loc in locs)
        redirect = "location" in {k.lower() for k in (resp.get("headers") or {})}
        held = status == expected and named and not redirect
        observed = f"{status} {locs[0] if locs else text[:60]}"
        record(
            ResilienceRow(
                scenario=f"hostile input: {name}",
                injected=1,
                survived=held,
                records_in=1,
                records_out=1 if held else 0,
                note=f"expected {expected}{' naming ' + field if field else ''}; got {observed}",
            )
        )
        if not held:
            failures.append(f"{name}: expected {expected} ({field}), observed {observed}")
    # nothing of it was stored: the watchlist is still empty
    listed = handler(apigw_event("GET", "/watchlist", None, {"x-api-key": "k"}), LambdaContext())
    assert json.loads(listed["body"])["count"] == 0
    assert not failures, "\n".join(failures)
