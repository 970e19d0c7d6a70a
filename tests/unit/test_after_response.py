"""magic8.after_response: an invocation's deferred work runs after its response.

The Lambda form is tested against a stand-in of Lambda's Extensions API that speaks its
HTTP protocol (register -> Lambda-Extension-Identifier; event/next blocks until the next
event), so the order Lambda relies on is observable: the extension asks for its next
event (letting the environment freeze) only after the invocation's work is done, and the
handler's return is never held by that work."""

from __future__ import annotations

import gc
import json
import queue
import threading
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from magic8.after_response import (
    EXTENSION_NAME,
    AfterResponse,
    LambdaExtension,
    PostResponseGc,
    for_environment,
)
from tests.fakes.clock import ManualClock


class FakeExtensionsApi:
    """Lambda's Extensions API for one extension (2020-01-01)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.registered: dict[str, Any] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.changed = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                assert self.path == "/2020-01-01/extension/register"
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.registered = {
                    "name": self.headers["Lambda-Extension-Name"],
                    "events": body["events"],
                }
                self._answer(
                    {"functionName": "magic8-predict", "functionVersion": "$LATEST"},
                    {"Lambda-Extension-Identifier": "ext-1"},
                )

            def do_GET(self) -> None:
                assert self.path == "/2020-01-01/extension/event/next"
                assert self.headers["Lambda-Extension-Identifier"] == "ext-1"
                api.note("next")
                self._answer(api.events.get(), {"Lambda-Extension-Event-Identifier": "e"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def note(self, what: str) -> None:
        with self.changed:
            self.log.append(what)
            self.changed.notify_all()

    def wait_for(self, what: str, count: int) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: self.log.count(what) >= count, timeout=10)
        assert ok, f"waited for {count} x {what!r}: {self.log}"


@pytest.fixture()
def api() -> Iterator[FakeExtensionsApi]:
    fake = FakeExtensionsApi()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _invoke(api: FakeExtensionsApi) -> None:
    api.events.put({"eventType": "INVOKE", "requestId": "r", "deadlineMs": 0})


def _shutdown(api: FakeExtensionsApi, ext: LambdaExtension) -> None:
    api.events.put({"eventType": "SHUTDOWN", "shutdownReason": "spindown"})
    ext._thread.join(10)
    assert not ext._thread.is_alive()


def test_the_extension_registers_for_invokes_and_waits_for_the_first_event(
    api: FakeExtensionsApi,
) -> None:
    ext = LambdaExtension(api.address)
    api.wait_for("next", 1)  # init done: Lambda may now send the first invocation
    assert api.registered == {"name": EXTENSION_NAME, "events": ["INVOKE"]}
    assert ext.extension_id == "ext-1" and ext.mode == "lambda-extension"
    _shutdown(api, ext)


def test_work_runs_after_the_handler_returns_and_before_the_next_event(
    api: FakeExtensionsApi,
) -> None:
    ext = LambdaExtension(api.address)
    api.wait_for("next", 1)
    release = threading.Event()
    ran_on: list[str] = []

    def task() -> None:
        release.wait(10)
        ran_on.append(threading.current_thread().name)
        api.note("task")

    _invoke(api)
    ext.defer(task)
    ext.invocation_done()  # the handler's wrapper: returns at once, the task still waits
    assert "task" not in api.log and api.log.count("next") == 1
    release.set()
    api.wait_for("next", 2)
    assert api.log == ["next", "task", "next"]
    assert ran_on == [EXTENSION_NAME] and ext.ran == 1
    # an invocation without work hands over an empty list: the extension moves on
    _invoke(api)
    ext.invocation_done()
    api.wait_for("next", 3)
    _shutdown(api, ext)


def test_a_failing_task_is_counted_and_the_next_still_runs(api: FakeExtensionsApi) -> None:
    ext = LambdaExtension(api.address)
    api.wait_for("next", 1)

    def boom() -> None:
        raise RuntimeError("queue unreachable")

    _invoke(api)
    ext.defer(boom)
    ext.defer(lambda: api.note("task"))
    ext.invocation_done()
    api.wait_for("next", 2)
    assert api.log == ["next", "task", "next"] and (ext.failed, ext.ran) == (1, 1)
    _shutdown(api, ext)


def test_without_the_extensions_api_the_work_runs_inline() -> None:
    after = for_environment(
        {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": "magic8-predict"}
    )
    assert type(after) is AfterResponse and after.mode == "inline"
    assert type(for_environment({})) is AfterResponse


def test_inline_runs_at_the_end_of_the_invocation_and_hosted_waits_for_the_host() -> None:
    done: list[int] = []
    inline = AfterResponse()
    inline.defer(lambda: done.append(1))
    inline.invocation_done()
    assert done == [1]

    hosted = AfterResponse().hosted()
    hosted.defer(lambda: done.append(2))
    hosted.invocation_done()
    assert done == [1] and hosted.mode == "host"
    assert hosted.run_pending() == 1 and done == [1, 2]
    assert hosted.run_pending() == 0


class _Node:
    other: object = None


def test_post_response_gc_collects_young_cycles_freezes_survivors_and_sweeps_frozen_ones() -> None:
    clock = ManualClock(0.0)
    post = PostResponseGc(full_every_s=600.0, clock=clock)
    try:
        young = _Node()
        young.other = young  # a request's cyclic garbage
        young_ref = weakref.ref(young)
        kept = _Node()
        kept.other = kept  # alive at the response: frozen
        kept_ref = weakref.ref(kept)
        del young
        post()
        assert young_ref() is None and gc.get_freeze_count() > 0
        del kept
        gc.collect()  # an automatic full collection no longer walks frozen objects
        assert kept_ref() is not None
        clock.now += 600.0
        post()  # the periodic whole sweep, after a response
        assert kept_ref() is None
        assert post.stats() == {"young_collections": 1, "full_collections": 1}
    finally:
        gc.unfreeze()
