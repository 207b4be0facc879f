"""optax's signatures: ``sigmoid_binary_cross_entropy`` and ``sigmoid_focal_loss``,
logits first, with wce_xp's arithmetic (and an optional ``pos_weight``).

Replacing ``optax.losses`` by ``wce_xp.optax`` in an import is the whole migration:
the same arguments, in the same order, with the same defaults, the elementwise loss
back. They run under ``jax.jit``, ``grad`` and ``vmap`` like optax's, and on every
other array library too. Nothing from optax is imported.
"""

from __future__ import annotations

from typing import Any

from ._args import ArrayT
from ._loss import sigmoid_focal_loss as _focal
from ._loss import weighted_cross_entropy_with_logits as _wce

__all__ = ["sigmoid_binary_cross_entropy", "sigmoid_focal_loss"]


def sigmoid_binary_cross_entropy(logits: ArrayT, labels: Any, *,
                                 pos_weight: Any = None) -> ArrayT:
    r"""Compute the elementwise sigmoid cross-entropy, with optax's signature.

    .. math::

        L(x, z) = q\,z\,\log(1 + e^{-x}) + (1 - z)\,\log(1 + e^{x})

    Parameters
    ----------
    logits : array
        Real floating logits.
    labels : array
        Targets in [0, 1], the logits' shape (values outside are accepted, as optax
        accepts them: no check).
    pos_weight : float or array, optional
        Weight ``q`` of the positive term (``q = 1`` when not given, optax's loss).

    Returns
    -------
    array
        The elementwise loss, the logits' shape, library, device and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from wce_xp import optax
    >>> optax.sigmoid_binary_cross_entropy(np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    array([0.69314718, 2.12692801])
    """
    return _wce(labels, logits, 1.0 if pos_weight is None else pos_weight, validate=False)


def sigmoid_focal_loss(logits: ArrayT, labels: Any, *, alpha: Any = None, gamma: Any = 2.0,
                       pos_weight: Any = None) -> ArrayT:
    r"""Compute the elementwise focal loss (Lin et al., 2017), with optax's signature.

    .. math::

        FL = \alpha_t\,(1 - p_t)^{\gamma}\,L(x, z, q)

    Parameters
    ----------
    logits : array
        Real floating logits.
    labels : array
        Targets in [0, 1], the logits' shape (not checked, as in optax).
    alpha : float, optional
        Weight of positives (negatives get ``1 - alpha``); None: no alpha term.
    gamma : float
        Focusing parameter ``γ ≥ 0`` (a traced value under ``jax.jit`` too).
    pos_weight : float or array, optional
        Weight ``q`` of the positive term.

    Returns
    -------
    array
        The elementwise loss, the logits' shape, library, device and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from wce_xp import optax
    >>> optax.sigmoid_focal_loss(np.array([2.0, 2.0]), np.array([1.0, 0.0]), alpha=0.25)
    array([4.50890709e-04, 1.23755863e+00])
    """
    return _focal(labels, logits, gamma=gamma, alpha=alpha, pos_weight=pos_weight,
                  validate=False)
