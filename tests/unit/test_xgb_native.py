"""The serve path's replacements for third-party calls give the very same numbers.

- magic8.domain.xgb_native (XGBoost's C API via ctypes) == xgboost.Booster.inplace_predict
  on the committed models, bitwise, including missing values;
- magic8.domain.pricing.ndtr (numpy port of Cephes) == scipy.special.ndtr, bitwise, over
  the central range, both tails, +-inf and NaN: the committed models were trained with
  scipy's ndtr, and the feature rows they see at serve time are unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from magic8.domain import pricing
from magic8.domain.xgb_native import NativeBooster, XGBoostNativeError, version
from magic8.settings import DEFAULT_MODEL_DIR


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
    np.testing.assert_array_equal(got, ref.inplace_predict(x))
    # float64 and non-contiguous input are converted, one row works, empty works
    np.testing.assert_array_equal(native.inplace_predict(x.astype(np.float64)[::2]), got[::2])
    np.testing.assert_array_equal(native.inplace_predict(x[3:4]), got[3:4])
    assert native.inplace_predict(x[:0]).shape == (0,)
    assert version()[0] >= 2


def test_native_booster_errors_are_clear(tmp_path: object) -> None:
    native = NativeBooster(DEFAULT_MODEL_DIR / _model_files()[0])
    with pytest.raises(ValueError, match="features"):
        native.inplace_predict(np.zeros((2, native.num_features + 1), dtype=np.float32))
    with pytest.raises(XGBoostNativeError):
        NativeBooster(DEFAULT_MODEL_DIR / "no-such-model.ubj")


def test_ndtr_is_bitwise_scipy() -> None:
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
    np.testing.assert_array_equal(pricing.ndtr(x), special.ndtr(x))
    grid = x[:4000].reshape(1000, 4)  # 2-d, as the pricing code calls it
    np.testing.assert_array_equal(pricing.ndtr(grid), special.ndtr(grid))
    with_nan = grid.copy()
    with_nan[::3, 1] = np.nan
    np.testing.assert_array_equal(pricing.ndtr(with_nan), special.ndtr(with_nan))
