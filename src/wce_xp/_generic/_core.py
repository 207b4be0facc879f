"""Array-API-only implementations. Every function takes ``xp`` as a required keyword.

These are the reference implementations: native fast paths in ``wce_xp._native``
are tested for agreement with them. Inputs here are already validated, converted
to one floating compute dtype (float32 or float64) and to one device.

Notation: ``z`` labels, ``x`` logits, ``q`` pos_weight, and

* ``a = q·z``      the weight of softplus(-x) (the positive part of the loss),
* ``b = 1 - z``    the weight of softplus(x)  (the negative part),
* ``l = a + b``    TensorFlow's ``1 + (q - 1)·z``.

The loss is ``a·softplus(-x) + b·softplus(x)``. With ``softplus(±x) =
max(±x, 0) + log1p(exp(-|x|))`` and the two ``max`` terms never both non-zero::

    L = c·|x| + l·log1p(exp(-|x|)),   c = a where x < 0 else b

Every term is non-negative, so nothing cancels (TensorFlow's ``(1-z)·x +
l·(log1p(exp(-|x|)) + max(-x, 0))`` subtracts two nearly equal numbers for
``x < 0``, which is where it loses every digit).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .._compat import device

Array = Any

# The oldest revision of the standard this code is written against: the generic code
# uses nothing newer (tests/test_foreign.py runs it on array-api-strict pinned there).
MIN_API_VERSION = "2023.12"


def _where_takes_scalars(xp: ModuleType) -> bool:
    """Whether ``xp.where`` takes Python scalars: the standard allows it from 2024.12
    (a namespace may also say so itself, as wce_xp's TensorFlow one does). Read on
    every call: a namespace's revision can change at run time (array-api-strict's
    flags)."""
    version = str(getattr(xp, "__array_api_version__", MIN_API_VERSION))
    return version >= "2024.12" or bool(getattr(xp, "WHERE_TAKES_SCALARS", False))


def where(cond: Array, a: Array | float, b: Array | float, *, xp: ModuleType) -> Array:
    """``xp.where(cond, a, b)`` where ``a`` or ``b`` may be a Python number, on every
    revision of the standard: for a namespace older than 2024.12 the number becomes a
    0-d array of the other operand's dtype on its device (the result's dtype either
    way)."""
    a_num, b_num = isinstance(a, int | float), isinstance(b, int | float)
    if (a_num or b_num) and not _where_takes_scalars(xp):
        ref: Any = b if a_num else a
        dev = device(ref)  # (array-api-compat's: tracers have no .device of their own)
        if a_num:
            a = xp.asarray(a, dtype=ref.dtype, device=dev)
        if b_num:
            b = xp.asarray(b, dtype=ref.dtype, device=dev)
    return xp.where(cond, a, b)

def _neg_abs(x: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    """``(x >= 0, -|x|)`` with ``-|x|`` as a selection of ``-x`` and ``x``.

    Its values are those of ``-abs(x)``, but every derivative that autodiff takes
    through it is the derivative of one analytic branch (``-x`` at ``x = 0``), so
    functions built on it keep exact derivatives of every order at 0, where
    ``abs'(0) = 0`` would make them wrong.
    """
    pos = x >= 0
    return pos, xp.where(pos, -x, x)


def weighted_loss(
    z: Array, x: Array, q: Array | float, *, xp: ModuleType, zero_form: str = "select"
) -> Array:
    """Elementwise ``q·z·softplus(-x) + (1 - z)·softplus(x)``, accurate to a few ulps.

    ``z`` and ``x`` have the same shape; ``q`` is a Python float or an array that
    broadcasts to it.

    ``abs'(0) = 0`` under autodiff would make the derivative at ``x = 0`` wrong (it is
    TensorFlow's gradient bug); ``zero_form`` says how that is avoided. The values are
    the same either way; the two forms exist because the compilers that fuse this
    code each vectorize only one of them (measured in BENCHMARKS.md):

    * ``"select"``: ``|x|`` is a selection of ``x`` and ``-x``, so autodiff
      differentiates the analytic branch ``b·x + l·log1p(exp(-x))``, which *is* L for
      every real x (``softplus(x) = x + softplus(-x)``): derivatives of every order are
      exact at 0. XLA (JAX, TensorFlow) fuses it; inductor's code for it is slower.
    * ``"additive"``: ``|x|`` is ``abs(x)``, and ``x0·((b - a)/2 + l·x0/8)`` is added,
      with ``x0 = x`` where ``x == 0`` and 0 elsewhere: it adds exactly 0 to the value
      and the missing first and second derivatives at 0 (exact gradient and Hessian;
      third and higher derivatives at exactly 0 are not). Inductor fuses it at full
      speed; XLA's CPU code for it is slower.
    """
    a = q * z
    b = 1.0 - z
    lw = a + b
    if zero_form == "select":
        pos, u = _neg_abs(x, xp=xp)
        y = -u
        c = xp.where(pos, b, a)
    else:
        y = xp.abs(x)
        u = -y
        c = xp.where(x < 0, a, b)
    # c·|x| with c = 0 and |x| = inf must be 0 (the limit), not 0·inf = NaN. Zeroing
    # |x| rather than the product keeps autograd finite there too ("double where");
    # a NaN logit still reaches the result through the log1p term, which is never guarded.
    t = lw * xp.log1p(xp.exp(u))
    loss = c * where(c == 0, 0.0, y, xp=xp) + t
    if zero_form == "select":
        # The same values (c·0 + t is t) with a selection as the last operation: XLA's
        # CPU compiler hands a reduction and the arithmetic just before it to a YNNPACK
        # fusion, and materializes every selection that feeds it as an array of its
        # own (four here, one pass each); ending on a selection, the whole loss is one
        # loop fusion and only its result is read by the reduction (BENCHMARKS.md).
        return xp.where(c == 0, t, loss)
    x0 = where(x == 0, x, 0.0, xp=xp)
    return loss + x0 * ((b - a) * 0.5 + (lw * 0.125) * x0)


def sigmoid_pair(x: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    """``(σ(x), σ(-x))`` without overflow: both from ``e = exp(-|x|)``."""
    pos, u = _neg_abs(x, xp=xp)
    e = xp.exp(u)
    r = 1.0 / (1.0 + e)
    er = e * r
    return xp.where(pos, r, er), xp.where(pos, er, r)


def grad(z: Array, x: Array, q: Array | float, *, xp: ModuleType) -> Array:
    """The derivative ``(1 - z)·σ(x) - q·z·σ(-x)`` of :func:`weighted_loss` in ``x``, in
    operations whose own derivatives are accurate too (both sigmoids from
    ``exp(-|x|)``; a ``σ`` differentiated as ``σ(1 - σ)`` cancels in the tails): the
    backward passes of native kernels use it where a second derivative may follow."""
    s_pos, s_neg = sigmoid_pair(x, xp=xp)
    return (1.0 - z) * s_pos - (q * z) * s_neg


def bounds_hold(mn: Any, mx: Any, lo: float, hi: float) -> Any:
    """The value check: ``lo ≤ mn`` and ``mx ≤ hi`` (``mx < hi`` when ``hi`` is inf:
    finite values only), elementwise on any library's scalars or 0-d arrays; NaN fails
    both. ``mn`` and ``mx`` are an array's minimum and maximum."""
    return (mn >= lo) & ((mx < hi) if hi == math.inf else (mx <= hi))


