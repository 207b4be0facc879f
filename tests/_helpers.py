"""Moving test data between NumPy and the backend under test, and checking results."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

DTYPES = ("float32", "float64")


def make(xp: Any, device: Any, a: Any, dtype: str | None = None) -> Any:
    """``a`` (NumPy or list) as an array of ``xp`` on ``device``, in ``dtype``."""
    arr = np.asarray(a)
    if dtype is not None:
        arr = arr.astype(dtype)
    dt = None
    if arr.dtype.kind in "fiub":
        # array-api-compat's Dask namespace names only the standard's dtypes
        dt = getattr(xp, str(arr.dtype), None) or arr.dtype
    if arr.dtype == np.bool_:
        dt = xp.bool
    kwargs = {} if device is None else {"device": device}
    return xp.asarray(arr, dtype=dt, **kwargs)


def to_numpy(a: Any) -> np.ndarray:
    """Any backend's array as a NumPy array (computing Dask, copying from GPUs)."""
    mod = type(a).__module__
    if mod.startswith("torch"):
        return a.detach().cpu().numpy()
    if mod.startswith("dask"):
        return np.asarray(a.compute())
    if mod.startswith("cupy"):
        return a.get()
    if mod.startswith("array_api_strict"):
        import array_api_strict as xs

        return np.asarray(xs.asarray(a, device=xs.Device("CPU_DEVICE"))._array)
    return np.asarray(a)


def assert_like(result: Any, xp: Any, dtype: Any, shape: tuple[int, ...], device: Any) -> None:
    """Namespace, dtype, shape and device of ``result``, not only its values."""
    assert array_namespace(result) is xp, f"namespace {array_namespace(result)} is not {xp}"
    assert result.dtype == dtype, f"dtype {result.dtype} != {dtype}"
    assert tuple(result.shape) == tuple(shape), f"shape {tuple(result.shape)} != {shape}"
    if device is not None:
        assert device_of(result) == device, f"device {device_of(result)} != {device}"
