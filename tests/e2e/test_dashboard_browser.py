"""The dashboard in a real headless Chromium against a real local stack.

Starts magic8_dev.local.runner.LocalStack (moto server, gateway replay -> Kinesis -> ifd handler,
monitor timer, API front, dashboard) in demo mode on free ports, waits until the stack has
stored at least one IFD signal and one confidence point from a monitor sweep, loads the
dashboard and asserts that IFD signal markers and confidence lines render. Saves a
screenshot to tests/e2e/output/dashboard.png (set MAGIC8_SCREENSHOT to write it elsewhere, e.g.
bench/results/dashboard.png, the one the README shows).

The second test proves the assertion bites: against a stack that produces no signals, the
same helper finds zero markers and raises.

Chromium is Debian's `chromium` package (CI's .ci/run installs it); it is driven by the
Python playwright package with executable_path, never `playwright install`. A missing
browser fails the test, it does not skip it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from magic8.adapters.aws import resource
from magic8.settings import AwsSettings
from magic8_dev.local.moto_server import free_port
from magic8_dev.local.runner import COMPONENTS, LocalStack
from tests.e2e import stacks
from tests.progress import wait_for

pytestmark = pytest.mark.xdist_group("e2e")

DASHBOARD = "magic8_dev.local.dashboard_component:DashboardComponent"
SCREENSHOT = Path(
    os.environ.get("MAGIC8_SCREENSHOT", str(Path(__file__).parent / "output" / "dashboard.png"))
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# How long the demo stack may take to produce its first IFD signal and its first sweep.


def chromium_path() -> str:
    """Debian's chromium; a missing browser is a failure (CI installs it), never a skip."""
    path = os.environ.get("MAGIC8_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            f"headless Chromium not found at {path}: install Debian's `chromium` package"
            " (apt-get install -y chromium) or set MAGIC8_CHROMIUM"
        )
    return path


def with_dashboard(components: tuple[str, ...]) -> tuple[str, ...]:
    return components if DASHBOARD in components else (*components, DASHBOARD)


@contextmanager
def running_stack(components: tuple[str, ...]) -> Iterator[LocalStack]:
    """A LocalStack on free ports; the process environment is restored afterwards."""
    with stacks.running_stack(
        {"MAGIC8_DASHBOARD_PORT": str(free_port())},
        api_port=free_port(),
        demo=True,
        components=with_dashboard(components),
    ) as stack:
        yield stack


def table_has_items(table_name: str) -> bool:
    page = resource("dynamodb").Table(table_name).scan(Limit=25, Select="COUNT")
    return int(page.get("Count", 0)) > 0 or "LastEvaluatedKey" in page


def wait_until(check: Callable[[], bool], what: str, stack: LocalStack) -> float:
    """Seconds until check() held; fails (with the stack's status lines) only when the
    stack stops making progress, never on a wall-clock budget."""

    def status() -> str:
        return "\n".join(stack.status_lines())

    return wait_for(check, status, what, describe=status)


def rendered_count(page: Any, testid: str, timeout_s: float) -> int:
    """How many [data-testid=testid] elements the page shows, waiting up to timeout_s for one."""
    locator = page.locator(f'[data-testid="{testid}"]')
    deadline = time.monotonic() + timeout_s
    count = locator.count()
    while count == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        count = locator.count()
    return int(count)


def assert_chart_has_markers(page: Any, timeout_s: float = 20.0) -> int:
    """The assertion this module is about: the NQ chart shows IFD signal markers."""
    count = rendered_count(page, "signal-marker", timeout_s)
    assert count > 0, "the NQ chart shows no IFD signal markers"
    return count


