"""Each IFD signal reaches WebSocket clients subscribed to NQ, and nobody else."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from magic8_dev.local.runner import LocalStack
from tests.e2e.stacks import running_stack
from tests.e2e.test_websocket_push import _frames, _subscribe
from tests.integration.test_ifd_handler import episode_session, events, invoke, payloads_of

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-ifd-push")]


@pytest.fixture()
def stack() -> Iterator[LocalStack]:
    with running_stack(
        demo=False, components=("tests.e2e.test_websocket_push:quiet_monitor",)
    ) as local:
        yield local


def test_signals_are_pushed_to_nq_subscribers_only(stack: LocalStack) -> None:
    assert stack.ctx is not None
    url = stack.ctx.facts["ws_url"]
    nq = _subscribe(url, ["NQ"])
    spx = _subscribe(url, ["SPX"])
    try:
        history, today = episode_session(random.Random(6), (20100, 20125, 20150))
        for event in events(payloads_of(history), batch_size=500):
            assert invoke(event)["batchItemFailures"] == []
        for event in events(payloads_of(today), batch_size=100, first_seq=10_000):
            assert invoke(event)["batchItemFailures"] == []
        got = _frames(nq, timeout=5)
        assert got, "NQ subscriber received the signals"
        assert {m["type"] for m in got} == {"ifd_signal"}
        assert all(m["signal"]["confidence"] >= 0.7 for m in got)
        assert {m["signal"]["option_type"] for m in got} == {"C"}
        assert _frames(spx, timeout=1) == []
    finally:
        nq.close()
        spx.close()
