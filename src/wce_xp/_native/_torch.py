"""PyTorch fast path: the fused kernels of the NumPy (CPU) or CuPy (CUDA) path on the
tensors' memory, without copies, inside an autograd Function with the analytic backward.

Why it exists: the generic code runs about twenty ATen kernels with full-size
temporaries, slower than ``torch.nn.functional.binary_cross_entropy_with_logits``.
The CPU tensors are viewed as NumPy arrays (``Tensor.numpy()`` shares memory) and
go through the cache-sized NumPy kernel; CUDA tensors go to CuPy's fused kernel
through DLPack when CuPy is installed. The backward pass is written in torch ops,
so it is itself differentiable (Hessians through autograd work).

CUDA tensors without CuPy go to the Triton kernels of ``_triton.py``.

It is used only where it is exact to do so: a plain tensor (no functorch transform,
no ``torch.compile`` tracing), float32/float64, and only the logits requiring a
gradient. Anything else takes the generic path.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .. import _args, _compat, _fork
from .._compat import tensor_getters
from .._generic import _core
from .._registry import Backend, Check
from . import _numpy

Array = Any

# (this module is loaded for tensors only: PyTorch is imported already)
_STRIDED = torch.strided


def plain_memory(t: Any) -> bool:
    """Whether a tensor's memory holds its values as a plain strided array that a kernel
    may read by address: strided layout (not sparse, MKL-DNN or nested), no pending
    negation or conjugation (PyTorch's neg/conj bits are applied when PyTorch reads,
    not stored), real storage (not a zero tensor), aligned to its element size."""
    if t.layout is not _STRIDED or t.is_neg() or (t.dtype.is_complex and t.is_conj()):
        return False
    try:
        address = t.data_ptr()
    except RuntimeError:  # no storage at all (meta, functional wrappers)
        return False
    if not address:
        return bool(t.numel() == 0)
    return not address % t.itemsize


def _route(x: Any) -> str | None:
    """Which kernels compute on tensors like ``x``: ``"numpy"`` (the NumPy backend's C
    or ufunc kernels on CPU memory), ``"cupy"`` or ``"triton"`` (CUDA), or None (the
    generic code)."""
    # Traces, functorch transforms and forward-mode AD were ruled out by the caller
    # (the backend's state trait); here only what the kernels themselves need.
    if (type(x) is not torch.Tensor or x.dtype not in (torch.float32, torch.float64)
            or not plain_memory(x)):
        return None
    if x.device.type == "cpu":
        return "numpy"
    if x.device.type == "cuda":
        try:
            import cupy  # noqa: F401
        except Exception:
            from . import _triton  # PyTorch's CUDA builds ship Triton

            return "triton" if _triton.available() else None
        return "cupy"
    return None


def _threads(x: Any) -> int:
    """PyTorch's thread setting caps the engine's (it is PyTorch's users' knob); one
    thread for a tensor the engine would not split among threads (no need to ask).
    The first time, the C kernels are put on PyTorch's OpenMP threads."""
    if x.numel() <= _numpy.SERIAL_MAX:
        return 1
    if not _openmp_shared:
        share_openmp()
    return min(int(torch.get_num_threads()), _numpy.get_num_threads())


_openmp_shared = False


def share_openmp() -> int:
    """Run the C kernels' threads on the OpenMP runtime that PyTorch loaded (its
    threads spin after each of its operations: a second set of threads would share the
    cores with them), where :func:`wce_xp._compat.loaded_openmp_parallel` finds it;
    else they keep their own. Returns the address of the runtime's ``GOMP_parallel``,
    or 0."""
    global _openmp_shared
    _openmp_shared = True
    f = _numpy._fused_module
    # A fork() child keeps its own threads: an OpenMP team that the parent started does
    # not survive fork(), and libgomp hangs in the child at its next parallel region.
    if f is None or not getattr(torch._C, "has_openmp", False) or _fork.in_child:
        return 0
    address = _compat.loaded_openmp_parallel()
    if address:
        f.use_openmp(address)
    return address


def _np(t: Any) -> Any:
    """A CPU tensor's memory as a NumPy array (no copy); floats and None as they are."""
    return t if t is None or isinstance(t, float) else t.detach().numpy()


_CODES: dict[Any, str] = {}


