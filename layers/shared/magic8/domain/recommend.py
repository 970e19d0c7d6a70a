"""One recommendation per trade from every enabled predictor.

Sources: magic8's own model and, over HTTP, MLOptionTrading and Magic8-Companion. Each
enabled source that answers gives a score (its win probability, 0..1) and a confidence
(0..1; magic8's is max(p, 1 - p), how sure the model is of its call). A source that is
off is left out; one that is slow, down or whose circuit is open is left out and named
with the reason. The weights of the sources used are renormalised to sum to 1:

    final_score = sum(w_i * score_i) / sum(w_i)      confidence = sum(w_i * conf_i) / sum(w_i)

EXECUTE when final_score >= min_win_probability and confidence >= min_confidence,
else SKIP, with the reason. No source answering is a SKIP that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from magic8.domain.trades import TradeRequest

DEFAULT_WEIGHTS: dict[str, float] = {
    "magic8": 0.5,
    "MLOptionTrading": 0.3,
    "Magic8-Companion": 0.2,
}
MIN_WIN_PROBABILITY = 0.7
MIN_CONFIDENCE = 0.8


@dataclass(frozen=True)
class SourceScore:
    score: float
    confidence: float


class ScoreSource(Protocol):
    name: str

    def score(self, trade: TradeRequest) -> SourceScore:
        """Raises on timeout, error or an open circuit (the source is then left out)."""
        ...


@dataclass(frozen=True)
class RecommendConfig:
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(DEFAULT_WEIGHTS, True))
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    min_win_probability: float = MIN_WIN_PROBABILITY
    min_confidence: float = MIN_CONFIDENCE


@dataclass
class Recommendation:
    decision: str  # EXECUTE | SKIP
    reason: str
    final_score: float | None
    confidence: float | None
    sources_used: list[str]
    scores: dict[str, dict[str, float]]
    weights_used: dict[str, float]
    left_out: dict[str, str]
    thresholds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combine(
    answers: dict[str, SourceScore], left_out: dict[str, str], config: RecommendConfig
) -> Recommendation:
    """The decision from the sources that answered (`answers`) and why the others did not."""
    thresholds = {
        "min_win_probability": config.min_win_probability,
        "min_confidence": config.min_confidence,
    }
    weights = {n: max(0.0, config.weights.get(n, 0.0)) for n in answers}
    used = [n for n in answers if weights[n] > 0]
    for n in answers:
        if weights[n] <= 0:
            left_out[n] = "weight 0"
    total = sum(weights[n] for n in used)
    scores = {
        n: {"score": round(a.score, 6), "confidence": round(a.confidence, 6)}
        for n, a in answers.items()
    }
    if not used or total <= 0:
        return Recommendation(
            "SKIP", "no source answered", None, None, [], scores, {}, left_out, thresholds
        )
    norm = {n: weights[n] / total for n in used}
    final = sum(norm[n] * answers[n].score for n in used)
    conf = sum(norm[n] * answers[n].confidence for n in used)
    failing = []
    if final < config.min_win_probability:
        failing.append(f"final_score {final:.3f} < {config.min_win_probability}")
    if conf < config.min_confidence:
        failing.append(f"confidence {conf:.3f} < {config.min_confidence}")
    decision = "SKIP" if failing else "EXECUTE"
    reason = (
        "; ".join(failing)
        if failing
        else f"final_score {final:.3f} >= {config.min_win_probability} and confidence "
        f"{conf:.3f} >= {config.min_confidence}"
    )
    return Recommendation(
        decision,
        reason,
        round(final, 6),
        round(conf, 6),
        used,
        scores,
        {n: round(w, 6) for n, w in norm.items()},
        left_out,
        thresholds,
    )


def magic8_score(win_probability: float) -> SourceScore:
    return SourceScore(win_probability, max(win_probability, 1.0 - win_probability))


def recommend(
    trade: TradeRequest,
    magic8: SourceScore | None,
    externals: Sequence[ScoreSource],
    config: RecommendConfig,
) -> Recommendation:
    """Ask every enabled external source (each guards itself: timeout, retries, circuit)
    and combine with magic8's own answer."""
    answers: dict[str, SourceScore] = {}
    left_out: dict[str, str] = {}
    if not config.enabled.get("magic8", True):
        left_out["magic8"] = "off"
    elif magic8 is not None:
        answers["magic8"] = magic8
    for source in externals:
        if not config.enabled.get(source.name, False):
            left_out[source.name] = "off"
            continue
        try:
            answers[source.name] = source.score(trade)
        except Exception as exc:  # slow, down, circuit open, bad answer: left out, named
            left_out[source.name] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return combine(answers, left_out, config)
