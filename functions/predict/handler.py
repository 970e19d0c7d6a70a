"""λ predict: API Gateway (REST, proxy) -> Mangum -> the FastAPI app (functions.predict.app).

numpy and the feature module load at import (Lambda's init phase, full CPU); settings,
app and clients are built on the first invocation (functions.predict.deps) and reused
while the container is warm.
"""

from __future__ import annotations

from typing import Any

import magic8.domain.features  # noqa: F401  (numpy + the feature tables, at init)
from functions.predict.deps import build_handler
from magic8.wiring import Lazy

_handler = Lazy(build_handler)
reset = _handler.reset  # tests that change the environment


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handler()(event, context)
