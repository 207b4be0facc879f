"""Public loss functions: a fast lane, else the front door, then the backend's entry.

A call first tries the fast lane that the registry (:mod:`wce_xp._registry`) holds for
the exact type of its logits, if the call has no options; else the front door
(:func:`wce_xp._validation.prepare`) classifies and converts the arguments once, and
the steps below use the backend's fast implementations where it declares them and
they take the call, else the generic array-API code (:mod:`wce_xp._generic._core`).
"""

from __future__ import annotations

from typing import Any

from . import _compat, _registry
from ._args import ArrayT, Reduction, TorchReduction, Validate
from ._docs import fill
from ._generic import _core
from ._validation import (
    REDUCTIONS,
    Inputs,
    as_option,
    check_reduction,
    check_values,
    computable,
    finish,
    prepare,
    with_label_hint,
)

Array = Any
Axis = int | tuple[int, ...] | None

_FAST = _registry.FAST  # exact type of the logits -> its backend's fast lane


def _try_fast(labels: Any, logits: Any, pos_weight: Any, validate: Any, reduction: Any,
              *options: Any) -> Any:
    """The fast lane of the logits' exact type for a call without options, or None."""
    hook = _FAST.get(type(logits))
    if hook is None or reduction not in REDUCTIONS:
        return None
    for o in options:  # (a loop: a generator in any() costs a microsecond here)
        if o is not None:
            return None
    return hook(labels, logits, pos_weight, validate, reduction)


def _resolve_labels(labels: Any, targets: Any) -> Any:
    if labels is not None and targets is not None:
        raise TypeError("labels and targets: give one of them (targets is TensorFlow 1's name)")
    return targets if labels is None else labels


def _family(
    inp: Inputs,
    *,
    label_smoothing: Any,
    reduction: str,
    axis: Axis,
    focal: tuple[Any, Any] | None = None,
) -> Array:
    """Smoothing, the elementwise loss, weights and the reduction, in that order (masked
    elements were zeroed by :func:`prepare`, unless the backend's ``whole`` takes the
    call): the generic code, with the backend's fast implementations where they run."""
    xp, b = inp.xp, inp.backend
    z, x, mask = inp.z, inp.x, inp.mask
    if reduction == "none" and axis is not None:
        raise ValueError("axis: only meaningful with a reduction (reduction='none' was given)")
    axes = _core.normalize_axis(axis, x.ndim) if reduction != "none" else ()
    if inp.deferred:  # every option at once, labels and mask as given
        assert b.whole is not None
        out = b.whole(z, x, inp.q, weight=inp.weight, mask=mask, smoothing=label_smoothing,
                      focal=focal, reduction=reduction, axes=axes)
        if out is not None:
            return finish(inp, out)
        z, x = computable(z, x, mask, x.dtype, xp)  # (declined: what prepare left to it)
    if not isinstance(label_smoothing, float) or label_smoothing:  # (an array: traced)
        z = z * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if inp.pending is not None:  # the checks inside the backend's call with the loss
        try:
            if focal is None:
                assert b.checked_loss is not None
                out = b.checked_loss(z, x, inp.q, weight=inp.weight, mask=mask,
                                     reduction=reduction, axes=axes, acc_dtype=inp.acc_dtype,
                                     checks=inp.pending)
                return finish(inp, out)
            check_values(xp, b, inp.native, inp.pending)
        except ValueError as exc:
            raise with_label_hint(exc, xp, inp.z, x, mask, *inp.names) from None
    if focal is None and inp.native and b.reduced is not None and reduction != "none":
        fast = b.reduced(z, x, inp.q, weight=inp.weight, mask=mask, reduction=reduction,
                         axes=axes, acc_dtype=inp.acc_dtype)
        if fast is not None:
            return finish(inp, fast)
    loss = b.loss(z, x, inp.q) if inp.native and b.loss is not None else None
    if loss is None:
        loss = _core.weighted_loss(z, x, inp.q, xp=xp, zero_form=b.zero_form)
    if focal is not None:
        # the focal loss multiplies the very cross-entropy the plain loss returns (same
        # kernel), so focal ≤ cross-entropy holds to the last bit
        loss = _core.focal_loss(z, x, inp.q, focal[0], focal[1], xp=xp, ce=loss)
    if mask is not None:
        loss = _core.where(mask, loss, 0.0, xp=xp)
    out = _core.reduce_loss(
        loss, weight=inp.weight, mask=mask, reduction=reduction, axes=axes, xp=xp,
        acc_dtype=inp.acc_dtype, block=b.sum_block, count_by_sum=not b.counts_by_shape,
    )
    return finish(inp, out)