def _code(t: Any) -> str | None:
    """The C kernels' type code of a tensor's dtype ('f', 'd', '?'), or None."""
    if not _CODES:
        _CODES.update({torch.float32: "f", torch.float64: "d", torch.bool: "?"})
    return _CODES.get(t.dtype)


def _c_operands(z: Any, x: Any, q: Any) -> tuple[Any, ...] | None:
    """``(x, z, q, held)`` for one C call straight on the memory of contiguous CPU
    tensors (``(address, n, code)`` operands: no NumPy views), for a number ``q``;
    None where the caller must take the NumPy route (other operands, no C kernels, or
    an array of several chunks without C threads). ``held``: the storages read by
    address; the caller keeps them until the C call returns, so that another thread's
    ``x.set_(...)`` cannot free that memory under it (an address outside the storage
    held, after such a swap, is declined)."""
    f = _numpy._fused
    if f is None or type(q) is not float:
        return None
    xc, zc = _code(x), _code(z)
    n = x.numel()
    if (xc is None or xc == "?" or (zc != xc and zc != "?") or z.numel() != n
            or not x.is_cpu or not z.is_cpu or (n > _numpy.CHUNK and not f.POOL)
            or not x.is_contiguous() or not z.is_contiguous()):
        return None
    # (the callers ruled out other layouts and pending negations: plain_memory)
    xs, zs = x.untyped_storage(), z.untyped_storage()
    xa, za = x.data_ptr(), z.data_ptr()
    xn, zn = _SIZES[xc], _SIZES[zc]
    if not (_inside(xs, xa, n * xn) and _inside(zs, za, n * zn)) or xa % xn or za % zn:
        return None
    return (xa, n, xc), (za, n, zc), q, (xs, zs)


def _inside(storage: Any, address: int, nbytes: int) -> bool:
    """Whether ``nbytes`` at ``address`` lie in ``storage`` (and the address is real)."""
    base = storage.data_ptr()
    return bool(address) and base <= address and address + nbytes <= base + storage.nbytes()


_SIZES = {"f": 4, "d": 8, "?": 1}


def plain_by_address(z: Any, x: Any, q: float, reduction: str, threads: int) -> Any:
    """The plain loss of CPU tensors without a gradient (``"none"``, or the float64
    sum or mean over every element), by one C call on their memory; None where
    :func:`_c_operands` declines them."""
    c = _c_operands(z, x, q)
    if c is None:
        return None
    *operands, _held = c  # (kept alive until the C call returns)
    dt = _NP_DTYPES[c[0][2]]
    if reduction == "none":
        out = np.empty(x.shape, dt)
        _numpy._fused.loss(*operands, out, threads)
        return torch.from_numpy(out)
    total = np.float64(_numpy._fused.loss_sum(*operands, threads))
    return torch.from_numpy(np.asarray(total if reduction == "sum" else total / c[0][1], dt))


_NP_DTYPES: dict[str, Any] = {"f": np.dtype(np.float32), "d": np.dtype(np.float64)}


def labels_in_unit(z: Any) -> bool:
    """Whether every label of a CPU tensor is in [0, 1] (bool ones are), in one C pass
    where it can (the rule of :func:`wce_xp._native._numpy.in_range`)."""
    code = _code(z)
    if code == "?":
        return True
    f = _numpy._fused_module
    # (the callers ruled out other layouts and pending negations: plain_memory)
    if f is not None and code is not None and z.is_contiguous():
        held = z.untyped_storage()  # (the memory read by address, as in _c_operands)
        address, n = z.data_ptr(), z.numel()
        if _inside(held, address, n * _SIZES[code]) and not address % _SIZES[code]:
            return bool(f.within((address, n, code), 0.0, 1.0))
    return _numpy.in_range(z.detach().numpy(), 0.0, 1.0)


def _run(route: str, fn: str, z: Any, x: Any, q: Any) -> Any:
    if route == "numpy":
        res = getattr(_numpy, fn)(_np(z), _np(x), _np(q), threads=_threads(x))
        return torch.from_numpy(res) if fn != "grad_hess" else tuple(
            torch.from_numpy(r) for r in res)
    import cupy

    from . import _cupy

    qc = q if isinstance(q, float) else cupy.from_dlpack(q.detach())
    with cupy_stream(x):
        res = getattr(_cupy, fn)(cupy.from_dlpack(z.detach()), cupy.from_dlpack(x.detach()), qc)
    return torch.from_dlpack(res) if fn == "weighted_loss" else tuple(
        torch.from_dlpack(r) for r in res)


