"""A scikit-learn metric on logits: the weighted cross-entropy, with scikit-learn's
conventions (``y_true`` first, ``sample_weight=``, a float back), for ``make_scorer``
and cross-validation on a model's ``decision_function``.
"""

from __future__ import annotations

from typing import Any

from ._loss import weighted_cross_entropy_with_logits as _wce

__all__ = ["cross_entropy_on_logits"]


def cross_entropy_on_logits(y_true: Any, y_logit: Any, *, pos_weight: Any = None,
                            sample_weight: Any = None) -> float:
    r"""Mean weighted sigmoid cross-entropy of logits (lower is better).

    .. math::

        \frac{\sum_i s_i \sum_c L(x_{ic}, z_{ic}, q_c)}{C \sum_i s_i}

    with :math:`L` the loss of :func:`wce_xp.weighted_cross_entropy_with_logits`, ``s``
    the sample weights and ``C`` the number of labels per sample (1 for binary
    problems). With ``pos_weight=None`` it is scikit-learn's ``log_loss`` of
    ``sigmoid(y_logit)``, computed without forming probabilities (no clipping, no
    digits lost for confident predictions).

    Parameters
    ----------
    y_true : array_like of shape (n_samples,) or (n_samples, n_labels)
        Labels in [0, 1] (0/1, bool, or soft labels).
    y_logit : array_like, the shape of ``y_true``
        Logits: a classifier's ``decision_function``.
    pos_weight : float or array_like of shape (n_labels,), optional
        Weight of the positive term (per label); 1 when not given.
    sample_weight : array_like of shape (n_samples,), optional
        Weight of each sample.

    Returns
    -------
    float
        The weighted mean loss over samples and labels (lower is better).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.metrics import make_scorer
    >>> from sklearn.model_selection import cross_val_score
    >>> from wce_xp.sklearn import cross_entropy_on_logits
    >>> X = [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]]
    >>> y = [0, 0, 1, 0, 1, 1]
    >>> scorer = make_scorer(cross_entropy_on_logits, greater_is_better=False,
    ...                      response_method="decision_function", pos_weight=2.0)
    >>> scores = cross_val_score(LogisticRegression(), X, y, scoring=scorer, cv=2)
    >>> bool((scores < 0).all())
    True
    """
    import numpy as np

    z = np.asarray(y_true)
    x = np.asarray(y_logit)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if z.shape != x.shape:
        raise ValueError(f"y_true and y_logit: shapes {z.shape} and {x.shape} differ (pass "
                         "the decision_function of a binary or multi-label classifier)")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, x.dtype)
        if w.shape != x.shape[:1]:
            raise ValueError(f"sample_weight: expected shape {x.shape[:1]} (one per sample), "
                             f"got {w.shape}")
        w = w.reshape(w.shape + (1,) * (x.ndim - 1))
    out = _wce(z, x, 1.0 if pos_weight is None else pos_weight, weight=w,
               reduction="mean" if w is None else "weighted_mean")
    return float(out)
