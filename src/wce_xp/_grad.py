"""Analytic derivatives and the usual choice of pos_weight, for toolkits without autograd."""

from __future__ import annotations

import math
from typing import Any

from ._args import ArrayT, Validate
from ._generic import _core
from ._validation import (
    _as_array,
    _check_broadcast,
    _is_real_floating,
    accumulation_dtype,
    as_float,
    context,
    finish,
    kind_of,
    prepare,
)

Array = Any


def weighted_cross_entropy_grad_hess(
    labels: Any,
    logits: ArrayT,
    pos_weight: Any = 1.0,
    *,
    weight: Any = None,
    label_smoothing: float = 0.0,
    validate: Validate = True,
    xp: Any = None,
) -> tuple[ArrayT, ArrayT]:
    r"""Elementwise first and second derivatives of the weighted loss in the logits.

    .. math::

        g = (1 - z)\,\sigma(x) - q\,z\,\sigma(-x), \qquad
        h = (1 + (q - 1)\,z)\,\sigma(x)\,\sigma(-x)

    times ``weight`` when given, with ``z`` smoothed as in
    :func:`weighted_cross_entropy_with_logits`. Both sigmoids come from
    ``e = exp(-|x|)``, so nothing overflows and ``σ(x)·σ(-x) = e/(1+e)²`` keeps its
    relative accuracy in the tails. The two terms of ``g`` cancel near the optimum:
    its error is a few ulp of ``(1 - z)σ(x) + qzσ(-x)``.

    Parameters
    ----------
    labels : array_like
        Targets in [0, 1], broadcasting to the logits (bool and integer labels are cast).
    logits : array
        Real floating logits (raw margins, for boosting).
    pos_weight : float or array, optional
        Weight ``q ≥ 0`` of the positive term (default 1), broadcasting to the logits.
    weight : float or array, optional
        Weights ``≥ 0`` that multiply both derivatives.
    label_smoothing : float
        Keras's rule ``z → z(1 - s) + s/2`` with ``s`` in [0, 1].
    validate : bool or "always"
        Check values as :func:`weighted_cross_entropy_with_logits` does.
    xp : namespace, optional
        Force the array namespace; by default the inputs' library.

    Returns
    -------
    grad : array
        :math:`\partial L / \partial x`: the logits' shape, library, device and dtype.
    hess : array
        :math:`\partial^2 L / \partial x^2`, likewise.

    See Also
    --------
    weighted_cross_entropy_with_logits : The loss these are the derivatives of.
    wce_xp.boosting.xgboost_objective : These derivatives as an XGBoost objective.

    Examples
    --------
    >>> import numpy as np, wce_xp
    >>> g, h = wce_xp.weighted_cross_entropy_grad_hess(
    ...     np.array([1.0, 0.0]), np.array([0.0, 0.0]), 3.0)
    >>> g, h
    (array([-1.5,  0.5]), array([0.75, 0.25]))
    """
    s = as_float("label_smoothing", label_smoothing, hi=1.0)
    inp = prepare(labels=labels, logits=logits, pos_weight=pos_weight, weight=weight,
                  xp=xp, validate=validate)
    ns, z = inp.xp, inp.z
    if s:
        z = z * (1.0 - s) + 0.5 * s
    b = inp.backend
    fast = b.grad_hess(z, inp.x, inp.q) if inp.native and b.grad_hess is not None else None
    g, h = _core.grad_hess(z, inp.x, inp.q, xp=ns) if fast is None else fast
    if inp.weight is not None:
        g = inp.weight * g
        h = inp.weight * h
    grad: ArrayT = finish(inp, g)
    hess: ArrayT = finish(inp, h)
    return grad, hess


def pos_weight_from_labels(
    labels: ArrayT,
    *,
    axis: int | tuple[int, ...] | None = 0,
    mask: Any = None,
    xp: Any = None,
) -> ArrayT:
    r"""Return negatives over positives per class, the usual ``pos_weight`` for imbalance.

    .. math::

        q_c = \frac{\sum_i m_{ic}\,(1 - z_{ic})}{\sum_i m_{ic}\,z_{ic}}

    Soft labels count fractionally. Reduces over ``axis`` (the samples, by default 0).

    Parameters
    ----------
    labels : array
        Labels in [0, 1] (bool, integer or floating).
    axis : int or tuple of int or None
        The sample axes; the result has the remaining (class) axes.
    mask : bool array, optional
        False marks a missing label, which counts neither way.
    xp : namespace, optional
        Force the array namespace.

    Returns
    -------
    array
        In the labels' floating dtype (the default floating dtype for bool or integer
        labels), same library and device.

    Raises
    ------
    ValueError
        On eager host arrays, when a class has no positive label (the message lists
        the class indices). Where values are not read — lazy or traced arrays (Dask,
        ``jit``, ``torch.compile``, ``vmap``) and GPU arrays (a read would stall the
        device) — such a class gives +inf instead (NaN if it has no labelled element
        at all).

    Examples
    --------
    >>> import numpy as np, wce_xp
    >>> wce_xp.pos_weight_from_labels(np.array([[1, 0], [0, 1], [0, 1], [0, 1]]))
    array([3.        , 0.33333333])
    """
    named = {"labels": labels} if mask is None else {"labels": labels, "mask": mask}
    kinds = {n: kind_of(v) for n, v in named.items()}
    ctx = context(named, kinds, xp)
    ns = ctx.xp
    z = _as_array("labels", labels, kinds["labels"], ctx)
    if not _is_real_floating(ns, z.dtype):
        if ns.isdtype(z.dtype, "complex floating") or not ns.isdtype(
                z.dtype, ("bool", "integral")):
            raise TypeError(f"labels: expected bool, integer or real floating, got {z.dtype}")
        default = ns.asarray(0.0, device=ctx.device).dtype
        z = ns.astype(z, default)
    axes = _core.normalize_axis(axis, z.ndim)
    one_minus = 1.0 - z
    if mask is not None:
        m = _as_array("mask", mask, kinds["mask"], ctx)
        if m.dtype != ns.bool:
            raise TypeError(f"mask: expected a boolean array (True = keep), got dtype {m.dtype}")
        _check_broadcast("mask", tuple(m.shape), tuple(z.shape))
        z = _core.where(m, z, 0.0, xp=ns)
        one_minus = _core.where(m, one_minus, 0.0, xp=ns)
    acc = accumulation_dtype(ctx, z.dtype)
    pos = ns.sum(z, axis=axes, dtype=acc)
    neg = ns.sum(one_minus, axis=axes, dtype=acc)
    none = pos == 0
    if not ctx.traced and not ctx.on_device:  # the check reads values: host arrays only
        # counted with a sum, not nonzero(): libraries without data-dependent shapes
        # (sparse arrays, array-api-strict's option) have no nonzero
        flat = ns.reshape(none, (-1,))
        n_missing = int(ns.sum(ns.astype(flat, ns.int64)))
        if n_missing:
            idx = [i for i in range(int(flat.shape[0])) if bool(flat[i])][:20]
            raise ValueError(
                f"labels: class(es) {idx}{' ...' if n_missing > 20 else ''} "
                "have no positive label, so negatives/positives is infinite"
            )
    ratio = neg / _core.where(none, 1.0, pos, xp=ns)
    # no positives: +inf, or NaN where the class has no labelled element at all
    undefined = ns.where(neg == 0, ns.full_like(neg, math.nan), ns.full_like(neg, math.inf))
    result: ArrayT = ns.astype(ns.where(none, undefined, ratio), z.dtype)
    return result

