"""Work an invocation leaves for after its response (the confidence-history hand-over).

A synchronous Lambda freezes its environment once the handler returns, so a background
thread started by a request does not run until the next one. Lambda waits, however, for
every *extension* of the environment to ask for its next event before it freezes, and it
sends the response to the caller as soon as the runtime posts it. An internal extension (a
thread of the runtime's own process that registers with the Extensions API at init) can
therefore finish an invocation's leftover work after the client has its answer, inside
the function's timeout ("Running code after returning a response from an AWS Lambda
function", AWS Compute Blog; Extensions API: POST /2020-01-01/extension/register with
events ["INVOKE"], then GET /2020-01-01/extension/event/next per invocation).

Three hosts, one interface (`defer(task)` during the invocation, `invocation_done()` at
its end, from the handler's wrapper):
- in Lambda (AWS_LAMBDA_RUNTIME_API set): `LambdaExtension` runs the tasks on its thread
  after the response, then asks for the next event;
- under a host that sends the response itself (the local API front): `hosted()` makes
  the host run them with `run_pending()` right after writing the response;
- otherwise (a test or tool calling the handler directly): at the end of the invocation,
  before the handler returns, as if there were no extension.

A failed task is logged and counted, never raised: the answer has already gone.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Task = Callable[[], object]
EXTENSION_NAME = "magic8-after-response"
EXTENSIONS_API = "2020-01-01/extension"
# an INVOKE whose handler never reported back (it died before its wrapper's finally) is
# not waited for longer than this: Lambda's own function timeout ends it anyway
ORPHAN_WAIT_S = 900.0


class AfterResponse:
    """Collects an invocation's deferred tasks and runs them when the host allows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Task] = []
        self._hosted = False
        self.ran = 0
        self.failed = 0
        self.by_task: dict[str, int] = {}  # runs per task label (`label` attribute)

    @property
    def mode(self) -> str:
        return "host" if self._hosted else "inline"

    def hosted(self, on: bool = True) -> AfterResponse:
        """The caller sends responses itself and calls run_pending() after each (on=False:
        the host has gone; what it left runs now, and later work inline again)."""
        self._hosted = on
        if not on:
            self.run_pending()
        return self

    def defer(self, task: Task) -> None:
        with self._lock:
            self._pending.append(task)

    def take(self) -> list[Task]:
        with self._lock:
            tasks, self._pending = self._pending, []
        return tasks

    def invocation_done(self) -> None:
        """Called by the handler's wrapper when the invocation returns (always)."""
        if not self._hosted:
            self.run(self.take())

    def run_pending(self) -> int:
        return self.run(self.take())

    def run(self, tasks: list[Task]) -> int:
        for task in tasks:
            try:
                task()
                self.ran += 1
                label = str(getattr(task, "label", "other"))
                self.by_task[label] = self.by_task.get(label, 0) + 1
            except Exception:  # the answer is out: log, count, go on with the next
                self.failed += 1
                log.exception("after-response task failed")
        return len(tasks)

    def stats(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "ran": self.ran,
            "failed": self.failed,
            "by_task": dict(self.by_task),
        }


class LambdaExtension(AfterResponse):
    """The internal extension: registered at init, one thread that receives each INVOKE,
    waits for its handler's tasks (handed over by invocation_done), runs them and only
    then asks for the next event, so Lambda keeps the environment running until they
    are done while the caller already has the response."""

    def __init__(
        self,
        runtime_api: str,
        name: str = EXTENSION_NAME,
        opener: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.alive = True
        self.base = f"http://{runtime_api}/{EXTENSIONS_API}"
        self._open = opener or urllib.request.urlopen
        self._handed: queue.Queue[list[Task]] = queue.Queue()
        self.extension_id = self._register(name)
        self.events = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        return "lambda-extension" if self.alive else "inline"

    def _register(self, name: str) -> str:
        req = urllib.request.Request(
            f"{self.base}/register",
            data=json.dumps({"events": ["INVOKE"]}).encode(),
            headers={"Lambda-Extension-Name": name, "Content-Type": "application/json"},
            method="POST",
        )
        with self._open(req, timeout=5) as resp:
            ext_id = resp.headers.get("Lambda-Extension-Identifier")
        if not ext_id:
            raise RuntimeError("Extensions API register answered without an identifier")
        return str(ext_id)

    def _next_event(self) -> dict[str, object]:
        req = urllib.request.Request(
            f"{self.base}/event/next", headers={"Lambda-Extension-Identifier": self.extension_id}
        )
        with self._open(req, timeout=None) as resp:
            return dict(json.loads(resp.read() or b"{}"))

    def _loop(self) -> None:
        while True:
            try:
                event = self._next_event()  # blocks while the environment is frozen
            except Exception:
                log.exception("extension: event/next failed; after-response work runs inline")
                self.alive = False
                self.run(self.take_handed())
                return
            if event.get("eventType") == "SHUTDOWN":
                self.alive = False
                return
            self.events += 1
            try:
                tasks = self._handed.get(timeout=ORPHAN_WAIT_S)
            except queue.Empty:
                continue
            self.run(tasks)

    def take_handed(self) -> list[Task]:
        tasks: list[Task] = []
        while True:
            try:
                tasks.extend(self._handed.get_nowait())
            except queue.Empty:
                return tasks

    def invocation_done(self) -> None:
        # the tasks go to the extension thread, which runs them after the response
        # (every invocation hands over, even with no task: the thread waits for it)
        if self.alive:
            self._handed.put(self.take())
        else:
            self.run(self.take())


def for_environment(environ: dict[str, str] | None = None) -> AfterResponse:
    """The extension in Lambda (registered now: call it during init), else the plain
    collector (inline unless a host calls hosted())."""
    env = os.environ if environ is None else environ
    api = env.get("AWS_LAMBDA_RUNTIME_API")
    if api and env.get("AWS_LAMBDA_FUNCTION_NAME"):
        try:
            return LambdaExtension(api)
        except Exception:
            log.exception("internal extension not registered: after-response work inline")
    return AfterResponse()


class PostResponseGc:
    """Garbage collection after the response instead of during a request.

    A warm container accumulates long-lived objects (the caches hold up to tens of
    thousands of answers and feature rows), and CPython's automatic full collection walks
    all of them: measured, 300 batches of 100 new trades met 6 full collections of up to
    66 ms each, inside requests. After each response this collects the young generations
    (a request's cyclic garbage) and moves what survives out of the collector's
    generations (gc.freeze): the collections that still happen during a request walk only
    what the last request allocated. Frozen objects are still freed by reference counting;
    only cycles among them would wait, so every `full_every_s` the permanent generation
    is collected whole, also after a response. Only where work runs after the response
    (Lambda's extension, the local front): inline it would be on the client's path."""

    label = "gc"

    def __init__(
        self, full_every_s: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self._last_full = clock()
        self.young = 0
        self.full = 0

    def __call__(self) -> None:
        if self.clock() - self._last_full >= self.full_every_s:
            gc.unfreeze()
            gc.collect()
            self._last_full = self.clock()
            self.full += 1
        else:
            gc.collect(1)
            self.young += 1
        gc.freeze()

    def stats(self) -> dict[str, int]:
        return {"young_collections": self.young, "full_collections": self.full}