def grad_graph(z: Any, x: Any, q: Any) -> Any:
    """The generic gradient (:func:`wce_xp._generic._core.grad`) in differentiable torch
    ops, for the backward passes under ``create_graph=True`` (double backward). Bool
    labels are cast to the logits' dtype."""
    return _core.grad(z.to(x.dtype), x, q, xp=_compat.array_namespace(x))


def cupy_stream(x: Any) -> Any:
    """A context that runs CuPy on the tensor's current torch stream (a no-op on the
    default stream, which both libraries share)."""
    import contextlib

    import cupy
    ts = torch.cuda.current_stream(x.device)
    if ts.cuda_stream == 0:
        return contextlib.nullcontext()
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:
        try:
            return from_external(ts)
        except Exception:
            pass
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(ts.cuda_stream)


def _batched(go: Any) -> bool:
    """An incoming gradient without memory of its own: batched by ``vmap`` (PyTorch
    runs the backward pass under it for ``is_grads_batched=True``, batched gradient
    checks and vectorized Jacobians). Only tensor operations apply to it: no value
    reads, no writes."""
    try:
        go.data_ptr()
    except RuntimeError:
        return True
    return False


def _one_value(go: Any) -> float:
    """The value of an incoming gradient known to hold one value broadcast (``.sum()``
    and ``.mean()`` expand a 0-d tensor): the 0-d tensor it views where it is one of
    its dtype (the common case, read without making a view), else its first element
    through itself (a view's base may be of another dtype: ``.real`` of a complex)."""
    if not go.dim():
        return float(go)
    base_of = tensor_getters()[1]
    base = None if base_of is None else base_of(go)
    if base is not None and base.dtype == go.dtype and base.numel() == 1:
        return float(base)
    return float(go.as_strided((), ()))


def _times(g: Any, go: Any) -> Any:
    """The gradient ``g`` that the forward pass computed (which only this backward pass
    holds) times the incoming gradient ``go``, in place where that is exact: nothing to
    do for ``.sum()``'s ones, one multiply by a number for any gradient of one value
    broadcast (``.mean()``), else one elementwise multiply."""
    if _batched(go) or go.dtype != g.dtype or go.device != g.device or not g.numel():
        return go * g
    if go.dim() and any(go.stride()):  # a gradient of its own per element
        return g.mul_(go) if go.shape == g.shape else g * go
    s = _one_value(go)
    return g if s == 1.0 else g.mul_(s)


def _watch(z: Any, x: Any) -> tuple[Any, ...] | None:
    """The tensors a forward pass read with their version counters, for
    :func:`_unchanged`; None where PyTorch has no readable counter."""
    version_of = tensor_getters()[0]
    return None if version_of is None else (z, x, version_of(z), version_of(x))


def _unchanged(ctx: Any) -> bool:
    """Whether no tensor the forward pass read was modified in place since: PyTorch's
    own check, made without unpacking the saved tensors (which costs time every
    step). False where it cannot tell: the caller then unpacks them, and PyTorch
    raises its own error for a modified one."""
    w = getattr(ctx, "watch", None)
    version_of = tensor_getters()[0]
    if w is None or version_of is None:
        return False
    return bool(version_of(w[0]) == w[2] and version_of(w[1]) == w[3])


