"""TensorFlow as a backend: eager, tf.function, XLA, GradientTape, tf.Variable.

The whole suite also runs with ``--backend tensorflow``; this module covers what is
TensorFlow's own: the seed's documented example with a ``tf.Variable``, traced calls,
tapes, and that no call goes through NumPy.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed")

import wce_xp  # noqa: E402

# Backend-independent tests here run in the tensorflow session (tests/conftest.py).
pytestmark = pytest.mark.home("tensorflow")

TF_LABELS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def _analytic_grad(z, x, q):
    s = 1.0 / (1.0 + np.exp(-x))
    return (1.0 - z) * s - q * z * (1.0 - s)


def test_seed_example_runs_as_written_and_returns_a_tf_tensor():
    input_data = tf.Variable(np.random.rand(3, 3), dtype=tf.float32)  # noqa: NPY002
    out = wce_xp.weighted_cross_entropy_with_logits(logits=input_data, targets=TF_LABELS,
                                                     pos_weight=2.0)
    assert isinstance(out, tf.Tensor)
    assert out.dtype == tf.float32 and tuple(out.shape) == (3, 3)
    assert out.device == input_data.device
    peer = tf.nn.weighted_cross_entropy_with_logits(labels=TF_LABELS, logits=input_data,
                                                    pos_weight=2.0)
    np.testing.assert_allclose(out.numpy(), peer.numpy(), rtol=1e-6)


PUBLIC = {
    "weighted": lambda z, x: wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0),
    "weighted_mean_axis0": lambda z, x: wce_xp.weighted_cross_entropy_with_logits(
        z, x, [1.0, 2.0, 3.0], reduction="mean", axis=0),
    "sigmoid": lambda z, x: wce_xp.sigmoid_cross_entropy_with_logits(z, x),
    "bce": lambda z, x: wce_xp.binary_cross_entropy_with_logits(x, z),
    "focal": lambda z, x: wce_xp.sigmoid_focal_loss(z, x, gamma=0.5, alpha=0.25),
    "grad": lambda z, x: wce_xp.weighted_cross_entropy_grad_hess(z, x, 2.0)[0],
    "hess": lambda z, x: wce_xp.weighted_cross_entropy_grad_hess(z, x, 2.0)[1],
    "pos_weight_from_labels": lambda z, x: wce_xp.pos_weight_from_labels(z),
}


def _data(dtype=tf.float32):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, (6, 3))
    x[0, 0] = 0.0
    z = (rng.uniform(size=(6, 3)) < 0.4).astype(float)
    z[0] = 1.0
    return tf.constant(z, dtype), tf.constant(x, dtype)


@pytest.mark.parametrize("name", list(PUBLIC))
@pytest.mark.parametrize("jit", [False, True], ids=["tf.function", "xla"])
def test_every_function_inside_tf_function(name, jit):
    z, x = _data()
    fn = PUBLIC[name]
    eager = fn(z, x)
    traced = tf.function(fn, jit_compile=jit)(z, x)
    assert isinstance(traced, tf.Tensor) and traced.dtype == eager.dtype
    assert tuple(traced.shape) == tuple(eager.shape)
    np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=4 * 2**-23, atol=1e-7)


def test_value_checks_run_eagerly_and_never_inside_tf_function():
    z, x = _data()
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce_xp.weighted_cross_entropy_with_logits(z * 3, x, 1.0)
    # traced: no data-dependent check, the formula for any real labels
    out = tf.function(lambda zz, xx: wce_xp.weighted_cross_entropy_with_logits(zz, xx, 1.0))(
        z * 3, x)
    want = wce_xp.weighted_cross_entropy_with_logits(z * 3, x, 1.0, validate=False)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-6)


def test_gradient_tape_at_zero_and_at_infinity():
    """TensorFlow's own function differentiates wrongly at x = 0 and gives NaN at inf."""
    x = tf.Variable([0.0, 0.0, np.inf, -np.inf, 3.0], dtype=tf.float64)
    z = tf.constant([0.25, 1.0, 1.0, 0.0, 0.5], tf.float64)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0))
    g = tape.gradient(loss, x).numpy()
    assert np.isfinite(g).all() and np.isfinite(loss.numpy())
    want = _analytic_grad(z.numpy(), np.array([0.0, 0.0, 0.0, 0.0, 3.0]), 2.0)
    want[2:4] = 0.0  # the limits at +inf with label 1 and -inf with label 0
    np.testing.assert_allclose(g, want, rtol=1e-15, atol=1e-300)


def test_second_derivatives_through_nested_tapes_inside_tf_function():
    x = tf.Variable(np.linspace(-5, 5, 11), dtype=tf.float64)
    z = tf.constant(np.full(11, 0.3), tf.float64)

    @tf.function
    def hess_diag():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = tf.reduce_sum(wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0))
            g = inner.gradient(loss, x)
        return outer.gradient(g, x)

    _, h = wce_xp.weighted_cross_entropy_grad_hess(z, x, 2.0)
    np.testing.assert_allclose(hess_diag().numpy(), h.numpy(), rtol=1e-13)