def assert_nq_chart_has_candles_and_signals(page: Any, timeout_s: float = 120.0) -> int:
    """The NQ price chart: 5-minute candles from /nq/bars with IFD signal markers on them,
    each marker's bias bullish or bearish (magic8.domain.bias through /signals)."""
    candles = rendered_count(page, "nq-candle", timeout_s)
    assert candles > 0, "the NQ chart shows no candles"
    markers = rendered_count(page, "nq-signal-marker", timeout_s)
    assert markers > 0, "the NQ chart shows no IFD signal markers"
    biases = set(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('[data-testid="nq-signal-marker"]'),
                (e) => e.getAttribute("data-bias"))"""
        )
    )
    assert biases and biases <= {"bullish", "bearish"}, biases
    title = page.locator('[data-testid="nq-signal-marker"]').first.locator("title").text_content()
    assert title is not None and "confidence" in title
    return markers


def assert_confidence_lines(page: Any, timeout_s: float = 20.0) -> int:
    count = rendered_count(page, "confidence-line", timeout_s)
    assert count > 0, "the dashboard shows no confidence lines"
    return count


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def dashboard_page(browser: Any, url: str) -> Iterator[tuple[Any, list[str]]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.goto(url, wait_until="load")
    page.wait_for_selector("body[data-loaded='1']", timeout=20_000)
    try:
        yield page, errors
    finally:
        page.close()


def richer_picture(page: Any, timeout_s: float) -> None:
    """Best effort for the screenshot: a few more signals and a second sweep (no assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        markers = page.locator('[data-testid="signal-marker"]').count()
        points = page.evaluate(
            """() => Math.max(0, ...Array.from(
                document.querySelectorAll('[data-testid="confidence-line"]'),
                (e) => Number(e.getAttribute("data-points") || 0)))"""
        )
        nq = page.locator('[data-testid="nq-signal-marker"]').count()
        if markers >= 5 and points >= 2 and nq >= 2:
            return
        page.wait_for_timeout(500)


@pytest.mark.timeout(420)
def test_dashboard_renders_signal_markers_and_confidence_lines(browser: Any) -> None:
    t0 = time.monotonic()
    with running_stack(COMPONENTS) as stack:
        assert stack.ctx is not None
        started = time.monotonic() - t0
        settings = AwsSettings()
        # The page is opened first and never reloaded: what it shows arrives live
        # (WebSocket pushes, /signals polling as the fallback).
        with dashboard_page(browser, stack.ctx.facts["dashboard_url"]) as (page, errors):
            first_signal = wait_until(
                lambda: table_has_items(settings.signals_table),
                "IFD signal",
                stack,
            )
            first_sweep = wait_until(
                lambda: table_has_items(settings.history_table),
                "confidence history (monitor sweep)",
                stack,
            )
            print(
                f"stack started in {started:.1f} s; first IFD signal stored after"
                f" {first_signal:.1f} s more; first sweep point {first_sweep:.1f} s later"
            )
            markers = assert_chart_has_markers(page, timeout_s=30)
            lines = assert_confidence_lines(page, timeout_s=40)
            assert rendered_count(page, "signal-row", 5) >= 1
            assert rendered_count(page, "threshold-line", 5) >= 1
            # confidence on hover: each marker carries a <title> with its confidence
            marker = page.locator('[data-testid="signal-marker"]').first
            title = marker.locator("title").text_content()
            assert title is not None and "confidence" in title
            conf = marker.get_attribute("data-confidence")
            assert conf is not None and 0.0 <= float(conf) <= 1.0
            assert marker.get_attribute("data-direction") in ("LONG", "SHORT", "NEUTRAL")
            # gateway health panel is filled from /health/detailed through the /api proxy
            health = page.locator('[data-testid="health-panel"]').inner_text()
            assert "Health unavailable" not in health and "Loading" not in health
            if "ws_url" in stack.ctx.facts:
                page.wait_for_selector('[data-testid="live-status"][data-mode="websocket"]')
            # the NQ price chart (issue 13): candles from the replayed future, signals on them
            nq_markers = assert_nq_chart_has_candles_and_signals(page)
            # the gateway's spend vs budget, from its heartbeat through /health/detailed
            assert rendered_count(page, "spend-streaming", 20) == 1
            spend = page.locator('[data-testid="spend-panel"]').inner_text()
            assert "of $25.00" in spend and "of $20.00" in spend, spend
            richer_picture(page, timeout_s=15)
            markers = max(markers, rendered_count(page, "signal-marker", 0))
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert not errors, errors
    assert markers > 0 and lines > 0 and nq_markers > 0
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.timeout(120)
def test_marker_assertion_fails_when_the_stack_has_no_signals(browser: Any) -> None:
    # API front only: no gateway replay, no ifd poller, no monitor -> no signals, no sweeps.
    quiet = tuple(c for c in COMPONENTS if "seed_component" in c or "api_front" in c)
    with running_stack(quiet) as stack:
        assert stack.ctx is not None
        with dashboard_page(browser, stack.ctx.facts["dashboard_url"]) as (page, errors):
            assert page.locator('[data-testid="signal-marker"]').count() == 0
            with pytest.raises(AssertionError, match="no IFD signal markers"):
                assert_chart_has_markers(page, timeout_s=2.0)
            chart_text = page.locator('[data-testid="flow-chart"]').text_content() or ""
            assert "No IFD signals yet" in chart_text
            page.wait_for_selector("#nq-panel[data-loaded='1']", timeout=20_000)
            assert page.locator('[data-testid="nq-candle"]').count() == 0
            with pytest.raises(AssertionError, match="no candles"):
                assert_nq_chart_has_candles_and_signals(page, timeout_s=2.0)
            nq_text = page.locator('[data-testid="nq-chart"]').text_content() or ""
            assert "No NQ bars yet" in nq_text
            assert not errors, errors
