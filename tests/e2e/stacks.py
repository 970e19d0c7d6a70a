"""One way to run a LocalStack in an e2e test: clean process state before, the stack
stopped and the environment and every cached client/handler restored after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from functions.ifd import handler as ifd_handler
from functions.predict import handler as predict_handler
from functions.predict import monitor_routes, signals_routes
from magic8.adapters.aws import reset_clients
from magic8_dev.local.runner import LocalStack


def reset_process_state() -> None:
    """boto3 clients and handler wiring cached for another endpoint must not be reused."""
    reset_clients()
    predict_handler.reset()
    ifd_handler.reset()
    # /outcomes and /accuracy keep their stores (and clients) in a cached MonitorDeps
    monitor_routes._default_deps.cache_clear()
    signals_routes._default_store.cache_clear()


@contextmanager
def running_stack(
    env: dict[str, str] | None = None, unset: tuple[str, ...] = (), **stack_args: Any
) -> Iterator[LocalStack]:
    """`env` set and `unset` removed for the stack's lifetime."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    for name in unset:
        os.environ.pop(name, None)
    reset_process_state()
    stack = LocalStack(**stack_args)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_process_state()


def api_url(stack: LocalStack) -> str:
    assert stack.ctx is not None
    return str(stack.ctx.facts["api_url"])
