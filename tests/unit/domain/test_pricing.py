"""Payoffs at expiry match hand-computed values; Black-Scholes is sane."""

from __future__ import annotations

import numpy as np
import pytest

from magic8.domain import pricing as P


def _k(*strikes: float) -> np.ndarray:
    row = np.full((1, 4), np.nan)
    row[0, : len(strikes)] = sorted(strikes)
    return row


def _profit(
    code: int, sell: bool, strikes: np.ndarray, call: float, prem: float, close: float
) -> float:
    return float(
        P.profit_at_expiry(
            np.array([code]),
            np.array([1.0 if sell else 0.0]),
            strikes,
            np.array([call]),
            np.array([prem]),
            np.array([close]),
        )[0]
    )


@pytest.mark.parametrize(
    ("close", "expected"),
    [(5855, 50 - 24.82), (5830, 25 - 24.82), (5800, -24.82), (5905, -24.82), (5880, 25 - 24.82)],
)
def test_butterfly_buy(close: float, expected: float) -> None:
    # DiscordTrading example: Butterfly [5905, 5855, 5805] BUY for 24.82
    k = _k(5905, 5855, 5805)
    assert _profit(P.BUTTERFLY, False, k, np.nan, 24.82, close) == pytest.approx(expected)
    assert _profit(P.BUTTERFLY, True, k, np.nan, 24.82, close) == pytest.approx(-expected)


@pytest.mark.parametrize(
    ("close", "expected"),
    [
        (5855, 0.65),  # inside the body: keep the credit
        (5835, 0.65),
        (5877, 0.65 - 2),  # 2 into the call spread
        (5890, 0.65 - 5),  # max loss = width - credit
        (5832, 0.65 - 3),
        (5700, 0.65 - 5),
    ],
)
def test_iron_condor_sell(close: float, expected: float) -> None:
    # DiscordTrading example: Iron Condor [5880, 5875, 5835, 5830] SELL for 0.65
    k = _k(5880, 5875, 5835, 5830)
    for code in (P.IRON_CONDOR, P.SONAR):
        assert _profit(code, True, k, np.nan, 0.65, close) == pytest.approx(expected)
        assert _profit(code, False, k, np.nan, 0.65, close) == pytest.approx(-expected)


def test_verticals() -> None:
    k = _k(5850, 5860)
    # bull call debit: long 5850 call, short 5860 call, paid 4
    assert _profit(P.VERTICAL, False, k, 1.0, 4.0, 5870) == pytest.approx(6.0)
    assert _profit(P.VERTICAL, False, k, 1.0, 4.0, 5855) == pytest.approx(1.0)
    assert _profit(P.VERTICAL, False, k, 1.0, 4.0, 5840) == pytest.approx(-4.0)
    # bull put credit: short 5860 put, long 5850 put, received 3
    assert _profit(P.VERTICAL, True, k, 0.0, 3.0, 5870) == pytest.approx(3.0)
    assert _profit(P.VERTICAL, True, k, 0.0, 3.0, 5855) == pytest.approx(-2.0)
    assert _profit(P.VERTICAL, True, k, 0.0, 3.0, 5800) == pytest.approx(-7.0)


def test_vertical_type_inference() -> None:
    k = np.vstack([_k(5850, 5860)] * 4)
    pred = np.array([5900.0, 5900.0, 5800.0, 5800.0])
    sell = np.array([0.0, 1.0, 0.0, 1.0])
    # bullish: BUY call, SELL put; bearish: BUY put, SELL call
    np.testing.assert_array_equal(P.infer_vertical_call(sell, k, pred), [1.0, 0.0, 0.0, 1.0])


def test_black_scholes_parity_and_limits() -> None:
    s = np.array([100.0, 100.0, 100.0])
    k = np.array([90.0, 100.0, 110.0])
    t = np.full(3, 30 / 365)
    sig = np.full(3, 0.2)
    c, p = P.bs_call_put(s, k, t, sig)
    np.testing.assert_allclose(c - p, s - k, atol=1e-9)
    assert c[1] == pytest.approx(0.4 * 100 * 0.2 * np.sqrt(30 / 365), rel=0.01)  # ATM approx
    c0, p0 = P.bs_call_put(s, k, np.zeros(3), sig)
    np.testing.assert_allclose(c0, np.maximum(s - k, 0), atol=1e-6)
    np.testing.assert_allclose(p0, np.maximum(k - s, 0), atol=1e-6)


def test_structure_value_and_extremes() -> None:
    k = np.vstack([_k(5805, 5855, 5905), _k(5830, 5835, 5875, 5880)])
    codes = np.array([P.BUTTERFLY, P.IRON_CONDOR])
    call = np.full(2, np.nan)
    lo, hi = P.structure_extremes(codes, k, call)
    np.testing.assert_allclose(lo, [0.0, 0.0])
    np.testing.assert_allclose(hi, [50.0, 5.0])
    v = P.structure_value(
        codes, k, call, np.array([5855.0, 5855.0]), np.full(2, 0.002), np.full(2, 0.15)
    )
    assert 0 < v[0] < 50 and 0 < v[1] < 5
    # a long butterfly at the money is worth more with less time left
    v_late = P.structure_value(
        codes, k, call, np.array([5855.0, 5855.0]), np.full(2, 0.0002), np.full(2, 0.15)
    )
    assert v_late[0] > v[0]
