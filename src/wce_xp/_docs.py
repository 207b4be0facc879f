"""Docstring parts the public functions share, each written once and filled in when the
module defining the function is imported (as SciPy's ``doccer``): a line holding only
``%(name)s`` becomes the part ``name``, indented as that line is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

PARTS = {
    "labels": """\
labels : array_like
    Targets in [0, 1], the logits' shape. Bool and integer labels are cast to the
    logits' dtype.""",
    "logits": """\
logits : array
    Real floating logits. float16 and bfloat16 are computed in float32 and the
    result is returned in their own dtype.""",
    "targets": """\
targets : array_like, optional
    TensorFlow 1's name for ``labels``; give one or the other.""",
    "weight": """\
weight : float or array, optional
    Per-element, per-sample or per-class weights ``≥ 0`` broadcasting to the logits.
    A zero weight drops the element (its contribution is 0 even if its loss is inf).""",
    "mask": """\
mask : bool array, optional
    Broadcasts to the logits; False marks a missing label. Masked elements give
    exactly 0 to the value and the gradient, even where label or logit is NaN/inf
    (``mask=~isnan(labels)``).""",
    "label_smoothing": """\
label_smoothing : float
    Keras's rule ``z → z(1 - s) + s/2`` with ``s`` in [0, 1].""",
    "reduction": """\
reduction : {"none", "sum", "mean", "weighted_mean"}
    ``"mean"`` divides the (weighted) sum by the number of unmasked elements,
    ``"weighted_mean"`` by their total weight. A reduction over no element or a
    zero total weight is NaN (no warning, no error).""",
    "axis": """\
axis : int or tuple of int, optional
    Reduce over these axes only (``axis=0`` gives one loss per class).""",
    "validate": """\
validate : bool or "always"
    Check values: labels in [0, 1], ``pos_weight`` and ``weight`` finite and
    non-negative, no NaN among them (the Notes of
    :func:`weighted_cross_entropy_with_logits` say where array checks run).
    ``False`` computes the formula for any real labels and weights.""",
    "xp": """\
xp : namespace, optional
    Force the array namespace; by default the inputs' library (NumPy if none).""",
    "returns": """\
Returns
-------
array
    Same library, device and dtype as the logits; the logits' shape for
    ``reduction="none"``, else reduced.""",
    "raises": """\
TypeError
    Non-floating or complex logits, arrays of two libraries, non-boolean mask.
ValueError
    Shapes that differ or do not broadcast, negative weights, labels outside
    [0, 1], an unknown reduction, an axis out of range.""",
    # the Keras losses' constructor arguments that every keras.losses.Loss has
    "keras_loss": """\
label_smoothing : float
    Keras's rule ``z → z(1 - s) + s/2``.
reduction : str or None
    As for every :class:`keras.losses.Loss`. Default "sum_over_batch_size".
name : str
    The loss's name in Keras's logs.
dtype : str or dtype, optional
    The dtype of the computation, as for every :class:`keras.losses.Loss`.""",
}

_SLOT = re.compile(r"^( *)%\((\w+)\)s$", re.MULTILINE)


def fill(obj: F) -> F:
    """Replace each ``%(name)s`` line of ``obj``'s docstring by ``PARTS[name]``."""
    if obj.__doc__:
        obj.__doc__ = _SLOT.sub(
            lambda m: "\n".join(m.group(1) + line if line else line
                                for line in PARTS[m.group(2)].splitlines()),
            obj.__doc__)
    return obj
