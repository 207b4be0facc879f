"""The one import site of ``array-api-compat``.

Everything else in wce_xp imports the namespace helpers from here, so that a
change of how namespaces are found is made in one place.
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import (
    array_namespace,
    device,
    is_array_api_obj,
    is_array_api_strict_namespace,
    is_cupy_array,
    is_cupy_namespace,
    is_dask_array,
    is_dask_namespace,
    is_jax_array,
    is_jax_namespace,
    is_numpy_array,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
    size,
)

__all__ = [
    "array_namespace",
    "backend_name",
    "device",
    "is_array",
    "is_array_api_strict_namespace",
    "is_cupy_array",
    "is_cupy_namespace",
    "is_dask_array",
    "is_dask_namespace",
    "is_jax_array",
    "is_jax_namespace",
    "is_jax_tracer",
    "is_numpy_array",
    "is_numpy_namespace",
    "is_tf_namespace",
    "is_tf_tensor",
    "is_torch_array",
    "is_torch_namespace",
    "namespace_of_module",
    "ready",
    "size",
    "torch_state",
]


def is_tf_tensor(x: object) -> bool:
    """A TensorFlow tensor or variable (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.Tensor | tf.Variable)


def is_array(x: object) -> bool:
    """True for an array of some library; False for Python and NumPy scalars and lists."""
    # NumPy scalars (np.float32(2.0)) carry __array_namespace__ but are scalars to users.
    return (is_array_api_obj(x) and not isinstance(x, np.generic)) or is_tf_tensor(x)


def is_jax_tracer(x: object) -> bool:
    """True for a JAX tracer (inside ``jit``, ``grad``, ``vmap``...): no concrete values."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    return isinstance(x, jax.core.Tracer)


def is_tf_namespace(xp: object) -> bool:
    """wce_xp's TensorFlow namespace (array-api-compat has none for TensorFlow)."""
    return getattr(xp, "__name__", "") == "wce_xp._tf"


def namespace_of_module(xp: Any) -> ModuleType:
    """The array-api-compat namespace for a user-given ``xp`` (a module or a namespace;
    ``tensorflow`` itself gives wce_xp's TensorFlow namespace)."""
    if is_tf_namespace(xp) or getattr(xp, "__name__", "") == "tensorflow":
        from . import _tf

        return _tf
    if hasattr(xp, "asarray"):
        try:
            probe = xp.asarray(0.0)
        except Exception as exc:  # pragma: no cover - exotic namespaces
            raise TypeError(f"xp: {xp!r} is not an array namespace ({exc})") from None
        if isinstance(probe, np.generic):  # pragma: no cover
            probe = np.asarray(probe)
        ns: ModuleType = array_namespace(probe)
        return ns
    raise TypeError(f"xp: expected an array namespace module such as numpy or torch, got {xp!r}")


@functools.cache
def _torch_warm_up() -> None:
    """Call torch.exp once, on one element, before any real work.

    PyTorch 2.13 (CPU, AVX512, 2 intra-op threads) computed the worker thread's half of
    the *first* ``torch.exp`` call in a process with a relative error of 1.5e-4 (7 of 40
    fresh processes here; every later call was exact to 1 ulp). One single-element call
    first made all 40 of 40 processes correct. tests/test_native.py caught it.
    """
    import torch

    torch.exp(torch.zeros(1))


def ready(xp: ModuleType) -> ModuleType:
    """The namespace, after any one-time work a backend needs before its first use."""
    if is_torch_namespace(xp):
        _torch_warm_up()
    return xp


def backend_name(xp: ModuleType) -> str:
    """A short, stable name for a namespace: numpy, cupy, torch, jax, dask,
    array_api_strict, tensorflow."""
    if is_numpy_namespace(xp):
        return "numpy"
    if is_cupy_namespace(xp):
        return "cupy"
    if is_torch_namespace(xp):
        return "torch"
    if is_jax_namespace(xp):
        return "jax"
    if is_dask_namespace(xp):
        return "dask"
    if is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if is_tf_namespace(xp):
        return "tensorflow"
    return getattr(xp, "__name__", "unknown")


def torch_state(tensors: list[Any]) -> tuple[bool, bool]:
    """``(traced, native_ok)`` for a call on PyTorch tensors.

    Traced: inside ``torch.compile`` (no values; dynamo must see only torch ops) or a
    ``torch.func`` transform (``vmap``/``grad``/``jvp`` wrap tensors; data-dependent
    Python control flow is an error there). Native kernels also need plain tensors
    and no active forward-mode AD level (``torch.autograd.forward_ad``): the NumPy and
    CuPy kernels see raw memory, so tangents would be lost; and no active ``torch.func``
    transform even where these tensors are not its (the native autograd Functions
    have no functorch rule, which PyTorch requires there).
    """
    import torch

    if torch.compiler.is_compiling():
        return True, False
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if any(wrapped(t) for t in tensors):
        return True, False
    import torch.autograd.forward_ad as fwad

    # (plain tensors under an active transform, captured by the function it maps: the
    # values are there, but autograd Functions without a functorch rule are refused)
    native = (fwad._current_level < 0 and all(type(t) is torch.Tensor for t in tensors)
              and not torch._C._are_functorch_transforms_active())
    return False, native
