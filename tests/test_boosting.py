"""XGBoost and LightGBM objectives, against the libraries' built-in weighted logistic loss."""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp
from wce_xp.boosting import lightgbm_objective, xgboost_objective

Q = 5.0


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] - 0.3 * X[:, 2] + rng.normal(size=n) > 1.8).astype(float)
    w = rng.uniform(0.5, 2.0, n)
    return X, y, w


def test_objective_is_grad_hess():
    x = np.array([-2.0, 0.0, 3.0])
    z = np.array([1.0, 0.0, 1.0])
    g, h = xgboost_objective(Q, label_smoothing=0.1)(z, x)
    g2, h2 = wce_xp.weighted_cross_entropy_grad_hess(z, x, Q, label_smoothing=0.1)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(h, h2)
    w = np.array([1.0, 2.0, 0.5])
    g3, h3 = lightgbm_objective(Q)(z, x, w)
    g4, h4 = wce_xp.weighted_cross_entropy_grad_hess(z, x, Q, weight=w)
    np.testing.assert_array_equal(g3, g4)
    np.testing.assert_array_equal(h3, h4)


def test_bad_objective_options():
    with pytest.raises(ValueError, match="pos_weight"):
        xgboost_objective(-1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        lightgbm_objective(1.0, label_smoothing=2.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_xgboost_native_matches_scale_pos_weight(weighted):
    xgb = pytest.importorskip("xgboost")
    X, y, w = _data()
    d = xgb.DMatrix(X, label=y, weight=w if weighted else None)
    p = {"max_depth": 3, "eta": 0.3, "tree_method": "hist", "seed": 0}
    # built-in: base_score is a probability (0.5 = margin 0); custom: a margin
    ref = xgb.train({**p, "objective": "binary:logistic", "scale_pos_weight": Q,
                     "base_score": 0.5}, d, 25)
    ours = xgb.train({**p, "base_score": 0.0}, d, 25, obj=xgboost_objective(Q))
    m_ref = ref.predict(d, output_margin=True)
    m_ours = ours.predict(d, output_margin=True)
    assert np.max(np.abs(m_ref - m_ours)) <= 1e-4


@pytest.mark.parametrize("weighted", [False, True])
def test_xgboost_sklearn_matches_scale_pos_weight(weighted):
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("sklearn")
    X, y, w = _data()
    kw = {"n_estimators": 25, "max_depth": 3, "learning_rate": 0.3, "base_score": 0.5}
    sw = w if weighted else None
    ref = xgb.XGBClassifier(**kw, scale_pos_weight=Q).fit(X, y, sample_weight=sw)
    ours = xgb.XGBClassifier(**kw, objective=xgboost_objective(Q)).fit(X, y, sample_weight=sw)
    diff = ref.predict(X, output_margin=True) - ours.predict(X, output_margin=True)
    assert np.max(np.abs(diff)) <= 1e-4


@pytest.mark.parametrize("weighted", [False, True])
def test_lightgbm_native_and_sklearn_match_scale_pos_weight(weighted):
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("sklearn")
    X, y, w = _data()
    sw = w if weighted else None
    p = {"num_leaves": 7, "learning_rate": 0.3, "verbose": -1, "seed": 0,
         "deterministic": True, "force_row_wise": True}
    ref = lgb.train({**p, "objective": "binary", "scale_pos_weight": Q,
                     "boost_from_average": False}, lgb.Dataset(X, label=y, weight=sw), 25)
    ours = lgb.train({**p, "objective": lightgbm_objective(Q)},
                     lgb.Dataset(X, label=y, weight=sw), 25)
    assert np.max(np.abs(ref.predict(X, raw_score=True) - ours.predict(X, raw_score=True))) <= 1e-4
    c_ref = lgb.LGBMClassifier(n_estimators=25, **p, scale_pos_weight=Q,
                               boost_from_average=False).fit(X, y, sample_weight=sw)
    c_ours = lgb.LGBMClassifier(n_estimators=25, **p, objective=lightgbm_objective(Q)).fit(
        X, y, sample_weight=sw)
    diff = c_ref.predict(X, raw_score=True) - c_ours.predict(X, raw_score=True)
    assert np.max(np.abs(diff)) <= 1e-4


def test_cupy_predictions_give_cupy_gradients():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        pytest.skip(f"cupy: no usable CUDA device ({exc})")
    preds = cp.asarray([-1.0, 0.5, 2.0])
    g, h = xgboost_objective(Q)(np.array([1.0, 0.0, 1.0]), preds)
    assert isinstance(g, cp.ndarray) and isinstance(h, cp.ndarray)
    g2, _ = xgboost_objective(Q)(np.array([1.0, 0.0, 1.0]), preds.get())
    np.testing.assert_allclose(g.get(), g2, rtol=1e-14)