@fill
def weighted_cross_entropy_with_logits(
    labels: Any = None,
    logits: ArrayT = None,  # type: ignore[assignment]  # (TensorFlow's order: keywords too)
    pos_weight: Any = None,
    name: str | None = None,
    *,
    targets: Any = None,
    weight: Any = None,
    mask: Any = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
    axis: Axis = None,
    validate: Validate = True,
    xp: Any = None,
) -> ArrayT:
    r"""Weighted sigmoid cross-entropy on logits, TensorFlow's argument order and meaning.

    .. math::

        L(x, z) = q\,z\,\log(1 + e^{-x}) + (1 - z)\,\log(1 + e^{x})

    computed as :math:`c\,|x| + (1 + (q-1)z)\,\mathrm{log1p}(e^{-|x|})` with
    :math:`c = qz` for :math:`x < 0` and :math:`1 - z` otherwise: every term is
    non-negative, so no digit is lost to cancellation (TensorFlow's and PyTorch's
    ``(1-z)x + l(\log(1+e^{-|x|}) + \max(-x, 0))`` subtracts nearly equal numbers).
    Logits of ±inf give the limit (0 or +inf), NaN gives NaN.

    Parameters
    ----------
    %(labels)s
    %(logits)s
    pos_weight : float or array
        Weight ``q ≥ 0`` of the positive term, a scalar or an array broadcasting to
        the logits (one value per class along the last axis is the common case).
    name : str, optional
        On TensorFlow, the name scope of the operations (as ``tf.nn``'s ``name=``);
        ignored elsewhere.
    %(targets)s
    %(weight)s
    %(mask)s
    %(label_smoothing)s
    %(reduction)s
    %(axis)s
    %(validate)s
    %(xp)s

    %(returns)s

    Raises
    ------
    %(raises)s

    Notes
    -----
    The error is at most 4 ulp in float32 and float64 against a 60-digit reference
    (tests/test_accuracy.py), on every backend.

    Value checks read the data, so where they run depends on the context: on eager
    host arrays (NumPy, PyTorch CPU, JAX CPU, array-api-strict) they run with
    ``validate=True``, as one min/max pass per array and a single read; on GPU arrays
    (CuPy, CUDA tensors, JAX on a GPU) they run only with ``validate="always"``,
    because each read is a host-device synchronization that stalls a training loop;
    under a trace (``jax.jit``/``grad``/``vmap``, ``torch.compile``, ``torch.func``
    transforms, ``torch.jit.trace``), on Dask arrays and on the lazy arrays of other
    libraries (``array_api_compat.is_lazy_array``, e.g. ndonnx graphs) they never run
    (there are no values to read, or reading would compute the graph). Scalar options
    are always checked when ``validate`` is true. Inputs are never modified.

    Any library implementing the array API standard 2023.12 or newer works. A masked
    array's masked elements count nowhere (the mean's denominator included); the
    masks of ``numpy.ma`` labels and logits join ``mask``.

    Under ``torch.autocast``, float16/bfloat16 logits give a float32 result, as
    PyTorch's own ``binary_cross_entropy_with_logits`` does. NumPy arrays of
    non-native byte order are computed in the native dtype of the same precision;
    ``longdouble`` is computed and returned in float64.

    Examples
    --------
    TensorFlow's documented example, with NumPy:

    >>> import numpy as np, wce_xp
    >>> logits = np.array([[0.1, 0.5, 0.9], [0.2, 0.4, 0.6], [0.3, 0.7, 0.8]], np.float32)
    >>> out = wce_xp.weighted_cross_entropy_with_logits(
    ...     logits=logits, targets=[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
    ...     pos_weight=2.0)
    >>> out.dtype, out.shape
    (dtype('float32'), (3, 3))
    >>> out[0].round(6)  # the last digit of float32 may differ between builds by an ulp
    array([1.288793, 0.974077, 1.241154], dtype=float32)
    """
    if pos_weight is not None and type(label_smoothing) is float and not label_smoothing:
        out: ArrayT | None = _try_fast(labels, logits, pos_weight, validate, reduction,
                                       targets, weight, mask, axis, xp)
        if out is not None:
            return out
    labels = _resolve_labels(labels, targets)
    if pos_weight is None:
        raise TypeError("pos_weight: required (use sigmoid_cross_entropy_with_logits for q = 1)")
    reduction = check_reduction(reduction)
    s = as_option("label_smoothing", label_smoothing, hi=1.0)
    with _compat.name_scope(name, logits, labels):
        inp = prepare(labels=labels, logits=logits, pos_weight=pos_weight, weight=weight,
                      mask=mask, xp=xp, validate=validate, chunked=True,
                      defer_checks=True)
        result: ArrayT = _family(inp, label_smoothing=s, reduction=reduction, axis=axis)
        return result


