"""The history message codec: what the API hands to the queue is what λ history writes."""

from __future__ import annotations

import math

import pytest

from magic8.adapters import history_queue
from magic8.domain.confidence import ConfidencePoint


def _point(i: int, features: dict[str, float] | None) -> ConfidencePoint:
    return ConfidencePoint(
        symbol="SPX",
        strategy="Iron Condor",
        ts_ms=1_790_000_000_000 + i,
        win_probability=0.61,
        prediction="WIN",
        threshold=0.55,
        model_type="symbol_strategy",
        model_version="v1",
        data_source="seed",
        count=2,
        min_probability=0.6,
        max_probability=0.62,
        trade=f"SELL {i}/{i + 5}/{i + 40}/{i + 45}",
        features=features,
    )


def test_points_round_trip_with_features_and_a_missing_value() -> None:
    feats = {"a": 1.5, "b": math.nan, "c": -2.0}
    points = [_point(i, dict(feats)) for i in range(3)] + [_point(9, None)]
    (body,) = history_queue.encode(points)
    back = history_queue.decode(body)
    assert [p.trade for p in back] == [p.trade for p in points]
    assert back[0].features is not None and back[0].features["a"] == 1.5
    assert math.isnan(back[0].features["b"] or 0.0)
    assert back[3].features is None
    assert back[0].to_dict(include_features=True)["features"] == {"a": 1.5, "b": None, "c": -2.0}
    assert "features" not in back[0].to_dict()
    assert back[1].count == 2 and back[1].min_probability == 0.6


def test_an_oversized_batch_is_split_into_messages_under_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history_queue, "MAX_MESSAGE_BYTES", 2_000)
    points = [_point(i, {f"f{k}": float(k) for k in range(20)}) for i in range(12)]
    bodies = history_queue.encode(points)
    assert len(bodies) > 1 and all(len(b) <= 2_000 for b in bodies)
    back = [p for b in bodies for p in history_queue.decode(b)]
    assert [p.ts_ms for p in back] == [p.ts_ms for p in points]


def test_a_malformed_message_is_a_value_error() -> None:
    for body in ("{not json", '{"v": 2, "points": []}', '{"v": 1, "points": [{"sy": "SPX"}]}'):
        with pytest.raises(ValueError):
            history_queue.decode(body)


def test_array_rows_travel_packed_and_come_back_as_named_values() -> None:
    import numpy as np

    names = ("a", "b", "c")
    rows = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    points = [_point(i, None) for i in range(2)]
    for p, row in zip(points, rows, strict=True):
        p.feature_row, p.feature_names = row, names
    (body,) = history_queue.encode(points)
    back = history_queue.decode(body)
    assert back[1].features == {"a": 4.0, "b": 5.0, "c": 6.0}
    assert back[0].to_dict(include_features=True)["features"] == {"a": 1.0, "b": None, "c": 3.0}
    assert points[0].to_dict(include_features=True)["features"] == {"a": 1.0, "b": None, "c": 3.0}
