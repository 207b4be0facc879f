"""Moving test data between NumPy and the backend under test, and checking results."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace

from wce_xp._compat import backend_name, is_tf_tensor

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


def tf_test_namespace() -> Any:
    """wce_xp's TensorFlow namespace plus the few functions only the tests use."""
    import types

    import tensorflow as tf

    from wce_xp import _tf

    ns = types.ModuleType("wce_xp._tf")  # backend_name() reads the name
    ns.__dict__.update({k: v for k, v in vars(_tf).items() if not k.startswith("__")})
    ns.permute_dims = lambda x, axes: tf.transpose(x, axes)
    ns.isfinite = tf.math.is_finite
    return ns


def device_of(a: Any) -> Any:
    """The device of any backend's array (TensorFlow: its device string)."""
    if is_tf_tensor(a):
        return a.device
    from array_api_compat import device

    return device(a)


def backend_of(a: Any) -> str:
    return "tensorflow" if is_tf_tensor(a) else backend_name(array_namespace(a))


def to_numpy(a: Any) -> np.ndarray:
    """Any backend's array as a NumPy array (computing Dask, copying from GPUs)."""
    mod = type(a).__module__
    if mod.startswith("tensorflow"):
        return np.asarray(a.numpy())
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
    got, want = backend_of(result), backend_name(xp)
    assert got == want, f"namespace {got} is not {want}"
    assert result.dtype == dtype, f"dtype {result.dtype} != {dtype}"
    assert tuple(result.shape) == tuple(shape), f"shape {tuple(result.shape)} != {shape}"
    if device is not None:
        assert device_of(result) == device, f"device {device_of(result)} != {device}"


def sigmoid(x: Any) -> Any:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def reference_loss(z: Any, x: Any, q: Any = 1.0, w: Any = None, m: Any = None, s: float = 0.0,
                   gamma: float = 0.0, alpha: float | None = None, reduction: str = "none",
                   axis: Any = None) -> Any:
    """The documented semantics in float64 NumPy, by another route than the library's:
    ``q·z·softplus(-x) + (1-z)·softplus(x)`` with ``np.logaddexp``."""
    z = np.asarray(z, np.float64)
    x = np.asarray(x, np.float64)
    if m is not None:
        z = np.where(m, z, 0.0)
        x = np.where(m, x, 0.0)
    z = z * (1 - s) + 0.5 * s
    loss = q * z * np.logaddexp(0.0, -x) + (1 - z) * np.logaddexp(0.0, x)
    if gamma:
        one_minus_pt = z * sigmoid(-x) + (1 - z) * sigmoid(x)
        loss = one_minus_pt**gamma * loss
    if alpha is not None:
        loss = (alpha * z + (1 - alpha) * (1 - z)) * loss
    wb = np.ones_like(loss) if w is None else np.broadcast_to(w, loss.shape)
    mb = np.ones(loss.shape, bool) if m is None else np.broadcast_to(m, loss.shape)
    loss = np.where(mb, wb * loss, 0.0)
    if reduction == "none":
        return loss
    total = loss.sum(axis=axis)
    if reduction == "sum":
        return total
    if reduction == "mean":
        n = mb.sum(axis=axis)
    else:
        n = np.where(mb, wb, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n == 0, np.nan, total / np.where(n == 0, 1, n))