def _make_function() -> Any:
    class WeightedLoss(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, z: Any, x: Any, q: Any, route: str) -> Any:
            ctx.save_for_backward(z, x)
            ctx.q = q
            ctx.route = route
            ctx.g = []
            if route == "numpy":  # the loss and its gradient in one C pass, if it takes them
                c = _c_operands(z, x, q)
                if c is not None:
                    *operands, _held = c  # (kept alive until the C call returns)
                    dt = _NP_DTYPES[c[0][2]]
                    out, g = np.empty(x.shape, dt), np.empty(x.shape, dt)
                    _numpy._fused.loss_grad(*operands, 1.0, out, g, _threads(x))
                    ctx.g.append(torch.from_numpy(g))
                    ctx.watch = _watch(z, x)
                    return torch.from_numpy(out)
                both = _numpy.loss_and_grad(_np(z), _np(x), _np(q), _threads(x))
                if both is not None:
                    ctx.g.append(torch.from_numpy(both[1]))
                    return torch.from_numpy(both[0])
            return _run(route, "weighted_loss", z, x, q)

        @staticmethod
        def backward(ctx: Any, go: Any) -> Any:
            # The gradient the forward pass left, taken by one backward pass only:
            # list.pop is atomic, so of two backward passes through one graph at once
            # (retain_graph=True) one gets it and the other recomputes.
            try:
                g = ctx.g.pop()
            except IndexError:
                g = None
            if g is not None and _unchanged(ctx) and not torch.is_grad_enabled():
                return None, _times(g, go), None, None
            # PyTorch's check that no input was modified in place since the forward
            # pass raises here, as for its own operations
            z, x = ctx.saved_tensors
            q = ctx.q
            if torch.is_grad_enabled():  # create_graph=True: differentiable torch ops
                return None, go * grad_graph(z, x, q), None, None
            if g is not None:
                return None, _times(g, go), None, None
            plain = (not _batched(go) and go.dtype == x.dtype and go.device == x.device
                     and not go.is_neg())  # (.numpy() refuses a pending negation)
            if ctx.route == "numpy" and plain:  # the incoming gradient in the kernel's pass
                g = _numpy.grad(_np(z), _np(x), _np(q), scale=go.detach().numpy(),
                                threads=_threads(x))
                return None, torch.from_numpy(g), None, None
            if ctx.route == "numpy":
                g = _run("numpy", "grad", z, x, q)
            else:  # CuPy's kernel gives the Hessian too
                g, _ = _run(ctx.route, "grad_hess", z, x, q)
            return None, go * g, None, None

    return WeightedLoss


def _make_reduced_function() -> Any:
    tensor = torch.Tensor

    class ReducedLoss(torch.autograd.Function):  # type: ignore[misc]
        """sum/mean/weighted_mean over every element, the loss never materialized; the
        backward pass computes the gradient only (one chunked pass on CPU)."""

        @staticmethod
        def forward(ctx: Any, x: Any, z: Any, q: Any, w: Any, m: Any, reduction: str) -> Any:
            n = x.numel()
            ctx.g = []
            c = None if w is not None or m is not None or reduction == "weighted_mean" \
                or not n else _c_operands(z, x, q)
            if c is not None:  # one C pass on the tensors' memory: the sum and gradient
                *operands, _held = c  # (kept alive until the C call returns)
                g = np.empty(x.shape, _NP_DTYPES[c[0][2]])
                total = _numpy._fused.loss_sum_grad(
                    *operands, 1.0 if reduction == "sum" else 1.0 / n, g, _threads(x))
                ctx.g.append(g)
                ctx.watch = _watch(z, x)
                ctx.save_for_backward(z, x)
                ctx.q, ctx.w, ctx.m, ctx.q_float = False, False, False, q
                ctx.denom = None if reduction == "sum" else float(n)
                value = total if reduction == "sum" else total / n
                return torch.from_numpy(np.asarray(value, g.dtype))
            xn = x.detach().numpy()
            zn = z.detach().numpy()
            saved = [z, x]
            qn = q
            if type(q) is tensor:
                qn = q.detach().numpy()
                saved.append(q)
            wn = mn = None
            if w is not None:
                wn = w.detach().numpy()
                saved.append(w)
            if m is not None:
                mn = m.detach().numpy()
                saved.append(m)
            both = None
            n = float(xn.size)
            if wn is None and mn is None and reduction != "weighted_mean" and n:
                # one C pass: the sum, and the gradient that backward will want
                both = _numpy.sum_and_grad(zn, xn, qn, 1.0 if reduction == "sum" else 1.0 / n,
                                           _threads(x))
            if both is not None:
                total, g = both
                ctx.g.append(g)
                value, denom = (total, None) if reduction == "sum" else (total / n, n)
            else:
                value, denom = _numpy.loss(
                    zn, xn, qn, weight=wn, mask=mn, reduction=reduction,
                    axes=tuple(range(x.ndim)), threads=_threads(x), with_denominator=True)
            ctx.save_for_backward(*saved)
            ctx.q, ctx.w, ctx.m = qn is not q, w is not None, m is not None
            ctx.q_float = q if qn is q else None
            ctx.denom = None if denom is None else float(denom)
            return torch.from_numpy(np.asarray(value, xn.dtype))

        @staticmethod
        def backward(ctx: Any, go: Any) -> Any:
            try:  # the forward's gradient, for one backward pass only (as above)
                gn = ctx.g.pop()
            except IndexError:
                gn = None
            none = (None,) * 5
            grad_mode = torch.is_grad_enabled()
            batched = _batched(go)
            go_value = 1.0 if batched or grad_mode else _one_value(go)
            if (gn is not None and not grad_mode and not batched and go_value == 1.0
                    and _unchanged(ctx)):
                return (torch.from_numpy(gn), *none)  # computed by the forward pass
            z, x, *rest = ctx.saved_tensors  # (PyTorch's in-place check raises here)
            it = iter(rest)
            q = next(it) if ctx.q else ctx.q_float
            w = next(it) if ctx.w else None
            m = next(it) if ctx.m else None
            if grad_mode:  # create_graph=True: differentiable torch ops
                g = grad_graph(z, x, q)
                if w is not None:
                    g = g * w
                if m is not None:
                    g = torch.where(m, g, 0.0)
                return (g * (go if ctx.denom is None else go / ctx.denom), *none)
            if gn is not None and go_value == 1.0:  # computed by the forward pass
                out = torch.from_numpy(gn)
                return (out * go if batched else out, *none)
            # one chunked pass, the incoming gradient and the mean's 1/n folded in
            scale = go_value if ctx.denom is None else go_value / ctx.denom
            gn = _numpy.grad(z.numpy(), x.detach().numpy(), q if ctx.q_float is not None
                             else q.numpy(), scale=scale, threads=_threads(x))
            if w is not None:
                np.multiply(gn, w.numpy(), out=gn)
            if m is not None:
                np.multiply(gn, m.numpy(), out=gn)  # masked elements: z = x = 0, finite
            out = torch.from_numpy(gn)
            return (out * go if batched else out, *none)

    return ReducedLoss