def test_no_numpy_round_trip(monkeypatch):
    """Every step is a TensorFlow op: reading a tensor into NumPy is refused here."""
    z, x = _data()
    q = tf.constant([1.0, 2.0, 3.0])
    w = tf.constant([[2.0]] * 6)

    def refuse(*a, **k):
        raise AssertionError("a tensor went through NumPy")

    from tensorflow.python.framework import ops

    monkeypatch.setattr(ops.EagerTensor, "numpy", refuse)
    monkeypatch.setattr(ops.EagerTensor, "__array__", refuse)
    for name, fn in PUBLIC.items():
        if name != "pos_weight_from_labels":
            fn(z, x)
    wce_xp.weighted_cross_entropy_with_logits(z, x, q, weight=w, mask=z >= 0,
                                              reduction="weighted_mean", validate=False)


def test_half_precision_and_variables_keep_their_dtype():
    z, x = _data()
    for dt in (tf.float16, tf.bfloat16, tf.float64):
        xv = tf.Variable(tf.cast(x, dt))
        out = wce_xp.sigmoid_cross_entropy_with_logits(z, xv)
        assert out.dtype == dt


def test_python_scalars_and_lists_beside_tensors():
    x = tf.constant([0.5, -1.0], tf.float64)
    out = wce_xp.weighted_cross_entropy_with_logits([1, 0], x, 2.0, weight=[1.0, 2.0])
    assert isinstance(out, tf.Tensor) and out.dtype == tf.float64
    with pytest.raises(TypeError, match="arrays from different libraries"):
        wce_xp.weighted_cross_entropy_with_logits(np.array([1.0, 0.0]), x, 2.0)


@pytest.mark.parametrize("jit", [False, True])
def test_float32_mean_in_blocks_of_eight_within_1e_6(jit):
    """A float32 sum over every element adds runs of 8 in float32, then in float64
    (XLA's float64 conversion and sum took twice the time of the float32 loss): within
    1e-6 of float64 at 1e7 elements, eagerly and inside tf.function(jit_compile=True),
    where TensorFlow's own float32 mean is 7e-4 off."""
    n = 10_000_000
    rng = np.random.default_rng(2)
    x = rng.normal(0, 4, (n // 10, 10)).astype(np.float32)
    z = (rng.uniform(size=x.shape) > 0.8).astype(np.float32)
    ref = wce_xp.weighted_cross_entropy_with_logits(
        z.astype(np.float64), x.astype(np.float64), 2.0, reduction="mean")

    def f(zz, xx):
        return wce_xp.weighted_cross_entropy_with_logits(zz, xx, 2.0, reduction="mean")

    run = tf.function(f, jit_compile=True) if jit else f
    got = run(tf.constant(z), tf.constant(x))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6)


def test_eager_checks_run_inside_the_compiled_loss(monkeypatch):
    """Eager calls that check values run the checks inside the loss's compiled call
    (one dispatch; the separate checker is never called): the same values as without
    checks, for every reduction and option but the focal factor, and the same errors,
    naming the argument, for each checked array."""
    from wce_xp._native import _tf as native_tf

    def separate(*a, **k):
        raise AssertionError("the separate value check ran")

    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(0, 4, (40, 3)).astype(np.float32))
    z = tf.constant((rng.uniform(size=(40, 3)) > 0.6).astype(np.float32))
    q = tf.constant([0.5, 2.0, 3.0], tf.float32)
    w = tf.constant(rng.uniform(0, 2, (40, 1)).astype(np.float32))
    m = tf.constant(rng.uniform(size=(40, 3)) > 0.2)
    f = wce_xp.weighted_cross_entropy_with_logits
    cases = [dict(reduction=r, **o) for r in ("none", "sum", "mean", "weighted_mean")
             for o in ({}, {"weight": w}, {"mask": m}, {"weight": w, "mask": m},
                       {"label_smoothing": 0.1})]
    cases += [dict(reduction="mean", axis=0), dict(reduction="sum", axis=(0, 1), weight=w)]
    monkeypatch.setattr(native_tf, "in_range", separate)
    for kw in cases:
        got = f(z, x, q, **kw)
        want = f(z, x, q, validate=False, **kw)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=str(kw))
    got = wce_xp.binary_cross_entropy_with_logits(x, z, weight=w, reduction="mean",
                                                  validate=True)
    np.testing.assert_allclose(got.numpy(), wce_xp.binary_cross_entropy_with_logits(
        x, z, weight=w, reduction="mean").numpy(), rtol=1e-6)
    bad_z = tf.tensor_scatter_nd_update(z, [[3, 1]], [1.5])
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        f(bad_z, x, q, reduction="mean")
    with pytest.raises(ValueError, match=r"target: values must lie in \[0, 1\]"):
        wce_xp.binary_cross_entropy_with_logits(x, bad_z, validate=True)
    with pytest.raises(ValueError, match="pos_weight: values must be finite"):
        f(z, x, tf.constant([0.5, -2.0, 3.0]))
    with pytest.raises(ValueError, match="pos_weight: values must be finite"):
        f(z, x, tf.constant([0.5, float("nan"), 3.0]), reduction="sum")
    with pytest.raises(ValueError, match="weight: values must be finite"):
        f(z, x, 2.0, weight=tf.constant(np.full((40, 1), np.inf, np.float32)))
    # the focal loss takes the separate check (its factor is not in the compiled call)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce_xp.sigmoid_focal_loss(bad_z, x)
