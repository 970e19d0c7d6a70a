"""prediction_id: every answer's handle for POST /outcomes, with no store behind it.

The id carries what an outcome needs of the answer: symbol, strategy, the win probability
and the threshold that were served, and when (plus a random nonce, so two answers never
share an id). `m8p1.SPX.IC.665000.600000.mi3k2a1c.9f2c4e`: version, symbol, strategy code,
probability and threshold in millionths, serve time in epoch ms (base 36), nonce.

Anyone can forge one, but anyone can already post an outcome with an explicit
win_probability, so an id adds convenience, not trust. It is parsed strictly: a malformed
id is a 422 that says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "m8p1"
STRATEGY_CODES: dict[str, str] = {
    "Butterfly": "BF",
    "Iron Condor": "IC",
    "Vertical": "VT",
    "Sonar": "SN",
}
_CODE_TO_STRATEGY = {v: k for k, v in STRATEGY_CODES.items()}
SYMBOLS = frozenset({"SPX", "SPY", "XSP", "NDX", "QQQ", "RUT"})
_SCALE = 1_000_000


@dataclass(frozen=True)
class PredictionRef:
    symbol: str
    strategy: str
    win_probability: float
    threshold: float
    served_at: datetime


class PredictionIdError(ValueError):
    pass


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def encode(
    symbol: str, strategy: str, win_probability: float, threshold: float, served_at: datetime
) -> str:
    return Stamp(served_at).encode(symbol, strategy, win_probability, threshold)


class Stamp:
    """The ids of one batch's answers: the serve time's base-36 part computed once and the
    nonces drawn from one urandom read (a batch of 100 in ~0.1 ms instead of ~0.8 ms)."""

    __slots__ = ("_ms", "_nonces")

    def __init__(self, served_at: datetime, expected: int = 1) -> None:
        self._ms = _b36(max(0, int(served_at.timestamp() * 1000)))
        self._nonces: list[str] = []
        self._refill(expected)

    def _refill(self, n: int) -> None:
        raw = secrets.token_hex(3 * max(1, n))
        self._nonces.extend(raw[i : i + 6] for i in range(0, len(raw), 6))

    def encode(self, symbol: str, strategy: str, win_probability: float, threshold: float) -> str:
        p = min(_SCALE, max(0, round(win_probability * _SCALE)))
        t = min(_SCALE, max(0, round(threshold * _SCALE)))
        if not self._nonces:
            self._refill(16)
        nonce = self._nonces.pop()
        return f"{PREFIX}.{symbol}.{STRATEGY_CODES[strategy]}.{p}.{t}.{self._ms}.{nonce}"


def decode(prediction_id: str) -> PredictionRef:
    parts = prediction_id.strip().split(".")
    if len(parts) != 7 or parts[0] != PREFIX:
        raise PredictionIdError("prediction_id: not an id this service issued")
    _, symbol, code, p, t, ms, _nonce = parts
    if symbol not in SYMBOLS or code not in _CODE_TO_STRATEGY:
        raise PredictionIdError("prediction_id: unknown symbol or strategy")
    try:
        pi, ti, msi = int(p), int(t), int(ms, 36)
    except ValueError as exc:
        raise PredictionIdError("prediction_id: malformed numbers") from exc
    if not (0 <= pi <= _SCALE and 0 <= ti <= _SCALE) or msi > 10**14:
        raise PredictionIdError("prediction_id: numbers out of range")
    return PredictionRef(
        symbol=symbol,
        strategy=_CODE_TO_STRATEGY[code],
        win_probability=pi / _SCALE,
        threshold=ti / _SCALE,
        served_at=datetime.fromtimestamp(msi / 1000, UTC),
    )