_FUNCTION: Any = None
_REDUCED: Any = None


def _function() -> Any:
    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _make_function()
    return _FUNCTION


def _reduced() -> Any:
    global _REDUCED
    if _REDUCED is None:
        _REDUCED = _make_reduced_function()
    return _REDUCED


_APPLY_LOSS: Any = None
_APPLY_REDUCED: Any = None


def apply_loss(z: Array, x: Array, q: Array | float) -> Array:
    """The elementwise autograd Function on CPU tensors the caller has checked (no
    transform, no wrapped tensor: :func:`wce_xp._compat.function_apply`)."""
    global _APPLY_LOSS
    if _APPLY_LOSS is None:
        _APPLY_LOSS = _compat.function_apply(_function())
    return _APPLY_LOSS(z, x, q, "numpy")


def apply_reduced(z: Array, x: Array, q: Array | float, reduction: str) -> Array:
    """The fused reduction's autograd Function (no weight or mask) on CPU tensors the
    caller has checked (as for :func:`apply_loss`)."""
    global _APPLY_REDUCED
    if _APPLY_REDUCED is None:
        _APPLY_REDUCED = _compat.function_apply(_reduced())
    return _APPLY_REDUCED(x, z, q, None, None, reduction)


def _cpu_reduced(z: Array, x: Array, q: Array | float, weight: Array | None,
                 mask: Array | None, reduction: str) -> Array | None:
    """A reduction over every element of CPU tensors, fused, with a gradient-only
    backward where only the logits require a gradient; None elsewhere."""
    others = [t for t in (z, q, weight, mask) if t is not None and not isinstance(t, float)]
    if any(type(t) is not torch.Tensor or t.device != x.device or not plain_memory(t)
           for t in others):
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in others):
        return None  # a gradient in labels or weights: the generic graph
    if not (torch.is_grad_enabled() and x.requires_grad):
        value = _numpy.loss(_np(z), _np(x), _np(q), weight=_np(weight), mask=_np(mask),
                            reduction=reduction, axes=tuple(range(x.ndim)),
                            threads=_threads(x))
        return torch.from_numpy(np.asarray(value))
    return _reduced().apply(x, z, q, weight, mask, reduction)


