"""XGBoost prediction through the XGBoost library's C API, without the Python package.

Why: ``import xgboost`` imports scipy.sparse (and, when installed, pandas and
scikit-learn): ~0.9 s of CPU before a Lambda can answer its first request on this
machine, for a service that only ever calls one function of the library. The shared
library that the ``xgboost`` (or ``xgboost-cpu``) wheel ships is loaded with ctypes
directly (3 ms) and asked the same thing ``xgboost.Booster.inplace_predict`` asks it on a
dense numpy array: ``XGBoosterPredictFromDense`` with the same arguments, so the values
are bitwise the same (tests/unit/test_xgb_native.py compares them). Training keeps using
the Python package.

Only the documented, stable C API is used (include/xgboost/c_api.h): XGBoosterCreate,
XGBoosterLoadModel, XGBoosterSetParam, XGBoosterGetNumFeature, XGBoosterPredictFromDense,
XGBoosterFree, XGBGetLastError, XGBoostVersion.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from magic8.domain.model import ModelHierarchy

_bst_ulong = ctypes.c_uint64
# prediction arguments, as xgboost.Booster.inplace_predict sends them for predict_type
# "value", the full iteration range, missing = NaN
_PREDICT_ARGS = (
    b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
    b'"missing": NaN, "strict_shape": false, "cache_id": 0}'
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class XGBoostNativeError(RuntimeError):
    pass


def _library_name() -> str:
    if sys.platform == "win32":
        return "xgboost.dll"
    if sys.platform == "darwin":
        return "libxgboost.dylib"
    return "libxgboost.so"


def library_path() -> Path:
    """The shared library of the installed xgboost package, found without importing the
    package (the candidate folders of xgboost.libpath.find_lib_path)."""
    spec = importlib.util.find_spec("xgboost")
    if spec is None or not spec.submodule_search_locations:
        raise XGBoostNativeError("the xgboost package is not installed")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    name = _library_name()
    for folder in (pkg / "lib", pkg.parent.parent / "lib", Path(sys.base_prefix) / "lib"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise XGBoostNativeError(f"{name} not found next to {pkg}")


def library() -> ctypes.CDLL:
    """The loaded XGBoost library (once per process)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                lib = ctypes.cdll.LoadLibrary(os.fspath(library_path()))
                lib.XGBGetLastError.restype = ctypes.c_char_p
                lib.XGBoosterPredictFromDense.argtypes = [
                    ctypes.c_void_p,
                    ctypes.c_char_p,
                    ctypes.c_char_p,
                    ctypes.c_void_p,
                    ctypes.POINTER(ctypes.POINTER(_bst_ulong)),
                    ctypes.POINTER(_bst_ulong),
                    ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                ]
                _lib = lib
    return _lib


def _check(lib: ctypes.CDLL, ret: int) -> None:
    if ret != 0:
        msg = lib.XGBGetLastError()
        raise XGBoostNativeError(msg.decode(errors="replace") if msg else "XGBoost call failed")


def version() -> tuple[int, int, int]:
    lib = library()
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    lib.XGBoostVersion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    return major.value, minor.value, patch.value


class NativeBooster:
    """One XGBoost model file (JSON or UBJSON), for prediction only. Thread-safe for
    predict (XGBoost's in-place prediction is lock free; results are copied out)."""

    def __init__(self, model_file: str | os.PathLike[str]) -> None:
        lib = self._lib = library()
        handle = ctypes.c_void_p()
        _check(lib, lib.XGBoosterCreate(None, _bst_ulong(0), ctypes.byref(handle)))
        self._handle: ctypes.c_void_p | None = handle
        _check(lib, lib.XGBoosterLoadModel(handle, os.fspath(model_file).encode()))
        n = _bst_ulong()
        _check(lib, lib.XGBoosterGetNumFeature(handle, ctypes.byref(n)))
        self.num_features = int(n.value)

    def set_param(self, params: dict[str, object]) -> None:
        for key, value in params.items():
            _check(
                self._lib,
                self._lib.XGBoosterSetParam(self._handle, key.encode(), str(value).encode()),
            )

    def inplace_predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n,) float32 for a dense (n, num_features) array; NaN = missing."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (n, {self.num_features}) features, got {x.shape}")
        n = x.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.float32)
        interface = (
            f'{{"data": [{x.ctypes.data}, true], "shape": [{n}, {x.shape[1]}], '
            f'"strides": null, "typestr": "<f4", "version": 3}}'
        ).encode()
        shape = ctypes.POINTER(_bst_ulong)()
        dims = _bst_ulong()
        out = ctypes.POINTER(ctypes.c_float)()
        _check(
            self._lib,
            self._lib.XGBoosterPredictFromDense(
                self._handle,
                interface,
                _PREDICT_ARGS,
                None,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(out),
            ),
        )
        size = 1
        for i in range(dims.value):
            size *= int(shape[i])
        if size != n:
            raise XGBoostNativeError(f"expected {n} predictions, got shape of size {size}")
        # the buffer belongs to the booster (reused by the next call): copy it out
        buf = ctypes.cast(out, ctypes.POINTER(ctypes.c_float * size)).contents
        return np.frombuffer(memoryview(buf), dtype=np.float32).copy()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            with contextlib.suppress(Exception):  # interpreter shutdown
                self._lib.XGBoosterFree(handle)


def load_hierarchy(model_dir: str | os.PathLike[str]) -> ModelHierarchy:
    """The serve-time model hierarchy in `model_dir`, each booster run through the C API."""
    return ModelHierarchy.load(Path(model_dir), NativeBooster)