@fill
def sigmoid_cross_entropy_with_logits(
    labels: Any = None,
    logits: ArrayT = None,  # type: ignore[assignment]  # (TensorFlow's order: keywords too)
    name: str | None = None,
    *,
    targets: Any = None,
    weight: Any = None,
    mask: Any = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
    axis: Axis = None,
    validate: Validate = True,
    xp: Any = None,
) -> ArrayT:
    r"""Sigmoid cross-entropy on logits, TensorFlow's ``tf.nn.sigmoid_cross_entropy_with_logits``.

    .. math::

        L(x, z) = z\,\log(1 + e^{-x}) + (1 - z)\,\log(1 + e^{x})

    :func:`weighted_cross_entropy_with_logits` with ``pos_weight = 1``; the same
    options, accuracy and errors (its Notes say where value checks run).

    Parameters
    ----------
    %(labels)s
    %(logits)s
    name : str, optional
        On TensorFlow, the name scope of the operations; ignored elsewhere.
    %(targets)s
    %(weight)s
    %(mask)s
    %(label_smoothing)s
    %(reduction)s
    %(axis)s
    %(validate)s
    %(xp)s

    %(returns)s

    Raises
    ------
    %(raises)s

    See Also
    --------
    weighted_cross_entropy_with_logits : With a weight on the positive term.
    sigmoid_focal_loss : Down-weights well-classified examples.

    Examples
    --------
    >>> import numpy as np, wce_xp
    >>> wce_xp.sigmoid_cross_entropy_with_logits(
    ...     labels=np.array([1.0, 0.0]), logits=np.array([0.0, -800.0]))
    array([0.69314718, 0.        ])
    """
    if type(label_smoothing) is float and not label_smoothing:
        out: ArrayT | None = _try_fast(labels, logits, None, validate, reduction, targets,
                                       weight, mask, axis, xp)
        if out is not None:
            return out
    labels = _resolve_labels(labels, targets)
    reduction = check_reduction(reduction)
    s = as_option("label_smoothing", label_smoothing, hi=1.0)
    with _compat.name_scope(name, logits, labels):
        inp = prepare(labels=labels, logits=logits, weight=weight, mask=mask, xp=xp,
                      validate=validate, chunked=True,
                      defer_checks=True)
        result: ArrayT = _family(inp, label_smoothing=s, reduction=reduction, axis=axis)
        return result


def binary_cross_entropy_with_logits(
    input: ArrayT,
    target: Any,
    weight: Any = None,
    pos_weight: Any = None,
    reduction: TorchReduction = "mean",
    *,
    validate: Validate = False,
    xp: Any = None,
) -> ArrayT:
    r"""Compute ``torch.nn.functional.binary_cross_entropy_with_logits`` on any backend.

    .. math::

        \ell = w\,\big[q\,z\,\log(1 + e^{-x}) + (1 - z)\,\log(1 + e^{x})\big]

    For any real ``z``, ``w`` and ``q``, as PyTorch (whose tests use normally
    distributed targets); with targets in [0, 1] and non-negative weights every term
    is non-negative and the result is accurate to a few ulps.

    Parameters
    ----------
    input : array
        Logits (real floating).
    target : array_like
        Targets, the shape of ``input`` (any real values, as in PyTorch).
    weight : array, optional
        Rescaling weight, broadcast to ``input`` as in PyTorch.
    pos_weight : array, optional
        Weight of positive examples, broadcast to ``input`` as in PyTorch (one value
        per class along the last axis).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides the sum by the number of elements.
    validate : bool or "always"
        PyTorch checks no values, so neither does this function by default: any real
        target, weight and pos_weight (negative, above 1, NaN) gives PyTorch's value
        and gradients. ``True``/``"always"``: the checks of
        :func:`weighted_cross_entropy_with_logits`.
    xp : namespace, optional
        Force the array namespace.

    Returns
    -------
    array
        A 0-d array for ``"mean"``/``"sum"``, else the shape of ``input``; the
        library, device and dtype of ``input``.

    Examples
    --------
    >>> import numpy as np, wce_xp
    >>> x = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    >>> z = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> float(wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=np.array([2.0, 1.0])))
    1.02037...
    """
    if reduction in ("none", "mean", "sum"):  # (PyTorch's: the others raise below)
        out: ArrayT | None = _try_fast(target, input, pos_weight, validate, reduction, weight, xp)
        if out is not None:
            return out
    reduction = check_reduction(reduction, ("none", "mean", "sum"))
    inp = prepare(labels=target, logits=input, pos_weight=pos_weight, weight=weight, xp=xp,
                  validate=validate, labels_name="target", logits_name="input", chunked=True,
                  defer_checks=True)
    result: ArrayT = _family(inp, label_smoothing=0.0, reduction=reduction, axis=None)
    return result