def grad_hess(z: Array, x: Array, q: Array | float, *, xp: ModuleType) -> tuple[Array, Array]:
    """First and second derivative of :func:`weighted_loss` with respect to ``x``.

    ``grad = (1 - z)·σ(x) - q·z·σ(-x)`` and ``hess = (1 + (q - 1)·z)·σ(x)·σ(-x)``,
    with ``σ(x)·σ(-x) = e/(1 + e)²``, ``e = exp(-|x|)`` (even in ``x``, never overflows).
    """
    a = q * z
    b = 1.0 - z
    pos, u = _neg_abs(x, xp=xp)  # exact derivatives of grad and hess at x = 0 too
    e = xp.exp(u)
    one_e = 1.0 + e
    r = 1.0 / one_e
    er = e * r
    s_pos = xp.where(pos, r, er)
    s_neg = xp.where(pos, er, r)
    grad = b * s_pos - a * s_neg
    hess = (a + b) * (e / (one_e * one_e))
    return grad, hess


def _log_or_neg_inf(t: Array, *, xp: ModuleType) -> Array:
    """log(t) with log(0) = -inf but never evaluated at 0: no warning on any backend
    (Dask runs the graph later, outside any error-state context), finite gradients."""
    pos = t > 0
    return where(pos, xp.log(where(pos, t, 1.0, xp=xp)), -math.inf, xp=xp)


