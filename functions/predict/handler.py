"""λ predict: API Gateway (REST, proxy) -> Mangum -> the FastAPI app (functions.predict.app).

numpy, the feature module and boto3 (imported by the adapters deps.py wires) load at
import (Lambda's init phase, full CPU, not billed to a request). In Lambda
(AWS_LAMBDA_FUNCTION_NAME set) settings, app, model, repositories and boto3 clients are
built at import too; elsewhere (tests, the local runtime, tools importing the module) on
the first invocation, since they need the environment a test or the local stack sets
first. Reused while the container is warm.
"""

from __future__ import annotations

import os
from typing import Any

import magic8.domain.features  # noqa: F401  (numpy + the feature tables, at init)
from functions.predict.deps import build_handler
from magic8.after_response import for_environment
from magic8.wiring import Lazy

IN_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
# where the history hand-over runs after the answer: in Lambda the internal extension,
# which must register during init (here, at import)
AFTER_RESPONSE = for_environment()
_handler = Lazy(lambda: build_handler(eager=IN_LAMBDA, after_response=AFTER_RESPONSE))
reset = _handler.reset  # tests that change the environment
if IN_LAMBDA:
    _handler()  # the init phase: clients and model before the first request


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handler()(event, context)


# a host that sends the responses itself (the local API front) runs the work after them
handler.after_response = AFTER_RESPONSE  # type: ignore[attr-defined]
