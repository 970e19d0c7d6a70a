"""Each function's Powertools Metrics instance keeps its own metric set."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from aws_lambda_powertools.metrics import MetricUnit

from magic8.observability import get_metrics


def test_one_functions_flush_does_not_take_anothers_metrics() -> None:
    predict, monitor = get_metrics("predict"), get_metrics("monitor")
    predict.add_metric(name="Predictions", unit=MetricUnit.Count, value=3)
    out = io.StringIO()
    with redirect_stdout(out):
        monitor.flush_metrics(raise_on_empty_metrics=False)  # nothing of its own
        predict.flush_metrics(raise_on_empty_metrics=True)  # still has its metric
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert [line["Predictions"] for line in lines] == [[3.0]]
