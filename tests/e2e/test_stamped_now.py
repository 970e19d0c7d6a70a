"""`make run` looks live: right after the stack is healthy, GET /signals with no parameters
lists IFD signals stamped within the last hour (the replay's last close lands on now;
gateway_component.live_shift). The whole `make run` component set, on a free port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from magic8_dev.local.moto_server import free_port
from magic8_dev.local.runner import COMPONENTS, LocalStack
from tests.e2e.stacks import running_stack
from tests.progress import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack")]

KEY = "e2e-key"
# the acceptance's own budget (printed, not asserted: the wait below fails on no progress)
ACCEPTANCE_S = 90.0


@pytest.fixture()
def stack() -> Iterator[LocalStack]:
    # make run's defaults: no replay-days / replay-from override
    unset = ("MAGIC8_REPLAY_DAYS", "MAGIC8_REPLAY_FROM_UTC")
    with running_stack(
        unset=unset, api_port=free_port(), api_key=KEY, components=COMPONENTS
    ) as local:
        yield local


def _replayed_twice(stack: LocalStack) -> bool:
    gateway = next((c for c in stack.components if getattr(c, "name", "") == "gateway"), None)
    session = getattr(gateway, "session", None)
    if gateway is None or session is None:
        return False
    return int(session.loops) >= 2 and int(gateway.kinesis_lag()) == 0


def _stamp(signal: dict[str, Any]) -> datetime:
    raw = signal.get("window_end") or signal.get("window_start")
    assert raw, signal
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))


@pytest.mark.timeout(600)
def test_signals_right_after_make_run_are_stamped_within_the_last_hour(
    stack: LocalStack,
) -> None:
    assert stack.ctx is not None
    url = stack.ctx.facts["api_url"]
    with httpx.Client(base_url=url, timeout=30, headers={"x-api-key": KEY}) as http:
        assert http.get("/health").status_code == 200
        healthy = time.monotonic()
        found: list[dict[str, Any]] = []

        def recent() -> bool:
            resp = http.get("/signals")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            items = body if isinstance(body, list) else body.get("signals", [])
            now = datetime.now(UTC)
            found[:] = [s for s in items if now - timedelta(hours=1) <= _stamp(s) <= now]
            if not found and _replayed_twice(stack):
                # every window was sent and read at least once: waiting longer cannot help
                # (CI once waited the whole timeout for signals stamped the evening before)
                stamps = sorted(_stamp(s) for s in items)[-3:]
                pytest.fail(
                    f"the replay looped twice and no signal is stamped within the hour before"
                    f" {now:%Y-%m-%d %H:%M} UTC; the newest: {stamps}\n"
                    + "\n".join(stack.status_lines())
                )
            return bool(found)

        def progress() -> object:
            return stack.ctx.counters["ifd_polled"]() if stack.ctx else 0

        waited = wait_for(
            recent,
            progress,
            "a signal stamped within the last hour",
            poll_s=2.0,
            describe=lambda: "\n".join(stack.status_lines()),
        )
    elapsed = time.monotonic() - healthy
    newest = max(_stamp(s) for s in found)
    print(
        f"first signal stamped within the last hour {elapsed:.0f} s after healthy"
        f" (acceptance: {ACCEPTANCE_S:.0f} s; waited {waited:.0f} s); newest stamped"
        f" {(datetime.now(UTC) - newest).total_seconds() / 60:.0f} min ago"
    )
    assert all(_stamp(s) <= datetime.now(UTC) for s in found)  # never in the future
