"""Pick an implementation per backend: a measured-faster native path, else the generic one.

Order (SciPy's): NumPy's chunked kernel → the backend's fused kernel (CuPy; PyTorch
through the NumPy or CuPy kernel, or Triton's on CUDA without CuPy) → Dask
``map_blocks`` over the NumPy kernel → the generic array-API code. Every native path is
tested against the generic one in tests/test_native.py; BENCHMARKS.md has the
measurements that justify each.
JAX and array-api-strict always take the generic path: XLA fuses it under ``jit``
as well as a hand-written kernel would, and strict is the conformance reference.
Eager TensorFlow runs the generic code compiled by XLA (``_native/_tf.py``); inside
``tf.function`` the caller's own trace takes the generic code directly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ._compat import (
    is_cupy_namespace,
    is_dask_namespace,
    is_numpy_namespace,
    is_tf_namespace,
    is_torch_namespace,
)
from ._generic import _core

Array = Any

# WCE_XP_GENERIC=1 forces the generic path everywhere (tests compare the two).
_FORCE_GENERIC = os.environ.get("WCE_XP_GENERIC", "") not in ("", "0")


def force_generic(on: bool) -> bool:
    """Switch native paths off (True) or back on; returns the previous setting."""
    global _FORCE_GENERIC
    old, _FORCE_GENERIC = _FORCE_GENERIC, on
    return old


@contextlib.contextmanager
def generic_only() -> Iterator[None]:
    """Within this block every call takes the generic path (for tests and benchmarks)."""
    old = force_generic(True)
    try:
        yield
    finally:
        force_generic(old)


def _numpy_ok(*arrays: Any) -> bool:
    return all(a is None or isinstance(a, float | np.ndarray) for a in arrays)


def _native(
    name: str, z: Array, x: Array, q: Array | float, xp: ModuleType, nonneg: bool
) -> Any:
    """``name`` ("weighted_loss" or "grad_hess") from the backend's native module, or
    None where no native path applies. Every native module has both functions.
    ``nonneg``: the coefficients ``q·z`` and ``1 - z`` are known to be non-negative."""
    if _FORCE_GENERIC:
        return None
    kw = {"nonneg": nonneg} if name == "weighted_loss" else {}
    if is_numpy_namespace(xp) and _numpy_ok(z, x, q):
        from ._native import _numpy

        return getattr(_numpy, name)(z, x, q, **kw)
    if is_cupy_namespace(xp):
        from ._native import _cupy

        return getattr(_cupy, name)(z, x, q)
    if is_torch_namespace(xp):
        from ._native import _torch

        return getattr(_torch, name)(z, x, q, **kw)  # None where autograd needs the generic
    if is_dask_namespace(xp):
        from ._native import _dask

        if _dask.applies(z, x, *([] if isinstance(q, float) else [q])):
            return getattr(_dask, name)(z, x, q, **kw)
    if is_tf_namespace(xp):
        from ._native import _tf

        return getattr(_tf, name)(z, x, q, **kw)
    return None


def elementwise_loss(
    z: Array, x: Array, q: Array | float, *, xp: ModuleType, native: bool = True,
    nonneg: bool = False,
) -> Array:
    """The elementwise weighted loss (``native=False``: the generic code, as under a
    trace or a functorch transform)."""
    out = _native("weighted_loss", z, x, q, xp, nonneg) if native else None
    if out is not None:
        return out
    # torch.compile's inductor vectorizes the abs form, XLA the select form (2x and 4x)
    form = "additive" if is_torch_namespace(xp) else "select"
    return _core.weighted_loss(z, x, q, xp=xp, zero_form=form)


def reduced_loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    axes: tuple[int, ...],
    xp: ModuleType,
    nonneg: bool = False,
    acc_dtype: Any = None,
) -> Array | None:
    """A fused loss-and-reduction that never materializes the elementwise loss, or
    None where no native path applies (the caller then reduces the elementwise loss)."""
    if _FORCE_GENERIC or reduction == "none":
        return None
    all_axes = axes == tuple(range(x.ndim))
    # NumPy's reductions run in the chunked engine (_numpy.loss), called by _loss
    if is_cupy_namespace(xp):
        from ._native import _cupy

        return _cupy.reduced_loss(z, x, q, weight=weight, mask=mask, reduction=reduction,
                                  axes=axes)
    if is_torch_namespace(xp) and all_axes:
        return _torch_reduced(z, x, q, weight=weight, mask=mask, reduction=reduction, axes=axes,
                              nonneg=nonneg)
    if is_tf_namespace(xp):
        from ._native import _tf

        return _tf.reduced_loss(z, x, q, weight=weight, mask=mask, reduction=reduction,
                                axes=axes, acc_dtype=acc_dtype)
    return None


def sum_block(xp: ModuleType) -> int:
    """Elements added in the loss's dtype before a float64 accumulation of a sum over
    everything (:func:`wce_xp._generic._core.reduce_loss`): 8 for TensorFlow, whose XLA
    converts and sums float64 at half the speed of its float32 row sums (measured);
    1 (no blocks) elsewhere."""
    return 8 if is_tf_namespace(xp) else 1


def _torch_reduced(
    z: Array, x: Array, q: Array | float, *, weight: Array | None, mask: Array | None,
    reduction: str, axes: tuple[int, ...], nonneg: bool,
) -> Array | None:
    import torch

    from ._native import _torch

    kind = _torch._kernel_backend(x)
    if kind == "numpy":
        return _torch.reduced_loss(z, x, q, weight=weight, mask=mask, reduction=reduction,
                                   nonneg=nonneg)
    if kind == "triton":
        from ._native import _triton

        if weight is not None or mask is not None:
            return None
        return _triton.reduced(z, x, q, reduction)
    tensors = [t for t in (z, x, q, weight, mask) if isinstance(t, torch.Tensor)]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None  # autograd needs the elementwise graph
    if kind is None or any(type(t) is not torch.Tensor or t.device != x.device
                           for t in tensors):
        return None
    import cupy

    from ._native import _cupy

    def cp_(t: Any) -> Any:
        return t if t is None or isinstance(t, float) else cupy.from_dlpack(t.detach())

    with _torch.cupy_stream(x):
        res = _cupy.reduced_loss(cp_(z), cp_(x), cp_(q), weight=cp_(weight), mask=cp_(mask),
                                 reduction=reduction, axes=axes)
    return torch.from_dlpack(res)


def grad_hess(
    z: Array, x: Array, q: Array | float, *, xp: ModuleType, native: bool = True
) -> tuple[Array, Array]:
    """Elementwise gradient and Hessian of the weighted loss."""
    out = _native("grad_hess", z, x, q, xp, False) if native else None
    return _core.grad_hess(z, x, q, xp=xp) if out is None else out
