"""CuPy fast path: one fused elementwise kernel for the loss, one for grad/hess, and a
fused reduction that never materializes the elementwise loss.

Why it exists: the generic code launches about twenty kernels with a full-size
temporary each; on a GPU the loss is memory-bound, so one kernel that reads the
inputs once and writes once is several times faster (BENCHMARKS.md). The arithmetic
is the generic formula in the inputs' precision (float32 in double precision made the
kernel compute-bound on an H100, BENCHMARKS.md); sums accumulate in double.
Tested against the generic path and the mpmath reference in tests/test_native.py
and the accuracy tests.
"""

from __future__ import annotations

import functools
from typing import Any

from .._registry import Backend

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
    # Sums over some axes, accumulated in double (one thread block per output).
    total = cupy.ReductionKernel(
        "T z, T x, T q, T w, bool m", "float64 y",
        "(m && w != T(0)) ? (double)w * (double)wce_loss<T>(z, x, q) : 0.0",
        "a + b", "y = a", "0.0", "wce_xp_loss_sum",
        reduce_type="double", preamble=_PREAMBLE)
    return {"loss": loss, "grad_hess": grad_hess, "sum": total}


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array:
    """Elementwise loss, one kernel launch."""
    # A Python scalar is a kernel argument; a 0-d array would be indexed per element.
    result: Array = _kernels()["loss"](z, x, q)
    return result


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array]:
    """Gradient and Hessian, one kernel launch."""
    g, h = _kernels()["grad_hess"](z, x, q)
    return g, h


_SUM_SRC = r"""
extern "C" __global__ void wce_xp_sum_T(
        const T* z, const T* x, const T* q, long long qn, const T* w, long long wn,
        const bool* m, long long mn, long long n, double* out) {
    double acc = 0.0;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T qi = q[qn == 1 ? 0 : (qn == n ? i : i % qn)];
        T wi = w[wn == 1 ? 0 : (wn == n ? i : i % wn)];
        bool mi = m[mn == 1 ? 0 : (mn == n ? i : i % mn)];
        if (mi && wi != T(0)) acc += (double)wi * (double)wce_loss<T>(z[i], x[i], qi);
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    __shared__ double warp_sums[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) warp_sums[wid] = acc;
    __syncthreads();
    if (wid == 0) {
        acc = lane < (int)(blockDim.x >> 5) ? warp_sums[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) atomicAdd(out, acc);
    }
}
"""


@functools.cache
def _sum_kernel(ctype: str) -> Any:
    import cupy

    src = _PREAMBLE + _SUM_SRC.replace("wce_xp_sum_T", f"wce_xp_sum_{ctype}").replace(
        "const T*", f"const {ctype}*").replace("T qi", f"{ctype} qi").replace(
        "T wi", f"{ctype} wi").replace("T(0)", f"{ctype}(0)").replace(
        "wce_loss<T>", f"wce_loss<{ctype}>")
    return cupy.RawKernel(src, f"wce_xp_sum_{ctype}")


def _flat_operand(v: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """``v`` as a flat operand of the flattened C-contiguous ``shape``: length 1
    (scalar), the full size (C-contiguous), or one row of the last axis (repeated by
    the kernel's ``i % len``). None where none of these applies."""
    import cupy

    if isinstance(v, float | bool):
        return cupy.asarray([v], dtype=dtype)
    if v.ndim == 0:
        return v.reshape(1)
    if tuple(v.shape) == shape and v.flags.c_contiguous:
        return v.reshape(-1)
    c = shape[-1] if shape else 1
    if v.size == c and all(d == 1 for d in v.shape[:-1]):
        return cupy.ascontiguousarray(v.reshape(-1))
    return None


def _sum_all(z: Array, x: Array, q: Any, w: Any, m: Any) -> Array | None:
    """Fused sum over every element: a grid-stride kernel, warp-shuffle block sums,
    one double atomicAdd per block (CuPy's ReductionKernel runs a reduction to one
    number on a single block). None if the operands do not flatten."""
    import cupy

    if x.dtype not in (cupy.float32, cupy.float64):
        return None
    if not (x.flags.c_contiguous and z.flags.c_contiguous) or x.size == 0:
        return None
    shape = tuple(x.shape)
    ops = [_flat_operand(q, shape, x.dtype), _flat_operand(w, shape, x.dtype),
           _flat_operand(m, shape, cupy.bool_)]
    if any(o is None for o in ops):
        return None
    n = x.size
    out = cupy.zeros(1, dtype=cupy.float64)
    threads = 256
    # 32 blocks per SM: if fewer fit at once (registers), the last wave is a small
    # fraction of the work; a few thousand atomicAdds cost microseconds.
    blocks = int(min((n + threads - 1) // threads,
                     cupy.cuda.Device().attributes["MultiProcessorCount"] * 32))
    ctype = "float" if x.dtype == cupy.float32 else "double"
    qf, wf, mf = ops
    _sum_kernel(ctype)((blocks,), (threads,), (
        z.reshape(-1), x.reshape(-1), qf, cupy.int64(qf.size), wf, cupy.int64(wf.size),
        mf, cupy.int64(mf.size), cupy.int64(n), out))
    return out.reshape(())


def reduced_loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    axes: tuple[int, ...],
    acc_dtype: Any = None,
) -> Array | None:
    """Sum over ``axes`` in a fused reduction (double accumulator); mean and
    weighted_mean divide by a count or weight sum that is reduced separately.
    Masked elements were zeroed in ``z`` and ``x`` (the kernel skips them anyway)."""
    import cupy

    if reduction not in ("sum", "mean", "weighted_mean"):
        return None  # (the generic code computes any other)
    total = None
    if axes == tuple(range(x.ndim)):
        total = _sum_all(z, x, q, 1.0 if weight is None else weight,
                         True if mask is None else mask)
    if total is None:  # other axes: one block per output is the right shape of work
        w0 = cupy.asarray(1.0, dtype=x.dtype) if weight is None else weight
        m0 = cupy.asarray(True) if mask is None else mask
        total = _kernels()["sum"](z, x, q, w0, m0, axis=axes)
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
        one = cupy.asarray(1.0, dtype=x.dtype)
        wb = cupy.broadcast_to(one if weight is None else weight, x.shape)
        if mask is not None:
            wb = cupy.where(cupy.broadcast_to(mask, x.shape), wb, 0)
        denom = cupy.sum(wb, axis=axes, dtype=cupy.float64)
    empty = denom == 0
    return cupy.where(empty, cupy.nan, total / cupy.where(empty, 1, denom)).astype(x.dtype)


def _state(arrays: list[Array], device: Any) -> tuple[bool, bool, bool]:
    return False, True, True  # values on the GPU: a read is a synchronization


# One fused kernel per operation: the loss is memory-bound on a GPU.
BACKEND = Backend(
    name="cupy",
    state=_state,
    counts_by_shape=True,
    loss=weighted_loss,
    reduced=reduced_loss,
    grad_hess=grad_hess,
)
