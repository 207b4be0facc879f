"""Gradient-boosting objectives built on :func:`wce_xp.weighted_cross_entropy_grad_hess`.

Each objective is one callable that serves both the native training API and the
scikit-learn wrapper of its library; the two call it differently:

================================  ======================================
caller                            call
================================  ======================================
``xgboost.train(obj=f)``          ``f(predt, dtrain)``
``XGBClassifier(objective=f)``    ``f(y_true, y_pred, sample_weight=w)``
``lightgbm.train`` (4.x,          ``f(preds, train_data)``
``params["objective"]=f``)
``LGBMClassifier(objective=f)``   ``f(y_true, y_pred, weight)``
================================  ======================================

The objective tells them apart by the second argument: a ``DMatrix``/``Dataset``
(anything with ``get_label``) means the native API. Predictions are raw margins;
NumPy and (XGBoost on a GPU) CuPy predictions are supported, and the gradient and
Hessian come back as the same array type. Sample weights multiply both.

Base score (users trip on it). XGBoost reads ``base_score`` through the link of the
objective it believes in. ``xgboost.train(obj=f)`` runs a custom objective under an
identity link, so ``base_score`` is added to the margin as it is: give it
``base_score=0.0`` to match the built-in ``objective="binary:logistic"`` with
``base_score=0.5`` (a probability, margin 0). ``XGBClassifier(objective=f)`` keeps
the logistic link for its output, so there ``base_score`` stays a probability: use
0.5 in both. Since XGBoost 2.0 an unset ``base_score`` is estimated from the data for
built-in objectives only, so set it explicitly when you compare. LightGBM's custom
objectives start from a margin of 0 (``boost_from_average`` applies to built-in
objectives only): give the built-in one ``boost_from_average=False``.
"""

from __future__ import annotations

from typing import Any

from ._compat import array_namespace, is_array
from ._grad import weighted_cross_entropy_grad_hess
from ._validation import as_float

__all__ = ["Objective", "lightgbm_objective", "xgboost_objective"]