def log_one_minus_pt(z: Array, x: Array, *, xp: ModuleType) -> Array:
    """``log(1 - p_t)`` with ``1 - p_t = z·σ(-x) + (1 - z)·σ(x)``, finite for finite ``x``.

    Computed as a log-sum-exp of ``log z - softplus(x)`` and ``log(1-z) - softplus(-x)``:
    never forms ``1 - p_t`` (which underflows to 0 at |x| ≈ 100 in float32, where a
    plain power ``(1 - p_t)**gamma`` with gamma < 1 has an infinite derivative).
    """
    pos, u = _neg_abs(x, xp=xp)
    g = xp.log1p(xp.exp(u))
    zero = xp.zeros_like(x)
    # softplus(±x) = max(±x, 0) + log1p(exp(-|x|)), with max as a selection too
    sp_pos = xp.where(pos, x, zero) + g  # softplus(x)
    sp_neg = xp.where(pos, zero, -x) + g  # softplus(-x)
    u = _log_or_neg_inf(z, xp=xp) - sp_pos
    v = _log_or_neg_inf(1.0 - z, xp=xp) - sp_neg
    big = xp.maximum(u, v)
    small = xp.minimum(u, v)
    # big = -inf only if both are -inf: then 1 - p_t = 0. Keep the difference finite.
    both_inf = big == -math.inf
    diff = where(both_inf, 0.0, small, xp=xp) - where(both_inf, 0.0, big, xp=xp)
    # 1 - p_t ≤ 1 for labels in [0, 1]: rounding must not push the log above 0, so that
    # the modulating factor is ≤ 1 and the focal loss never exceeds the cross-entropy.
    return xp.minimum(big + xp.log1p(xp.exp(diff)), zero)


def focal_loss(
    z: Array,
    x: Array,
    q: Array | float,
    gamma: float | Array,
    alpha: float | Array | None,
    *,
    xp: ModuleType,
    ce: Array | None = None,
) -> Array:
    """Lin et al.'s focal loss ``α_t·(1 - p_t)^γ·L(x, z, q)`` on logits.

    The modulating factor is ``exp(γ·log(1 - p_t))``, at most 1. Where the loss itself
    is infinite (an infinite logit on the wrong side) the factor is replaced by its
    limit, which depends on ``z`` only, so that no ``0·inf`` reaches the gradient.
    ``ce``: the cross-entropy already computed (by the same kernel as the plain loss,
    so that the focal loss is never above it).
    """
    if ce is None:
        ce = weighted_loss(z, x, q, xp=xp)
    if not isinstance(gamma, float) or gamma != 0.0:  # (an array: a traced gamma)
        mod = xp.exp(gamma * log_one_minus_pt(z, x, xp=xp))
        ce_inf = xp.isinf(ce)
        lim = xp.where(x > 0, (1.0 - z) ** gamma, z**gamma)
        finite_part = mod * where(ce_inf, 0.0, ce, xp=xp)
        ce = xp.where(ce_inf, lim * ce, finite_part)
    if alpha is not None:
        ce = (alpha * z + (1.0 - alpha) * (1.0 - z)) * ce
    return ce


