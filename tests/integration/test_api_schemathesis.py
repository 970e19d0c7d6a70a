"""Schemathesis over the predict API's OpenAPI: every operation, generated valid and invalid
inputs, and no answer may be a 5xx. The app runs with the real service (real model, real
feature module, DynamoDB on moto with seeded market snapshots); the service is built on
the first request, after the fixture has pointed boto3 at moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from functions.predict import monitor_routes
from functions.predict.app import create_app
from functions.predict.settings import ApiSettings
from magic8.adapters.aws import reset_clients
from magic8.settings import AwsSettings
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import LocalResources, provision
from magic8_dev.ml.seed import seed_market

pytestmark = pytest.mark.xdist_group("predict_api")

# table names are the embedded-default names whatever the environment says at import
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ApiSettings()))


@pytest.fixture(scope="module")
def seeded(moto_server: EmbeddedAws) -> Iterator[LocalResources]:
    """Fresh tables and seeded snapshots once for the module (seeding takes a while)."""
    with pytest.MonkeyPatch.context() as mp:
        moto_server.reset()
        reset_clients()
        monitor_routes._default_deps.cache_clear()  # stores bound to another test's moto
        resources = provision(AwsSettings())
        for key, value in resources.env().items():
            mp.setenv(key, value)
        mp.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
        seed_market(resources.settings)
        yield resources


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case, seeded: LocalResources) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
