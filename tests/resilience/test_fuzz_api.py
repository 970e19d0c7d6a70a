"""Schemathesis over the full OpenAPI of the predict API: every operation, zero 5xx.

Full budget: 150 generated cases per operation (over 2,000 in all); quick budget (make
test): 3 per operation. The row counts cases sent and cases answered below 500."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from functions.predict.app import create_app
from functions.predict.settings import ApiSettings
from magic8_dev.resilience.table import ROWS_ENV, ResilienceRow, budget, record
from tests.integration.test_api_schemathesis import seeded  # noqa: F401  (shared fixture)

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-fuzz_api")]

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ApiSettings()))
EXAMPLES = 150 if budget() == "full" else 3
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_row() -> Iterator[Counter[str]]:
    """Records the module's row after its last case, in the process that ran the cases."""
    yield CASES
    operations = sum(1 for k in CASES if k.startswith("op:"))
    row = record(
        ResilienceRow(
            scenario="schemathesis over the full OpenAPI (every operation)",
            injected=CASES["sent"],
            survived=CASES["sent"] == CASES["below_500"],
            records_in=CASES["sent"],
            records_out=CASES["below_500"],
            note=f"{EXAMPLES} max examples per operation; {operations} method/path pairs",
        )
    )
    assert row.nothing_lost
    if os.environ.get(ROWS_ENV) and budget() == "full":
        assert CASES["sent"] >= 2000


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.usefixtures("seeded")
def test_fuzz_no_server_errors(case: schemathesis.Case, fuzz_row: Counter[str]) -> None:
    CASES["sent"] += 1
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    CASES["below_500"] += 1
    CASES[f"op:{case.method} {case.path}"] += 1