def normalize_axis(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """Axis as a sorted tuple of non-negative ints; ``None`` means all axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axes: tuple[object, ...] = (axis,)
    elif isinstance(axis, tuple | list):
        axes = tuple(axis)
    else:
        raise TypeError(f"axis: expected an int or a tuple of ints, got {axis!r}")
    out = []
    for ax in axes:
        if not isinstance(ax, int) or isinstance(ax, bool):
            raise TypeError(f"axis: expected an int or a tuple of ints, got {axis!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis: {ax} is out of range for an array of {ndim} dimensions")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis: repeated axis in {axis!r}")
    return tuple(sorted(out))


def _static_size(shape: Any) -> int | None:
    """The number of elements of a shape whose every extent is known, else None."""
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def reduce_loss(
    loss: Array,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    axes: tuple[int, ...],
    xp: ModuleType,
    acc_dtype: Any = None,
    block: int = 1,
    count_by_sum: bool = False,
) -> Array:
    """Apply weights, a mask and a reduction to an elementwise loss.

    Masked elements are already 0 in ``loss``. ``"mean"`` divides by the number of
    unmasked elements, ``"weighted_mean"`` by their total weight; an empty or
    zero-weight reduction is NaN (computed without a 0/0, so no warning). Sums are
    accumulated in ``acc_dtype`` (float64 for float32 losses where the backend has
    it: a float32 running sum over an axis of millions of rows drifts by 1e-3) and
    returned in that dtype; the caller casts.

    ``block > 1``: a sum over every element, of a size known when tracing that
    ``block`` divides, first adds each run of ``block`` consecutive elements in the
    loss's dtype, then those partial sums in ``acc_dtype``. A sum of ``block`` terms,
    in any order, is within ``(block - 1)·u`` of exact relative to the sum of their
    magnitudes (``u = 2^-24`` for float32: 4.2e-7 for 8 terms), and the accumulator
    reads ``block`` times fewer values (the ``sum_block`` trait of a backend).

    ``count_by_sum``: the mean's count is a sum of ones rather than the extents of the
    shape, for libraries whose arrays may leave elements out (masked arrays) or
    whose extents may be unknown (lazy arrays).
    """
    if weight is not None:
        # A zero weight drops the element: 0 even where the loss is infinite (the
        # zero goes into the loss, not the product, so no 0·inf is ever formed).
        loss = weight * where(weight == 0, 0.0, loss, xp=xp)
        if mask is not None:
            loss = where(mask, loss, 0.0, xp=xp)
    if reduction == "none":
        return loss
    acc = loss.dtype if acc_dtype is None else acc_dtype
    size = _static_size(loss.shape)
    if (block > 1 and acc != loss.dtype and len(axes) == loss.ndim and size
            and size % block == 0):
        runs = xp.sum(xp.reshape(loss, (size // block, block)), axis=1)
        total = xp.sum(runs, dtype=acc)
    else:
        total = xp.sum(loss, axis=axes, dtype=acc)
    if reduction == "sum":
        return total
    shape = loss.shape
    if reduction == "mean":
        if not count_by_sum and mask is None:
            n = 1
            for ax in axes:  # (extents may be traced values: torch.jit.trace's)
                n *= shape[ax]
            if n == 0:
                return xp.full_like(total, math.nan)
            return total / float(n)
        if count_by_sum:
            # ones_like keeps what the library itself leaves out (a masked array's
            # mask) and needs no extent (lazy arrays may have unknown ones)
            ones = xp.ones_like(loss)
            if mask is not None:
                ones = where(mask, ones, 0.0, xp=xp)
            denom = xp.sum(ones, axis=axes, dtype=acc)
        else:
            # counts in integers: exact at any size (a float32 count stalls at 2**24)
            count = xp.sum(xp.astype(xp.broadcast_to(mask, shape), xp.int64), axis=axes)
            denom = xp.astype(count, acc)
    else:  # weighted_mean
        # weight·ones materializes the broadcast: a sum over a stride-0 view is
        # accumulated sequentially by some backends (torch: 1e-4 off at 1e5 elements)
        w = xp.ones_like(loss) if weight is None else weight * xp.ones_like(loss)
        if mask is not None:
            w = where(mask, w, 0.0, xp=xp)
        denom = xp.sum(w, axis=axes, dtype=acc)
    return divide_or_nan(total, denom, xp=xp)


def divide_or_nan(total: Array, denom: Array, *, xp: ModuleType) -> Array:
    """A mean from its sum and denominator: NaN where the denominator is 0 (a reduction
    over no element, or over zero total weight), computed without a 0/0 (no warning)."""
    empty = denom == 0
    return where(empty, math.nan, total / where(empty, 1.0, denom, xp=xp), xp=xp)
