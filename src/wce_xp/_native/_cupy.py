"""CuPy fast path: one fused elementwise kernel for the loss, one for grad/hess, and a
fused reduction that never materializes the elementwise loss.

Why it exists: the generic code launches about twenty kernels with a full-size
temporary each; on a GPU the loss is memory-bound, so one kernel that reads the
inputs once and writes once is several times faster (BENCHMARKS.md). The arithmetic
is the generic formula in the inputs' precision (float32 in double precision made the
kernel compute-bound at 35% of copy bandwidth on an H100); sums accumulate in double.
Tested against the generic path and the mpmath reference in tests/test_native.py
and the accuracy tests.
"""

from __future__ import annotations

import functools
from typing import Any

Array = Any

_PREAMBLE = r"""
template <typename T>
__device__ __forceinline__ T wce_loss(T z, T x, T q) {
    T a = q * z;                      // weight of softplus(-x)
    T b = T(1) - z;                   // weight of softplus(x)
    T l = a + b;
    T y = fabs(x);
    T c = x < T(0) ? a : b;
    T lin = (c == T(0)) ? T(0) : c * y;  // 0*inf is the limit 0
    return lin + l * log1p(exp(-y));     // a NaN logit reaches the result here
}
"""

# Rows per partial sum in the two-stage reduction: enough outputs to fill the GPU.
_ROW = 1 << 14


@functools.cache
def _kernels() -> dict[str, Any]:
    import cupy

    loss = cupy.ElementwiseKernel(
        "T z, T x, T q", "T out", "out = wce_loss<T>(z, x, q);",
        "wce_xp_loss", preamble=_PREAMBLE)
    grad_hess = cupy.ElementwiseKernel(
        "T z, T x, T q", "T g, T h",
        r"""
        T a = q * z, b = T(1) - z;
        T e = exp(-fabs(x));
        T one_e = T(1) + e;
        T r = T(1) / one_e, er = e * r;
        T sp = x >= T(0) ? r : er;    // sigma(x)
        T sn = x >= T(0) ? er : r;    // sigma(-x)
        g = b * sp - a * sn;
        h = (a + b) * (e / (one_e * one_e));
        """,
        "wce_xp_grad_hess")
    # Partial sums in double. A ReductionKernel gives one thread block per output, so a
    # reduction to a single number runs on one block; reducing rows of a (k, _ROW) view
    # to k partials keeps the whole GPU busy, and cupy.sum (CUB) adds the k partials.
    total = cupy.ReductionKernel(
        "T z, T x, T q, T w, bool m", "float64 y",
        "(m && w != T(0)) ? (double)w * (double)wce_loss<T>(z, x, q) : 0.0",
        "a + b", "y = a", "0.0", "wce_xp_loss_sum",
        reduce_type="float64", preamble=_PREAMBLE)
    return {"loss": loss, "grad_hess": grad_hess, "sum": total}


def _scalar_or(v: Any, dtype: Any) -> Any:
    import cupy

    if isinstance(v, float):
        return cupy.asarray(v, dtype=dtype)
    return v


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array:
    """Elementwise loss, one kernel launch."""
    result: Array = _kernels()["loss"](z, x, _scalar_or(q, x.dtype))
    return result


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array]:
    """Gradient and Hessian, one kernel launch."""
    g, h = _kernels()["grad_hess"](z, x, _scalar_or(q, x.dtype))
    return g, h


def _flat_operand(v: Any, shape: tuple[int, ...], row: int) -> Any:
    """``v`` as an operand of the (k, row) view of a flattened C-contiguous array of
    ``shape``: 0-d stays 0-d, a full C-contiguous array is flattened, a vector along
    the last axis is tiled to one row. None where none of these applies."""
    import cupy

    if v.ndim == 0:
        return v
    if tuple(v.shape) == shape and v.flags.c_contiguous:
        return v.reshape(-1)
    c = shape[-1] if shape else 1
    if v.size == c and all(d == 1 for d in v.shape[:-1]) and row % c == 0:
        return cupy.tile(v.reshape(-1), row // c)
    return None


def _sum_all(z: Array, x: Array, q: Array, w: Array, m: Array) -> Array | None:
    """Fused sum over every element in two stages, or None if the operands do not
    flatten (then the caller reduces with the one-stage kernel)."""
    import cupy

    shape = tuple(x.shape)
    n = x.size
    c = shape[-1] if shape else 1
    row = max(c, (_ROW // c) * c)
    if n < 4 * row or not (x.flags.c_contiguous and z.flags.c_contiguous):
        return None
    ops = [_flat_operand(v, shape, row) for v in (q, w, m)]
    if any(o is None for o in ops):
        return None
    k = n // row
    main = k * row
    kern = _kernels()["sum"]

    xf, zf = x.reshape(-1), z.reshape(-1)
    head = slice(0, main)
    args = [zf[head].reshape(k, row), xf[head].reshape(k, row)]
    args += [o if o.ndim == 0 or o.shape[0] == row else o[head].reshape(k, row) for o in ops]
    partials = kern(*args, axis=1)
    total = cupy.sum(partials)
    if main < n:
        tail = slice(main, n)
        targs = [zf[tail], xf[tail]]
        targs += [o if o.ndim == 0 else (o[: n - main] if o.shape[0] == row else o[tail])
                  for o in ops]
        total = total + kern(*targs, axis=0)
    return total


def reduced_loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    axes: tuple[int, ...],
) -> Array:
    """Sum over ``axes`` in a fused reduction (double accumulator); mean and
    weighted_mean divide by a count or weight sum that is reduced separately.
    Masked elements were zeroed in ``z`` and ``x`` (the kernel skips them anyway)."""
    import cupy

    qa = _scalar_or(q, x.dtype)
    w = _scalar_or(1.0, x.dtype) if weight is None else weight
    m = cupy.asarray(True) if mask is None else mask
    total = None
    if axes == tuple(range(x.ndim)):
        total = _sum_all(z, x, qa, w, m)
    if total is None:
        total = _kernels()["sum"](z, x, qa, w, m, axis=axes)
    if reduction == "sum":
        return total.astype(x.dtype)
    if reduction == "mean":
        if mask is None:
            n = 1
            for ax in axes:
                n *= x.shape[ax]
            denom = cupy.asarray(float(n))
        else:
            denom = cupy.sum(cupy.broadcast_to(mask, x.shape), axis=axes, dtype=cupy.float64)
    else:
        wb = cupy.broadcast_to(w, x.shape)
        if mask is not None:
            wb = cupy.where(cupy.broadcast_to(mask, x.shape), wb, 0)
        denom = cupy.sum(wb, axis=axes, dtype=cupy.float64)
    empty = denom == 0
    return cupy.where(empty, cupy.nan, total / cupy.where(empty, 1, denom)).astype(x.dtype)
