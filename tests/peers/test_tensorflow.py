"""TensorFlow's own tests of these functions, ported to wce_xp on every backend.

Sources (TensorFlow's repository):
* ``tensorflow/python/ops/nn_xent_test.py``: ``SigmoidCrossEntropyWithLogitsTest`` and
  ``WeightedCrossEntropyTest``;
* ``tensorflow/python/kernel_tests/losses_test.py`` (``tf.compat.v1.losses``):
  ``SigmoidCrossEntropyLossTest``.

Inputs, expected values and tolerances are TensorFlow's. TF1's losses reduce with
``SUM_BY_NONZERO_WEIGHTS`` (the weighted sum over the number of non-zero weights);
wce_xp spells that ``weight=w, mask=w != 0, reduction="mean"``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import wce_xp

from ._common import gradient, make, to_numpy, with_grad

# Backend-independent tests here run in the tensorflow session (tests/conftest.py).
pytestmark = pytest.mark.home("tensorflow")

wce = wce_xp.weighted_cross_entropy_with_logits
sce = wce_xp.sigmoid_cross_entropy_with_logits

X = [-100, -2, -2, 0, 2, 2, 2, 100]
Y = [0, 0, 1, 0, 0, 1, 0.5, 1]


def _tf_expected(x, y, q=1.0):
    """TensorFlow's reference: probabilities clipped to [1e-4, 1 - 1e-4]."""
    eps = 0.0001
    pred = [min(max(1 / (1 + math.exp(-v)), eps), 1 - eps) for v in x]
    return [-z * q * math.log(p) - (1 - z) * math.log(1 - p) for p, z in zip(pred, y, strict=True)]


def _dtypes(backend):
    # TF tests float32 and float16; array-api-strict has no float16
    return ["float32"] if backend.value == "array_api_strict" else ["float32", "float16"]


# --- nn_xent_test.py: SigmoidCrossEntropyWithLogitsTest --------------------------------


def test_sigmoid_logistic_output(xp, device, backend):
    """testLogisticOutput"""
    want = np.array(_tf_expected(X, Y), np.float32)
    for dtype in _dtypes(backend):
        out = sce(labels=make(xp, device, Y, dtype), logits=make(xp, device, X, dtype))
        np.testing.assert_allclose(to_numpy(out).astype(np.float32), want, atol=0.001)


def test_sigmoid_logistic_output_multi_dim(xp, device, backend):
    """testLogisticOutputMultiDim"""
    want = np.array(_tf_expected(X, Y), np.float32).reshape(2, 2, 2)
    for dtype in _dtypes(backend):
        out = sce(labels=make(xp, device, np.reshape(Y, (2, 2, 2)), dtype),
                  logits=make(xp, device, np.reshape(X, (2, 2, 2)), dtype))
        assert tuple(out.shape) == (2, 2, 2)
        np.testing.assert_allclose(to_numpy(out).astype(np.float32), want, atol=0.001)


def _numeric_jacobian_error(backend, xp, device, fn, grad_fn, x):
    """TF's gradient_checker.compute_gradient_error on an elementwise loss: the largest
    difference between the theoretical and the numerical (central, delta 1e-3)
    Jacobian. The Jacobian is diagonal; off-diagonal entries are 0 on both sides."""
    theo = gradient(backend, xp, device, with_grad(fn, grad_fn), x)
    delta = 1e-3
    plus = to_numpy(fn(make(xp, device, x + delta)))
    minus = to_numpy(fn(make(xp, device, x - delta)))
    numeric = (plus - minus) / (2 * delta)
    return float(np.max(np.abs(theo - numeric)))


def test_sigmoid_gradient(xp, device, backend):
    """testGradient: sizes [4, 2], float64, error < 1e-7."""
    x = np.reshape(np.array(X, np.float64), (4, 2))
    z = make(xp, device, np.reshape(Y, (4, 2)), "float64")
    err = _numeric_jacobian_error(
        backend, xp, device, lambda v: sce(labels=z, logits=v),
        lambda v: wce_xp.weighted_cross_entropy_grad_hess(z, v)[0], x)
    assert err < 1e-7


