"""Confidence decay is on for the API's cached answers and off for the monitor's sweeps
(a sweep compares the model's view with the previous sweep's: a cached answer's age must
not look like a move or a crossing)."""

from __future__ import annotations

import pytest

from functions.monitor.settings import MonitorSettings
from functions.predict.settings import ApiSettings
from magic8.domain.decay import DEFAULT_HALF_LIFE_S


def test_decay_is_configurable_for_the_api_and_off_for_the_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ApiSettings().service_config().decay_half_life_s == DEFAULT_HALF_LIFE_S
    monkeypatch.setenv("MAGIC8_DECAY_HALF_LIFE_S", "90")
    assert ApiSettings().service_config().decay_half_life_s == 90.0
    assert MonitorSettings().service_config().decay_half_life_s == 0.0
    # the monitor does not count requests for cache warming either
    assert MonitorSettings().service_config().track_requests == 0
    assert ApiSettings().service_config().track_requests == 1024
