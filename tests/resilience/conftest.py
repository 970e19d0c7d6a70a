"""Fault and fuzz suites (issue 8). Each scenario records one row of the resilience table
(magic8_dev.resilience.table) and asserts that nothing was lost. `magic8 resilience` runs
this folder and prints the table; `make test` runs it with the quick budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from magic8.domain.flow import PressureWindow
from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import replay
from magic8.settings import REPO_ROOT
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.resilience.fault_proxy import FaultProxy

SAMPLE_SESSION = REPO_ROOT / "layers" / "shared" / "magic8_dev" / "data" / "sessions" / "sample"


@pytest.fixture()
def fault_proxy(moto_server: EmbeddedAws) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.endpoint_url, seed=11).start()
    yield proxy
    proxy.stop()


def sample_day_windows(days: int = 1) -> list[PressureWindow]:
    """Pressure windows of the first `days` days of the shipped sample session."""
    windows: list[PressureWindow] = []
    ingest = FlowIngest(on_windows=windows.extend)
    day_dirs = sorted(p for p in SAMPLE_SESSION.iterdir() if p.name.startswith("day-"))[:days]
    replay([Path(d) for d in day_dirs], ingest)
    return windows


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis-generated items do not inherit the module's pytestmark: put every item
    of a resilience module in its module's xdist group, so a module's row test runs in the
    process that ran its cases."""
    for item in items:
        path = str(item.fspath)
        if "/tests/resilience/test_" in path and not list(item.iter_markers("xdist_group")):
            name = path.rsplit("/test_", 1)[1].removesuffix(".py")
            item.add_marker(pytest.mark.xdist_group(f"resilience-{name}"))