@fill
def sigmoid_focal_loss(
    labels: Any,
    logits: ArrayT,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    pos_weight: Any = None,
    weight: Any = None,
    mask: Any = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
    axis: Axis = None,
    validate: Validate = True,
    xp: Any = None,
) -> ArrayT:
    r"""Focal loss on logits (Lin et al., 2017), with soft labels and ``pos_weight``.

    .. math::

        FL = \alpha_t\,(1 - p_t)^{\gamma}\,L(x, z, q),\quad
        p = \sigma(x),\; p_t = p z + (1 - p)(1 - z),\;
        \alpha_t = \alpha z + (1 - \alpha)(1 - z)

    where :math:`L` is :func:`weighted_cross_entropy_with_logits`. ``gamma = 0`` and
    ``alpha=None`` give the cross-entropy exactly. The modulating factor is computed
    as ``exp(γ·log(1 - p_t))`` with ``log(1 - p_t)`` a log-sum-exp of softplus terms,
    so values and gradients stay finite for every ``γ ≥ 0`` (a plain power of
    ``1 - p_t`` has an infinite derivative where ``1 - p_t`` underflows, e.g. at
    logits of ±100 with ``γ < 1``). At infinite logits the loss is its limit.

    Parameters
    ----------
    %(labels)s
    %(logits)s
    gamma : float or 0-d array
        Focusing parameter ``γ ≥ 0`` (may be traced by ``jax.jit``).
    alpha : float in [0, 1] or 0-d array, optional
        Weight of positives (negatives get ``1 - α``); None for no alpha term.
    pos_weight : float or array, optional
        Weight ``q ≥ 0`` of the positive term inside :math:`L` (default 1).
    %(weight)s
    %(mask)s
    %(label_smoothing)s
    %(reduction)s
    %(axis)s
    %(validate)s
    %(xp)s

    %(returns)s

    Raises
    ------
    ValueError
        ``gamma < 0``, ``alpha`` outside [0, 1], and the errors of
        :func:`weighted_cross_entropy_with_logits`.

    See Also
    --------
    weighted_cross_entropy_with_logits : The cross-entropy it modulates.

    Examples
    --------
    >>> import numpy as np, wce_xp
    >>> wce_xp.sigmoid_focal_loss(np.array([1.0, 0.0]), np.array([2.0, 2.0]),
    ...                           gamma=2.0, alpha=0.25)
    array([4.50890709e-04, 1.23755863e+00])
    """
    reduction = check_reduction(reduction)
    g = as_option("gamma", gamma)
    a = None if alpha is None else as_option("alpha", alpha, hi=1.0)
    s = as_option("label_smoothing", label_smoothing, hi=1.0)
    inp = prepare(labels=labels, logits=logits, pos_weight=pos_weight, weight=weight,
                  mask=mask, xp=xp, validate=validate, chunked=True,
                  defer_checks=True)
    if isinstance(g, float) and g == 0.0 and a is None:
        result: ArrayT = _family(inp, label_smoothing=s, reduction=reduction, axis=axis)
    else:
        result = _family(inp, label_smoothing=s, reduction=reduction, axis=axis, focal=(g, a))
    return result