def test_sigmoid_gradient_at_zero(xp, device, backend):
    """testGradientAtZero: TensorFlow's own formula fails this at x = 0 in its
    derivative's second term; the gradient must be [0.5, -0.5]."""
    z = make(xp, device, [0.0, 1.0], "float64")
    g = gradient(backend, xp, device, with_grad(
        lambda v: sce(labels=z, logits=v),
        lambda v: wce_xp.weighted_cross_entropy_grad_hess(z, v)[0]), np.zeros(2))
    np.testing.assert_allclose(g, [0.5, -0.5])


def test_sigmoid_shape_error(xp, device):
    """testShapeError (labels outside [0, 1] as well: the shape is checked first)."""
    with pytest.raises(ValueError, match="must have the same shape"):
        sce(labels=make(xp, device, [1, 2, 3], "float32"),
            logits=make(xp, device, [[2, 1]], "float32"))
    with pytest.raises(ValueError, match="must have the same shape"):
        sce(labels=[1, 2, 3], logits=[[2, 1]], xp=xp)


def test_sigmoid_construction_named():
    """testConstructionNamed: ``name=`` is accepted (there is no graph to name)."""
    out = sce(labels=np.array(Y, float), logits=np.array(X, float), name="mylogistic")
    assert out.shape == (8,)


# --- nn_xent_test.py: WeightedCrossEntropyTest ----------------------------------------


def test_weighted_output(xp, device):
    """testOutput: q = 3, float32, atol 1e-3."""
    out = wce(targets=make(xp, device, Y, "float32"), logits=make(xp, device, X, "float32"),
              pos_weight=3.0)
    np.testing.assert_allclose(to_numpy(out), np.array(_tf_expected(X, Y, 3.0), np.float32),
                               atol=0.001)


def test_weighted_output_multi_dim(xp, device):
    """testOutputMultiDim"""
    out = wce(targets=make(xp, device, np.reshape(Y, (2, 2, 2)), "float32"),
              logits=make(xp, device, np.reshape(X, (2, 2, 2)), "float32"), pos_weight=3.0)
    want = np.array(_tf_expected(X, Y, 3.0), np.float32).reshape(2, 2, 2)
    np.testing.assert_allclose(to_numpy(out), want, atol=0.001)


def test_weighted_gradient(xp, device, backend):
    """testGradient: q = 3, sizes [4, 2], float64, error < 1e-7."""
    x = np.reshape(np.array(X, np.float64), (4, 2))
    z = make(xp, device, np.reshape(Y, (4, 2)), "float64")
    err = _numeric_jacobian_error(
        backend, xp, device, lambda v: wce(targets=z, logits=v, pos_weight=3.0),
        lambda v: wce_xp.weighted_cross_entropy_grad_hess(z, v, 3.0)[0], x)
    assert err < 1e-7


def test_weighted_shape_error(xp):
    """testShapeError"""
    with pytest.raises(ValueError, match="must have the same shape"):
        wce(targets=[1, 2, 3], logits=[[2, 1]], pos_weight=2.0, xp=xp)


def test_weighted_construction_named():
    """testConstructionNamed"""
    out = wce(targets=np.array(Y, float), logits=np.array(X, float), pos_weight=3.0,
              name="mybce")
    assert out.shape == (8,)


@pytest.mark.parametrize("fn", ["sigmoid", "weighted"])
def test_construction_named_in_a_graph(fn):
    """testConstructionNamed as TensorFlow runs it: in a graph, the op carries the name
    scope given as ``name=`` (``loss.op.name`` starts with it)."""
    tf = pytest.importorskip("tensorflow")
    name = {"sigmoid": "mylogistic", "weighted": "mybce"}[fn]

    @tf.function
    def build(z, x):
        if fn == "sigmoid":
            out = sce(labels=z, logits=x, name=name)
        else:
            out = wce(targets=z, logits=x, pos_weight=3.0, name=name)
        assert out.name.startswith(f"{name}/"), out.name
        return out

    out = build(tf.constant(Y, tf.float64), tf.constant(X, tf.float64))
    np.testing.assert_allclose(out.numpy(), sce(labels=np.array(Y, float),
                                                logits=np.array(X, float))
                               if fn == "sigmoid" else wce(targets=np.array(Y, float),
                                                           logits=np.array(X, float),
                                                           pos_weight=3.0), rtol=1e-12)


# --- losses_test.py: SigmoidCrossEntropyLossTest (tf.compat.v1.losses) ----------------

