"""The serve path's replacements for third-party calls give the same numbers, within a few
ulp (never bitwise: numpy's exp and XGBoost's kernels take per-CPU SIMD paths, and CI and
Lambda hosts run other CPUs than ours):

- magic8.adapters.xgb_native (XGBoost's C API via ctypes) ~ xgboost.Booster.inplace_predict
  on the committed models, including missing values;
- magic8.domain.pricing.ndtr (numpy port of Cephes) ~ scipy.special.ndtr over the central
  range, both tails, +-inf and NaN: the committed models were trained with scipy's ndtr.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from magic8.adapters.xgb_native import NativeBooster, XGBoostNativeError, version
from magic8.domain import pricing
from magic8.settings import DEFAULT_MODEL_DIR

MAX_ULP = 8


def assert_close_ulp(actual: np.ndarray, desired: np.ndarray, max_ulp: int = MAX_ULP) -> None:
    """Same shape, NaN and infinity at the same places, finite values within max_ulp."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(desired))
    inf = np.isinf(desired)
    np.testing.assert_array_equal(actual[inf], desired[inf])
    finite = np.isfinite(desired)
    np.testing.assert_array_max_ulp(actual[finite], desired[finite], maxulp=max_ulp)


def _model_files() -> list[str]:
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    return [spec["file"] for spec in manifest["models"].values()]


@pytest.mark.parametrize("file", _model_files())
def test_native_booster_equals_xgboost_inplace_predict(file: str) -> None:
    xgb = pytest.importorskip("xgboost")
    native = NativeBooster(DEFAULT_MODEL_DIR / file)
    native.set_param({"nthread": 1})
    ref = xgb.Booster()
    ref.load_model(str(DEFAULT_MODEL_DIR / file))
    ref.set_param({"nthread": 1})
    assert native.num_features == ref.num_features()
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, (500, native.num_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[7] = np.nan  # a row with nothing known
    got = native.inplace_predict(x)
    assert got.dtype == np.float32 and got.shape == (500,)
    assert_close_ulp(got, ref.inplace_predict(x))
    # float64 and non-contiguous input are converted, one row works, empty works
    assert_close_ulp(native.inplace_predict(x.astype(np.float64)[::2]), got[::2])
    assert_close_ulp(native.inplace_predict(x[3:4]), got[3:4])
    assert native.inplace_predict(x[:0]).shape == (0,)
    assert version()[0] >= 2


def test_native_booster_errors_are_clear(tmp_path: object) -> None:
    native = NativeBooster(DEFAULT_MODEL_DIR / _model_files()[0])
    with pytest.raises(ValueError, match="features"):
        native.inplace_predict(np.zeros((2, native.num_features + 1), dtype=np.float32))
    with pytest.raises(XGBoostNativeError):
        NativeBooster(DEFAULT_MODEL_DIR / "no-such-model.ubj")


def test_ndtr_matches_scipy_within_a_few_ulp() -> None:
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(0.0, 3.0, 200_000),
            rng.uniform(-40.0, 40.0, 50_000),
            np.linspace(-12.0, 12.0, 24_001),
            [0.0, -0.0, 1e-300, -1e-300, 5e-324, 8.0, -8.0, 37.5, -37.5, 40.0, -40.0],
            [np.inf, -np.inf, np.nan],
        ]
    )
    assert_close_ulp(pricing.ndtr(x), special.ndtr(x))
    grid = x[:4000].reshape(1000, 4)  # 2-d, as the pricing code calls it
    assert_close_ulp(pricing.ndtr(grid), special.ndtr(grid))
    with_nan = grid.copy()
    with_nan[::3, 1] = np.nan
    assert_close_ulp(pricing.ndtr(with_nan), special.ndtr(with_nan))


def test_ulp_comparison_bites() -> None:
    """The tolerance is a few ulp, not a loose one: 1e-12 relative is far outside it."""
    x = np.linspace(0.1, 0.9, 101)
    assert_close_ulp(np.nextafter(x, 1.0), x)
    with pytest.raises(AssertionError):
        assert_close_ulp(x * (1 + 1e-12), x)
    with pytest.raises(AssertionError):
        assert_close_ulp(np.where(x > 0.5, np.nan, x), x)