def _cuda_reduced(z: Array, x: Array, q: Array | float, weight: Array | None,
                  mask: Array | None, reduction: str, axes: tuple[int, ...]) -> Array | None:
    """CUDA tensors without a gradient through CuPy's fused reduction; None elsewhere."""
    import cupy

    from . import _cupy

    tensors = [t for t in (z, x, q, weight, mask) if isinstance(t, torch.Tensor)]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None  # autograd needs the elementwise graph
    if any(type(t) is not torch.Tensor or t.device != x.device for t in tensors):
        return None

    def cp_(t: Any) -> Any:
        return t if t is None or isinstance(t, float) else cupy.from_dlpack(t.detach())

    with cupy_stream(x):
        res = _cupy.reduced_loss(cp_(z), cp_(x), cp_(q), weight=cp_(weight), mask=cp_(mask),
                                 reduction=reduction, axes=axes)
    return torch.from_dlpack(res)


def reduced_loss(z: Array, x: Array, q: Array | float, *, weight: Array | None,
                 mask: Array | None, reduction: str, axes: tuple[int, ...],
                 acc_dtype: Any = None) -> Array | None:
    """The registry's ``reduced``: a reduction over every axis, fused (the CPU kernels,
    Triton's or CuPy's by where the tensors are); None elsewhere."""
    if reduction not in ("sum", "mean", "weighted_mean") or axes != tuple(range(x.ndim)):
        return None
    route = _route(x)
    if route == "numpy":
        return _cpu_reduced(z, x, q, weight, mask, reduction)
    if route == "triton":
        from . import _triton

        if weight is not None or mask is not None:
            return None
        return _triton.reduced(z, x, q, reduction)
    if route == "cupy":
        return _cuda_reduced(z, x, q, weight, mask, reduction, axes)
    return None


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array | None:
    """The loss through the fused kernel, or None where the generic path must run."""
    route = _route(x)
    if route is None or type(z) is not torch.Tensor or not plain_memory(z):
        return None
    if route == "triton":
        from . import _triton

        return _triton.loss(z, x, q)
    if not isinstance(q, float) and (type(q) is not torch.Tensor or q.requires_grad
                                     or not plain_memory(q)):
        return None
    if z.requires_grad or z.device != x.device:
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return _function().apply(z, x, q, route)
    return _run(route, "weighted_loss", z, x, q)


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array] | None:
    """Analytic gradient and Hessian through the fused kernel (no autograd graph)."""
    route = _route(x)
    if route is None or route == "triton" or type(z) is not torch.Tensor or not plain_memory(z):
        return None  # (Triton: the generic grad_hess, one fusion under torch.compile too)
    if not isinstance(q, float) and (type(q) is not torch.Tensor or not plain_memory(q)):
        return None
    if (x.requires_grad or z.requires_grad or getattr(q, "requires_grad", False)) and \
            torch.is_grad_enabled():
        return None
    result: tuple[Array, Array] = _run(route, "grad_hess", z, x, q)
    return result


# --- the fast lane: the commonest call on CPU tensors, before the front door -----------

_lane: tuple[Any, ...] | None = None  # what the lane compares with, loaded once


def _lane_types() -> tuple[Any, ...]:
    global _lane
    if _lane is None:
        _lane = (torch.Tensor, torch.float32, torch.float64, torch.bool, torch,
                 _compat.torch_probes())
    return _lane


