"""wce_xp.sklearn: a metric on logits with scikit-learn's conventions, in a real
scikit-learn cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import log_loss, make_scorer  # noqa: E402
from sklearn.model_selection import KFold, cross_val_score  # noqa: E402

from wce_xp.sklearn import cross_entropy_on_logits  # noqa: E402

from . import _reference as R  # noqa: E402


def _problem(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=n) > 0.8).astype(int)
    return X, y


def test_cross_validation_with_make_scorer_equals_log_loss():
    """pos_weight=None is scikit-learn's log_loss of the probabilities, fold by fold."""
    X, y = _problem()
    scorer = make_scorer(cross_entropy_on_logits, greater_is_better=False,
                         response_method="decision_function")
    cv = KFold(4, shuffle=True, random_state=0)
    scores = cross_val_score(LogisticRegression(), X, y, scoring=scorer, cv=cv)
    want = []
    for train, test in cv.split(X):
        m = LogisticRegression().fit(X[train], y[train])
        want.append(-log_loss(y[test], m.predict_proba(X[test])))
    np.testing.assert_allclose(scores, want, rtol=1e-10)


def test_pos_weight_and_sample_weight_against_the_reference():
    X, y = _problem()
    m = LogisticRegression().fit(X, y)
    logits = m.decision_function(X)
    s = np.random.default_rng(1).uniform(0, 2, len(y))
    got = cross_entropy_on_logits(y, logits, pos_weight=3.0, sample_weight=s)
    ref = R.vectorize(R.loss, logits, y.astype(float), 3.0).astype(float)
    assert isinstance(got, float)
    assert got == pytest.approx(float(np.sum(s * ref) / np.sum(s)), rel=1e-12)
    scorer = make_scorer(cross_entropy_on_logits, greater_is_better=False,
                         response_method="decision_function", pos_weight=3.0)
    assert scorer(m, X, y, sample_weight=s) == pytest.approx(-got, rel=1e-12)


def test_multi_label_logits_and_per_label_pos_weight():
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=(50, 4)) > 0.7).astype(int)
    x = rng.normal(0, 3, (50, 4))
    q = np.array([1.0, 2.0, 3.0, 4.0])
    ref = np.mean([[R.loss(x[i, c], float(y[i, c]), q[c]) for c in range(4)]
                   for i in range(50)], dtype=float)
    assert cross_entropy_on_logits(y, x, pos_weight=q) == pytest.approx(float(ref), rel=1e-12)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="y_true and y_logit: shapes"):
        cross_entropy_on_logits([0, 1], [0.5, 0.2, 0.1])
    with pytest.raises(ValueError, match="sample_weight: expected shape"):
        cross_entropy_on_logits([0, 1], [0.5, 0.2], sample_weight=[1.0])
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        cross_entropy_on_logits([0, 2], [0.5, 0.2])