class Objective:
    r"""A weighted sigmoid cross-entropy objective for a gradient-boosting library.

    Made by :func:`xgboost_objective` and :func:`lightgbm_objective`; calling it gives
    the gradient and Hessian of the loss with respect to the raw margins ``m``:

    .. math::

        g = (1 - z)\,\sigma(m) - q\,z\,\sigma(-m), \qquad
        h = (1 + (q-1) z)\,\sigma(m)\,\sigma(-m)

    Parameters
    ----------
    library : {"xgboost", "lightgbm"}
        The library it was made for (shown in its ``repr``).
    pos_weight : float
        ``q ≥ 0``, the weight of positive examples.
    label_smoothing : float
        Keras's rule ``z → z(1 - s) + s/2``, ``0 ≤ s ≤ 1``.

    Attributes
    ----------
    library : str
        As given.
    pos_weight : float
        As given, checked.
    label_smoothing : float
        As given, checked.

    See Also
    --------
    wce_xp.weighted_cross_entropy_grad_hess : The derivatives it returns.

    Examples
    --------
    >>> import numpy as np
    >>> from wce_xp.boosting import Objective, xgboost_objective
    >>> obj = xgboost_objective(pos_weight=3.0)
    >>> isinstance(obj, Objective), obj
    (True, xgboost_objective(pos_weight=3.0, label_smoothing=0.0))
    """

    def __init__(self, library: str, pos_weight: float, label_smoothing: float) -> None:
        self.library = library
        self.pos_weight = as_float("pos_weight", pos_weight)
        self.label_smoothing = as_float("label_smoothing", label_smoothing, hi=1.0)

    def __repr__(self) -> str:
        return (f"{self.library}_objective(pos_weight={self.pos_weight}, "
                f"label_smoothing={self.label_smoothing})")

    def __call__(self, first: Any, second: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        """The gradient and Hessian, called as either API of the library calls it.

        Parameters
        ----------
        first : array
            The margins (native API) or the labels (scikit-learn wrapper).
        second : array or DMatrix or Dataset
            The training data (native API: labels and weights are read from it) or
            the margins (scikit-learn wrapper).
        sample_weight : array, optional
            Per-sample weights (scikit-learn wrapper); they multiply both results.

        Returns
        -------
        grad, hess : array
            Of the margins' shape and array type.
        """
        if hasattr(second, "get_label"):  # native API: (predictions, DMatrix / Dataset)
            preds, data = first, second
            labels = data.get_label()
            weight = data.get_weight()
        else:  # scikit-learn wrapper: (y_true, y_pred[, weight])
            labels, preds, weight = first, second, sample_weight
        return self._grad_hess(labels, preds, weight)

    def _grad_hess(self, labels: Any, preds: Any, weight: Any) -> tuple[Any, Any]:
        xp = array_namespace(preds) if is_array(preds) else None
        if xp is not None:
            labels = xp.asarray(labels, device=getattr(preds, "device", None)) \
                if not is_array(labels) or array_namespace(labels) is not xp else labels
            if tuple(labels.shape) != tuple(preds.shape):
                # multi-target models flatten labels; predictions are (n, k)
                labels = xp.reshape(labels, preds.shape)
        if weight is not None and len(weight) == 0:
            weight = None
        if weight is not None and xp is not None and len(preds.shape) == 2:
            weight = xp.reshape(xp.asarray(weight), (-1, 1))
        return weighted_cross_entropy_grad_hess(
            labels, preds, self.pos_weight, weight=weight,
            label_smoothing=self.label_smoothing, xp=xp,
        )


def xgboost_objective(pos_weight: float = 1.0, *, label_smoothing: float = 0.0) -> Objective:
    r"""A custom XGBoost objective for the weighted sigmoid cross-entropy.

    .. math::

        g = (1 - z)\,\sigma(m) - q\,z\,\sigma(-m), \qquad h = (1 + (q-1) z)\,\sigma(m)\,\sigma(-m)

    on raw margins ``m``; the same model as ``objective="binary:logistic"`` with
    ``scale_pos_weight=q`` (see the module's note on ``base_score``).

    Parameters
    ----------
    pos_weight : float
        ``q ≥ 0``, the weight of positive examples.
    label_smoothing : float
        Keras's rule ``z → z(1 - s) + s/2``.

    Returns
    -------
    Objective
        Works as ``xgboost.train(..., obj=f)`` and ``XGBClassifier(objective=f)``.

    Examples
    --------
    >>> import numpy as np
    >>> from wce_xp.boosting import xgboost_objective
    >>> obj = xgboost_objective(pos_weight=3.0)
    >>> obj(np.array([1.0, 0.0]), np.array([0.0, 0.0]))  # scikit-learn order
    (array([-1.5,  0.5]), array([0.75, 0.25]))
    """
    return Objective("xgboost", pos_weight, label_smoothing)


def lightgbm_objective(pos_weight: float = 1.0, *, label_smoothing: float = 0.0) -> Objective:
    r"""A custom LightGBM objective for the weighted sigmoid cross-entropy.

    .. math::

        g = (1 - z)\,\sigma(m) - q\,z\,\sigma(-m), \qquad h = (1 + (q-1) z)\,\sigma(m)\,\sigma(-m)

    Parameters
    ----------
    pos_weight : float
        ``q ≥ 0``, the weight of positive examples.
    label_smoothing : float
        Keras's rule ``z → z(1 - s) + s/2``.

    Returns
    -------
    Objective
        Works as ``lightgbm.train({"objective": f, ...}, ...)`` and
        ``LGBMClassifier(objective=f)``.

    Examples
    --------
    >>> import numpy as np
    >>> from wce_xp.boosting import lightgbm_objective
    >>> lightgbm_objective(pos_weight=3.0)(np.array([1.0, 0.0]), np.array([0.0, 0.0]), None)
    (array([-1.5,  0.5]), array([0.75, 0.25]))
    """
    return Objective("lightgbm", pos_weight, label_smoothing)
