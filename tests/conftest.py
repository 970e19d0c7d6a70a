"""Shared fixtures: one embedded moto server per test session (a real HTTP endpoint)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from magic8.adapters.aws import reset_clients
from magic8.settings import AwsSettings
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import LocalResources, provision


@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws().start()
    reset_clients()
    yield aws
    aws.stop()


@pytest.fixture()
def aws_resources(moto_server: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> LocalResources:
    """Fresh, empty resources for one test (moto reset + provision)."""
    moto_server.reset()
    reset_clients()
    res = provision(AwsSettings())
    for key, value in res.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    return res
