"""The express lane: the commonest call, answered in a few microseconds.

A training loop calls the loss thousands of times per epoch on small batches, where
the general front door (:func:`wce_xp._validation.prepare`: classification, conversion,
broadcasting, the options) costs more than the arithmetic. This lane takes only calls
it can decide by a handful of exact type and dtype tests: NumPy arrays or PyTorch CPU
tensors of float32/float64 logits, labels of the same dtype (or bool) and shape, a
Python number, nothing, or an array of the logits' library and dtype holding one
value or one per class as ``pos_weight``, no weight, mask, smoothing or axis, no
``xp``, and (PyTorch) a gradient in the logits at most. It returns None for anything
else (and for anything it would refuse), and the general path then decides, with its
errors. The arithmetic is the NumPy engine's one-chunk kernel and the native path's
autograd Functions, the same as the general path's, so results are bitwise identical
(tests/test_engine.py compares them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dispatch
from ._native import _numpy
from ._validation import numpy_in_range

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # native byte order only
_BOOL = np.dtype(np.bool_)
_torch_types: tuple[Any, ...] | None = None  # (Tensor, float32, float64, bool, state)


def _checked(validate: Any) -> bool | None:
    """Whether values are checked; None for an invalid ``validate`` (the general path
    raises)."""
    if validate is True or (type(validate) is str and validate == "always"):
        return True
    return False if validate is False else None


def _q(pos_weight: Any, checked: bool) -> float | None:
    if pos_weight is None:
        return 1.0
    t = type(pos_weight)
    if t is not float and t is not int:
        return None
    q = float(pos_weight)
    if checked and not 0.0 <= q < math.inf:
        return None  # the general path raises
    return q


def _q_array(q: np.ndarray, x: np.ndarray, checked: bool) -> np.ndarray | float | None:
    """A NumPy ``pos_weight`` of the logits' dtype: one value (as a float) or one per
    class along the last axis; None for anything else or anything refused."""
    if q.dtype != x.dtype or not x.ndim:
        return None
    if q.ndim == 0:
        return _q(float(q), checked)
    if q.ndim != 1 or q.shape[0] != x.shape[-1] or not q.size:
        return None
    if checked and not numpy_in_range(q, 0.0, math.inf):
        return None
    return q


_MAX = np.maximum.reduce


def _labels_ok(z: np.ndarray) -> bool:
    """Whether every label is in [0, 1] (bool labels are): one C pass, where the
    kernels are built and the labels contiguous (a NumPy reduction here measured ~10 µs
    of slowdown of the autograd pass that follows it in a training step, far beyond
    its own cost); else one integer max over the bits."""
    if z.dtype == _BOOL:
        return True
    if _fused is not None and _numpy.c_ready(z):
        return bool(_fused.within(z, 0.0, 1.0))
    # Labels in [+0, 1] are exactly the floats whose bits, read as an unsigned integer,
    # are at most those of 1.0: negative numbers (-0.0 included) have the sign bit and
    # NaN is above infinity. A -0.0 label (in range, but refused here) goes to the
    # general path, which takes it.
    bits, one = _ONE_BITS[z.dtype]
    return bool(_MAX(z.view(bits), axis=None) <= one)


_ONE_BITS: dict[Any, tuple[Any, Any]] = {
    np.dtype(np.float32): (np.dtype(np.uint32), np.uint32(0x3F800000)),
    np.dtype(np.float64): (np.dtype(np.uint64), np.uint64(0x3FF0000000000000))}
_fused = _numpy._fused_module


def numpy_call(labels: Any, logits: Any, pos_weight: Any, validate: Any,
               reduction: str) -> Any:
    """The loss of one NumPy call, or None where the general path must decide."""
    x, z = logits, labels
    if (x.dtype not in _FLOATS or (z.dtype != x.dtype and z.dtype != _BOOL)
            or z.shape != x.shape or not x.size or _dispatch._FORCE_GENERIC):
        return None
    checked = _checked(validate)
    if checked is None:
        return None
    q = _q_array(pos_weight, x, checked) if type(pos_weight) is np.ndarray else \
        _q(pos_weight, checked)
    if q is None or (checked and not _labels_ok(z)):
        return None
    return _engine(z, x, q, checked, reduction, None)


def _engine(z: np.ndarray, x: np.ndarray, q: Any, nonneg: bool, reduction: str,
            threads: int | None) -> np.ndarray:
    out = _numpy.plain_quiet(z, x, q, nonneg, reduction, threads)
    if out is None:
        out = _numpy.loss(z, x, q, reduction=reduction, axes=tuple(range(x.ndim)),
                          nonneg=nonneg, threads=threads)
    return out if reduction == "none" else np.asarray(out, x.dtype)


def _torch() -> tuple[Any, ...]:
    global _torch_types
    if _torch_types is None:
        import torch

        from ._compat import require_supported, torch_probes

        require_supported("torch")
        _torch_types = (torch.Tensor, torch.float32, torch.float64, torch.bool, torch,
                        torch_probes(), torch.strided)
    return _torch_types


def torch_call(labels: Any, logits: Any, pos_weight: Any, validate: Any,
               reduction: str) -> Any:
    """The loss of one call on CPU tensors (through the native path's autograd Functions
    where the logits require a gradient), or None."""
    tensor, f32, f64, tbool, torch, probes, strided = _torch_types or _torch()
    x, z = logits, labels
    if type(z) is not tensor or type(x) is not tensor or _dispatch._FORCE_GENERIC:
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
    grad = enabled and x.requires_grad
    if enabled and z.requires_grad:
        return None  # a gradient in the labels: the general path's generic graph
    checked = _checked(validate)
    if checked is None:
        return None
    size = 4 if dt is f32 else 8
    if not (_plain(x, strided, size) and _plain(z, strided, 1 if z.dtype is tbool else size)):
        return None
    native_torch = _native_torch or _load_native_torch()
    if type(pos_weight) is tensor:  # PyTorch's own pos_weight: a CPU tensor, no gradient
        if (not pos_weight.is_cpu or pos_weight.requires_grad or probes.wrapped(pos_weight)
                or pos_weight.dtype is not dt or not _plain(pos_weight, strided, size)):
            return None
        if not pos_weight.dim():
            q: Any = _q(float(pos_weight), checked)
        else:
            qd = pos_weight.detach()
            qn = _q_array(qd.numpy(), x.detach().numpy(), checked)
            q = qn if isinstance(qn, float) or qn is None else qd
    else:
        q = _q(pos_weight, checked)
    if q is None or (checked and not native_torch.labels_in_unit(z)):
        return None
    if grad:  # the autograd Functions of the native path, without the front door
        if reduction == "none":
            return native_torch.apply_loss(z, x, q, checked)
        return native_torch.apply_reduced(z, x, q, reduction, checked)
    threads = native_torch._threads(x)  # (1 for a call the C kernels run on one thread)
    if type(q) is float:  # one C call on the tensors' memory (held for the call)
        out = native_torch.plain_by_address(z, x, q, reduction, threads)
        if out is not None:
            return out
    # Detached aliases hold the storage the kernels read for the whole call, whatever
    # another thread does to the caller's tensors meanwhile (x.set_(...)).
    xd, zd = x.detach(), z.detach()
    qe = q if isinstance(q, float) else q.numpy()
    return torch.from_numpy(_engine(zd.numpy(), xd.numpy(), qe, checked, reduction, threads))


def _plain(t: Any, strided: Any, size: int) -> bool:
    """The express lane's form of :func:`wce_xp._native._torch.plain_memory` for a
    non-empty CPU tensor of a known element size: strided, no pending negation, real
    storage aligned to ``size`` (conjugation is for complex tensors only)."""
    if t.layout is not strided or t.is_neg():
        return False
    address = t.data_ptr()
    return bool(address) and not address % size


_native_torch: Any = None


def _load_native_torch() -> Any:
    global _native_torch
    from ._native import _torch as native_torch

    _native_torch = native_torch
    return native_torch