EYE_LOGITS = [[100.0, -100.0, -100.0], [-100.0, 100.0, -100.0], [-100.0, -100.0, 100.0]]


def _v1_loss(xp, device, labels, logits, weights=1.0, label_smoothing=0.0):
    """tf.compat.v1.losses.sigmoid_cross_entropy with SUM_BY_NONZERO_WEIGHTS."""
    z = make(xp, device, np.asarray(labels, np.float32))
    x = make(xp, device, np.asarray(logits, np.float32))
    if np.isscalar(weights):
        return sce(z, x, weight=weights, label_smoothing=label_smoothing, reduction="mean")
    w = np.asarray(weights, np.float32)
    return sce(z, x, weight=make(xp, device, w), mask=make(xp, device, w != 0),
               label_smoothing=label_smoothing, reduction="mean")


def test_v1_all_correct_sigmoid(xp, device):
    """testAllCorrectSigmoid"""
    loss = _v1_loss(xp, device, np.eye(3), EYE_LOGITS)
    np.testing.assert_almost_equal(float(to_numpy(loss)), 0.0, 3)


@pytest.mark.parametrize("classes", [1, 2])
def test_v1_single_dim_logits_and_weights(xp, device, classes):
    """testLossWithSingleDimPlaceholderForLogitsAndWeights1/2"""
    loss = _v1_loss(xp, device, np.ones((32, classes)), np.ones((32, classes)),
                    weights=np.ones((32, classes)))
    np.testing.assert_almost_equal(float(to_numpy(loss)), 0.313, 3)


def test_v1_all_wrong_sigmoid(xp, device):
    """testAllWrongSigmoid"""
    labels = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    loss = _v1_loss(xp, device, labels, EYE_LOGITS)
    np.testing.assert_almost_equal(float(to_numpy(loss)), 600.0 / 9.0, 3)


def test_v1_all_wrong_sigmoid_with_measurement_specific_weights(xp, device):
    """testAllWrongSigmoidWithMeasurementSpecificWeights"""
    labels = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    weights = [[3, 4, 5], [2, 6, 0], [8, 0, 1]]
    loss = _v1_loss(xp, device, labels, EYE_LOGITS, weights)
    np.testing.assert_almost_equal(float(to_numpy(loss)), 1700.0 / 7.0, 3)


def test_v1_multi_correct_sigmoid(xp, device):
    """testMultiCorrectSigmoid"""
    logits = [[100.0, -100.0, 100.0], [100.0, 100.0, -100.0], [-100.0, 100.0, 100.0]]
    labels = [[1, 0, 1], [1, 1, 0], [0, 1, 1]]
    np.testing.assert_almost_equal(float(to_numpy(_v1_loss(xp, device, labels, logits))),
                                   0.0, 3)


def test_v1_sigmoid_label_smoothing_correct(xp, device):
    """testSigmoidLabelSmoothingCorrect: (100 + 50 L) / 3."""
    s = 0.1
    loss = _v1_loss(xp, device, [[1, 0, 1]], [[100.0, -100.0, -100.0]], label_smoothing=s)
    np.testing.assert_almost_equal(float(to_numpy(loss)), (100.0 + 50.0 * s) / 3.0, 3)


def test_v1_label_smoothing_equals_two_class_softmax(xp, device):
    """testSigmoidLabelSmoothingEqualsSoftmaxTwoLabel: the softmax side is computed
    here in NumPy (wce_xp has no softmax loss): two-class softmax with smoothing L/2
    per class on logits [0, 100] etc. equals the smoothed sigmoid loss."""
    s = 0.1
    sig = _v1_loss(xp, device, [[1, 0, 1]], [[100.0, -100.0, -100.0]], label_smoothing=s)
    soft_logits = np.array([[0.0, 100.0], [100.0, 0.0], [100.0, 0.0]])
    soft_labels = np.array([[0, 1], [1, 0], [0, 1]], float) * (1 - s) + s / 2
    logp = soft_logits - np.logaddexp.reduce(soft_logits, axis=1, keepdims=True)
    softmax_loss = float(np.mean(-(soft_labels * logp).sum(axis=1)))
    np.testing.assert_almost_equal(float(to_numpy(sig)), softmax_loss, 3)
