"""A small array-API namespace for TensorFlow: exactly what wce_xp's generic code uses.

array-api-compat has no TensorFlow namespace (an upstream pull request is open, not
released), so this module adapts the handful of functions that
:mod:`wce_xp._generic._core` and the front door call, on ``tf.Tensor`` and
``tf.Variable``. Every function is a TensorFlow op: nothing goes through NumPy, so
``tf.GradientTape``, ``tf.function`` and XLA (``jit_compile=True``) see one graph.

Python scalars mixed with tensors take the tensor's dtype (the standard's rule), which
TensorFlow's own ``tf.where``/``tf.maximum`` do not do by themselves.
"""

from __future__ import annotations

import builtins
from typing import Any

import tensorflow as tf

__array_api_version__ = "2023.12"
# where() takes Python scalars on either side, as the 2024.12 standard allows
WHERE_TAKES_SCALARS = True

Array = Any

bool = tf.bool
int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64
uint8 = tf.uint8
float16, bfloat16, float32, float64 = tf.float16, tf.bfloat16, tf.float32, tf.float64
complex64, complex128 = tf.complex64, tf.complex128

_KINDS: dict[str, Any] = {
    "bool": lambda d: d == tf.bool,
    "integral": lambda d: d.is_integer,
    "signed integer": lambda d: d.is_integer and not d.is_unsigned,
    "unsigned integer": lambda d: d.is_integer and d.is_unsigned,
    "real floating": lambda d: d.is_floating,
    "complex floating": lambda d: d.is_complex,
    "numeric": lambda d: d.is_integer or d.is_floating or d.is_complex,
}


def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, str):
        return builtins.bool(_KINDS[kind](tf.as_dtype(dtype)))
    return builtins.bool(tf.as_dtype(dtype) == tf.as_dtype(kind))


def is_tensor(x: Any) -> builtins.bool:
    """A TensorFlow tensor or variable (what this namespace's functions take)."""
    return isinstance(x, tf.Tensor | tf.Variable)


def device(x: Array) -> str:
    return str(getattr(x, "device", "") or "")


def asarray(obj: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> Array:
    if is_tensor(obj):
        out = tf.convert_to_tensor(obj)  # a Variable's value, still watched by a tape
        return out if dtype is None or out.dtype == dtype else tf.cast(out, dtype)
    if device:
        with tf.device(device):
            return tf.convert_to_tensor(obj, dtype=dtype)
    return tf.convert_to_tensor(obj, dtype=dtype)


def astype(x: Array, dtype: Any, /, *, copy: Any = True, device: Any = None) -> Array:
    x = tf.convert_to_tensor(x)
    return x if x.dtype == dtype else tf.cast(x, dtype)


def _pair(a: Any, b: Any) -> tuple[Array, Array]:
    """Python scalars take the other operand's dtype."""
    if not is_tensor(a) and is_tensor(b):
        a = tf.constant(a, dtype=b.dtype)
    elif not is_tensor(b) and is_tensor(a):
        b = tf.constant(b, dtype=a.dtype)
    return a, b


def where(condition: Array, x1: Any, x2: Any, /) -> Array:
    a, b = _pair(x1, x2)
    return tf.where(condition, a, b)


def maximum(x1: Any, x2: Any, /) -> Array:
    return tf.maximum(*_pair(x1, x2))


def minimum(x1: Any, x2: Any, /) -> Array:
    return tf.minimum(*_pair(x1, x2))


def abs(x: Array, /) -> Array:
    return tf.abs(x)


def exp(x: Array, /) -> Array:
    return tf.exp(x)


def log(x: Array, /) -> Array:
    return tf.math.log(x)


def log1p(x: Array, /) -> Array:
    return tf.math.log1p(x)


def isinf(x: Array, /) -> Array:
    return tf.math.is_inf(x)


def isnan(x: Array, /) -> Array:
    return tf.math.is_nan(x)


def _axis(axis: Any) -> Any:
    return list(axis) if isinstance(axis, tuple) else axis


def sum(
    x: Array, /, *, axis: Any = None, dtype: Any = None, keepdims: builtins.bool = False
) -> Array:
    if dtype is not None and x.dtype != dtype:
        x = tf.cast(x, dtype)
    return tf.reduce_sum(x, axis=_axis(axis), keepdims=keepdims)


def min(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:
    return tf.reduce_min(x, axis=_axis(axis), keepdims=keepdims)


def max(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:
    return tf.reduce_max(x, axis=_axis(axis), keepdims=keepdims)


def all(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:
    return tf.reduce_all(tf.cast(x, tf.bool), axis=_axis(axis), keepdims=keepdims)


def zeros_like(x: Array, /) -> Array:
    return tf.zeros_like(x)


def ones_like(x: Array, /) -> Array:
    return tf.ones_like(x)


def full_like(x: Array, /, fill_value: Any) -> Array:
    return tf.fill(tf.shape(x), tf.constant(fill_value, dtype=x.dtype))


def broadcast_to(x: Array, /, shape: Any) -> Array:
    return tf.broadcast_to(x, shape)


def reshape(x: Array, /, shape: Any) -> Array:
    return tf.reshape(x, shape)


def stack(arrays: Any, /, *, axis: int = 0) -> Array:
    return tf.stack(list(arrays), axis=axis)


def nonzero(x: Array, /) -> tuple[Array, ...]:
    idx = tf.where(tf.cast(x, tf.bool))
    return tuple(idx[:, i] for i in range(idx.shape[1]))