def fast_call(labels: Any, logits: Any, pos_weight: Any, validate: Any,
              reduction: str) -> Any:
    """A call without options on plain CPU tensors of float32/float64 logits, labels of
    their dtype (or bool) and shape without a gradient, and a number or PyTorch's own
    ``pos_weight`` tensor: through the autograd Functions where the logits require a
    gradient, else by one C call on the tensors' memory. None for anything else (the
    front door then decides, with its errors)."""
    tensor, f32, f64, tbool, torch, probes = _lane or _lane_types()
    x, z = logits, labels
    if type(z) is not tensor or reduction not in _numpy.TAKES:
        return None
    # (first: under a trace, shape tests would be recorded as constants)
    if (probes.forward_ad() or probes.compiling() or probes.jit_tracing()
            or probes.transforms_active() or probes.wrapped(x) or probes.wrapped(z)):
        return None
    dt = x.dtype
    if ((dt is not f32 and dt is not f64) or (z.dtype is not dt and z.dtype is not tbool)
            or not x.is_cpu or not z.is_cpu or z.shape != x.shape or not x.numel()):
        return None
    enabled = torch.is_grad_enabled()
    if enabled and z.requires_grad:
        return None  # a gradient in the labels: the generic graph
    checked = _args.validate_mode(validate)
    if checked is None or not (plain_memory(x) and plain_memory(z)):
        return None
    if type(pos_weight) is tensor:  # PyTorch's own pos_weight: a CPU tensor, no gradient
        if (not pos_weight.is_cpu or pos_weight.requires_grad or probes.wrapped(pos_weight)
                or pos_weight.dtype is not dt or not plain_memory(pos_weight)):
            return None
        if not pos_weight.dim():
            q: Any = _args.pos_weight_number(float(pos_weight), checked)
        else:
            qd = pos_weight.detach()
            qn = _numpy._q_array(qd.numpy(), x.detach().numpy(), checked)
            q = qn if isinstance(qn, float) or qn is None else qd
    else:
        q = _args.pos_weight_number(pos_weight, checked)
    if q is None or (checked and not labels_in_unit(z)):
        return None
    if enabled and x.requires_grad:  # the autograd Functions
        if reduction == "none":
            return apply_loss(z, x, q)
        return apply_reduced(z, x, q, reduction)
    threads = _threads(x)  # (1 for a call the C kernels run on one thread)
    if type(q) is float:  # one C call on the tensors' memory (held for the call)
        out = plain_by_address(z, x, q, reduction, threads)
        if out is not None:
            return out
    # Detached aliases hold the storage the kernels read for the whole call, whatever
    # another thread does to the caller's tensors meanwhile (x.set_(...)).
    xd, zd = x.detach(), z.detach()
    qe = q if isinstance(q, float) else q.numpy()
    return torch.from_numpy(_numpy.plain_or_chunked(zd.numpy(), xd.numpy(), qe, reduction,
                                                    threads))


# --- the registry entry --------------------------------------------------------------

def _state(tensors: list[Any], device: Any) -> tuple[bool, bool, bool]:
    traced, native = _compat.torch_state(tensors)
    return traced, native, device is not None and device.type != "cpu"


def _float64_sums(device: Any) -> bool:
    return device is None or device.type != "mps"  # no float64 on Apple GPUs


def _output_dtype(dtype: Any, device: Any) -> Any:
    """PyTorch's autocast runs binary_cross_entropy_with_logits in float32 (its "fp32"
    list): half-precision logits under an active autocast give a float32 result."""
    dev_type = device.type if device is not None else "cpu"
    try:
        on = bool(torch.is_autocast_enabled(dev_type))
    except TypeError:  # pragma: no cover - torch < 2.4 has no device argument
        on = bool(torch.is_autocast_enabled())
    return torch.float32 if on else dtype


def verdicts(checks: list[Check]) -> list[bool]:
    """The registry's ``in_range``: a min and a max per tensor on its device, then one
    read of every verdict."""
    out = []
    for c in checks:
        a = c.array.detach()
        if c.mask is not None:
            a = torch.where(c.mask, a, c.lo)
        if a.numel() == 0:
            out.append(torch.ones((), dtype=torch.bool, device=a.device))
            continue
        mn, mx = torch.aminmax(a)
        out.append(_core.bounds_hold(mn, mx, c.lo, c.hi))
    flags: list[bool] = torch.stack(out).tolist()  # the one read
    return flags


@functools.cache
def _warm_up() -> None:
    """Call torch.exp once, on one element, before any real work: PyTorch 2.13 (CPU,
    AVX512, two intra-op threads) computed the worker thread's half of the *first*
    ``torch.exp`` call in a process with a relative error of 1.5e-4 in some fresh
    processes (BENCHMARKS.md); one single-element call first made every process
    exact. tests/test_native.py caught it."""
    torch.exp(torch.zeros(1))


def _fast_lanes() -> tuple[tuple[type, Any], ...]:
    return ((torch.Tensor, fast_call),)


# The CPU kernels of the NumPy backend on the tensors' memory, CuPy's or Triton's on
# CUDA; inductor vectorizes the generic code's abs form.
BACKEND = Backend(
    name="torch",
    state=_state,
    counts_by_shape=True,
    zero_form="additive",
    float64_sums=_float64_sums,
    output_dtype=_output_dtype,
    warm_up=_warm_up,
    loss=weighted_loss,
    reduced=reduced_loss,
    grad_hess=grad_hess,
    in_range=verdicts,
    fast_lanes=_fast_lanes(),
)
