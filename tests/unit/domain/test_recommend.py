"""The recommendation rule: weights renormalise over the sources used; EXECUTE needs both
thresholds; sources that are off or fail are left out and named."""

from __future__ import annotations

import pytest

from magic8.domain.recommend import (
    RecommendConfig,
    SourceScore,
    combine,
    magic8_score,
    recommend,
)
from tests.factories import trade


class Fixed:
    def __init__(self, name: str, score: SourceScore | None) -> None:
        self.name = name
        self._score = score

    def score(self, trade: object) -> SourceScore:
        if self._score is None:
            raise TimeoutError("timed out")
        return self._score


def test_all_sources_weighted() -> None:
    rec = combine(
        {
            "magic8": SourceScore(0.9, 0.9),
            "MLOptionTrading": SourceScore(0.8, 0.85),
            "Magic8-Companion": SourceScore(0.6, 0.8),
        },
        {},
        RecommendConfig(),
    )
    assert rec.final_score == pytest.approx(0.5 * 0.9 + 0.3 * 0.8 + 0.2 * 0.6, abs=1e-9)
    assert rec.confidence == pytest.approx(0.5 * 0.9 + 0.3 * 0.85 + 0.2 * 0.8, abs=1e-9)
    assert rec.decision == "EXECUTE"


def test_weights_renormalise_and_failures_are_named() -> None:
    t = trade()
    config = RecommendConfig(
        enabled={"magic8": True, "MLOptionTrading": False, "Magic8-Companion": True}
    )
    rec = recommend(
        t,
        magic8_score(0.75),
        [Fixed("MLOptionTrading", SourceScore(0.1, 0.9)), Fixed("Magic8-Companion", None)],
        config,
    )
    assert rec.sources_used == ["magic8"]
    assert rec.weights_used == {"magic8": 1.0}
    assert rec.left_out == {"MLOptionTrading": "off", "Magic8-Companion": "TimeoutError: timed out"}
    assert rec.final_score == pytest.approx(0.75, abs=1e-9)
    # confidence max(p, 1 - p) = 0.75 < 0.8: SKIP, and the reason says which threshold
    assert rec.decision == "SKIP" and "confidence" in rec.reason


def test_below_min_win_probability_is_skip() -> None:
    rec = combine({"magic8": SourceScore(0.65, 0.95)}, {}, RecommendConfig())
    assert rec.decision == "SKIP" and "final_score" in rec.reason


def test_no_source_is_skip() -> None:
    rec = combine({}, {"magic8": "off"}, RecommendConfig())
    assert rec.decision == "SKIP" and rec.final_score is None and rec.reason == "no source answered"
