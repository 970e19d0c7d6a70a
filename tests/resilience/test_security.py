"""Security: every API route but /health needs the key; configured secrets never reach logs."""

from __future__ import annotations

import io
import json
import logging
from contextlib import redirect_stderr, redirect_stdout

import httpx
import pytest

from functions.predict.app import create_app
from functions.predict.settings import ApiSettings
from magic8.settings import AwsSettings
from magic8_dev.local.api_front import ApiFront
from magic8_dev.local.provision import LocalResources
from magic8_dev.ml.seed import seed_market
from magic8_dev.resilience.loadgen import batch_body
from magic8_dev.resilience.table import ResilienceRow, record
from tests.resilience.conftest import SAMPLE_SESSION

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-security")]

API_KEY = "sk-magic8-API-9f3c2e71d0"
DATABENTO_KEY = "db-SECRETdatabento0123456789abcd"


def _routes() -> list[tuple[str, str]]:
    spec = create_app(ApiSettings()).openapi()
    out = []
    for path, ops in spec["paths"].items():
        concrete = path.replace("{symbol}", "SPX").replace("{strategy}", "Butterfly")
        concrete = concrete.replace("{entry_id}", "x").replace("{", "").replace("}", "")
        out += [(method.upper(), concrete) for method in ops]
    return out


def test_every_route_but_health_needs_the_key(aws_resources: LocalResources) -> None:
    front = ApiFront("127.0.0.1", 0, API_KEY).start()
    routes = _routes()
    try:
        with httpx.Client(base_url=front.url, timeout=30) as http:
            refused = {
                (m, p): http.request(m, p, headers={"x-api-key": "wrong"}).status_code
                for m, p in routes
            }
            health = http.get("/health").status_code
    finally:
        front.stop()
    protected = {k: v for k, v in refused.items() if k[1] != "/health"}
    row = record(
        ResilienceRow(
            scenario="API routes called with a wrong key (all but /health)",
            injected=len(protected),
            survived=health == 200,
            records_in=len(protected),
            records_out=sum(1 for v in protected.values() if v == 403),
        )
    )
    assert len(protected) >= 12
    assert set(protected.values()) == {403}, protected
    assert health == 200
    assert row.nothing_lost


def test_configured_secrets_never_appear_in_logs(
    aws_resources: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API key travels in every request header, the Databento key in the gateway's
    config; neither may appear in anything the functions or the gateway log."""
    from gateway_host.databento.session import DatabentoConfig, DatabentoSession

    monkeypatch.setenv("MAGIC8_API_KEY", API_KEY)
    monkeypatch.setenv("DATABENTO_API_KEY", DATABENTO_KEY)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    seed_market(AwsSettings())
    captured_out, captured_err = io.StringIO(), io.StringIO()
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with redirect_stdout(captured_out), redirect_stderr(captured_err):
            front = ApiFront("127.0.0.1", 0, API_KEY).start()
            try:
                with httpx.Client(base_url=front.url, timeout=60) as http:
                    ok = http.post(
                        "/predict/batch",
                        content=batch_body(8),
                        headers={"x-api-key": API_KEY, "content-type": "application/json"},
                    )
                    bad = http.post(
                        "/predict/batch",
                        content=b'{"requests": [{"symbol": "' + API_KEY.encode() + b'"}]}',
                        headers={"x-api-key": API_KEY, "content-type": "application/json"},
                    )
            finally:
                front.stop()
            config = DatabentoConfig(
                api_key=DATABENTO_KEY,
                mode="replay",
                replay_paths=(str(sorted(SAMPLE_SESSION.glob("day-*"))[0]),),
            )
            logging.getLogger("magic8").info("gateway config %s / %r", config, config)
            session = DatabentoSession(config, producer=None)
            logging.getLogger("magic8").info("gateway health %s", json.dumps(session.health()))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logs = captured_out.getvalue() + captured_err.getvalue() + records.getvalue()
    leaks = [s for s in (API_KEY, DATABENTO_KEY) if s in logs]
    row = record(
        ResilienceRow(
            scenario="secrets in captured logs (API key, Databento key)",
            injected=2,
            survived=not leaks,
            records_in=2,
            records_out=2 - len(leaks),
            note=f"{len(logs):,} characters of logs scanned",
        )
    )
    assert ok.status_code == 200 and bad.status_code == 422
    assert len(logs) > 500, "the run produced logs to scan"
    assert not leaks, f"secret values found in logs: {len(leaks)}"
    assert row.nothing_lost
