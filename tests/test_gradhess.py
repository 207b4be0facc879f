"""Analytic gradient/Hessian and pos_weight_from_labels."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import wce_xp

from . import _reference as R
from ._helpers import DTYPES, assert_like, make, to_numpy

MAX_ULP = 4.0


@functools.cache
def _grid(dtype):
    mags = np.concatenate([10.0 ** np.arange(-30, 31), [0.5, 1, 2, 17, 40, 88, 100, 700, 750]])
    x = np.concatenate([[0.0, np.inf, -np.inf], mags, -mags]).astype(dtype)
    z = np.array([0, 1, 0.5, 0.1, 0.9, 1e-3], dtype)
    q = np.array([0, 1, 2, 1e3, 0.3], dtype)
    X, Z, Q = (a.ravel() for a in np.meshgrid(x, z, q, indexing="ij"))
    g = R.vectorize(lambda *a: R.grad(*a)[0], X, Z, Q)
    s = R.vectorize(lambda *a: R.grad(*a)[1], X, Z, Q)
    h = R.vectorize(R.hess, X, Z, Q)
    return X, Z, Q, g, s, h


def _ulps(got, ref, scale, dtype):
    out = np.zeros(len(got))
    for i, (v, r, s) in enumerate(zip(got.astype(float), ref, scale, strict=True)):
        d = abs(R.mp.mpf(float(v)) - r)
        if abs(s) < R.TINY[dtype]:
            out[i] = 0.0 if d <= R.TINY[dtype] else np.inf
        else:
            out[i] = float(d / float(np.spacing(np.array(float(s), dtype))))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_and_hess_within_4_ulp(xp, device, dtype):
    X, Z, Q, g_ref, scale, h_ref = _grid(dtype)
    x = make(xp, device, X)
    g, h = wce_xp.weighted_cross_entropy_grad_hess(make(xp, device, Z), x, make(xp, device, Q))
    assert_like(g, xp, x.dtype, X.shape, None)
    assert_like(h, xp, x.dtype, X.shape, None)
    eg = _ulps(to_numpy(g), g_ref, scale, dtype)
    eh = _ulps(to_numpy(h), h_ref, h_ref, dtype)
    i, j = int(np.argmax(eg)), int(np.argmax(eh))
    assert eg.max() <= MAX_ULP, ("grad", eg.max(), X[i], Z[i], Q[i])
    assert eh.max() <= MAX_ULP, ("hess", eh.max(), X[j], Z[j], Q[j])


def test_weight_and_smoothing(xp, device):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (8, 3))
    z = np.round(rng.uniform(size=(8, 3)))
    w = rng.uniform(0, 2, (8, 1))
    s = 0.2
    g, h = wce_xp.weighted_cross_entropy_grad_hess(
        make(xp, device, z), make(xp, device, x), 2.0, weight=make(xp, device, w),
        label_smoothing=s)
    zs = z * (1 - s) + s / 2
    sig = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(to_numpy(g), w * ((1 - zs) * sig - 2 * zs * (1 - sig)), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(h), w * (1 + zs) * sig * (1 - sig), rtol=1e-12)


def test_agrees_with_autograd_and_jax_hessian(xp, device, backend):
    x = np.array([-30.0, -3.0, -0.5, 0.0, 0.5, 3.0, 30.0])
    z = np.array([1.0, 0.0, 0.3, 1.0, 0.0, 0.7, 0.0])
    q = 2.5
    g, h = (to_numpy(a) for a in wce_xp.weighted_cross_entropy_grad_hess(
        make(xp, device, z), make(xp, device, x), q))
    if backend.value in ("torch", "torch_cuda"):
        import torch

        xt = make(xp, device, x).requires_grad_(True)
        zt = make(xp, device, z)
        (gt,) = torch.autograd.grad(
            wce_xp.weighted_cross_entropy_with_logits(zt, xt, q).sum(), xt, create_graph=True)
        (ht,) = torch.autograd.grad(gt.sum(), xt)
        got_g, got_h = to_numpy(gt), to_numpy(ht)
    elif backend.value == "jax":
        import jax

        zj = make(xp, device, z)

        def f(v):
            return wce_xp.weighted_cross_entropy_with_logits(zj, v, q)

        got_g = np.asarray(jax.grad(lambda v: f(v).sum())(make(xp, device, x)))
        got_h = np.diag(np.asarray(jax.hessian(lambda v: f(v).sum())(make(xp, device, x))))
    elif backend.value == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(make(xp, device, x))
        zt = make(xp, device, z)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = tf.reduce_sum(wce_xp.weighted_cross_entropy_with_logits(zt, xv, q))
            gt = inner.gradient(loss, xv)
        ht = outer.gradient(gt, xv)  # elementwise loss: the Hessian's diagonal
        got_g, got_h = to_numpy(gt), to_numpy(ht)
    else:
        pytest.skip(f"{backend.value} has no automatic differentiation")
    np.testing.assert_allclose(got_g, g, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(got_h, h, rtol=1e-13, atol=1e-300)


def test_pos_weight_from_labels(xp, device, backend):
    z = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 1, 0], [0, 0.5, 0]])
    m = np.ones_like(z, bool)
    m[3, 1] = False
    got = wce_xp.pos_weight_from_labels(make(xp, device, z), mask=make(xp, device, m))
    np.testing.assert_allclose(to_numpy(got), [4.0, 1.5 / 2.5, 4.0])
    zi = make(xp, device, np.array([[1, 0], [0, 1], [1, 1]], np.int64))
    gi = wce_xp.pos_weight_from_labels(zi)
    assert xp.isdtype(gi.dtype, "real floating")
    z32 = make(xp, device, z, "float32")
    assert wce_xp.pos_weight_from_labels(z32).dtype == z32.dtype
    np.testing.assert_allclose(to_numpy(wce_xp.pos_weight_from_labels(
        make(xp, device, z), axis=(0, 1))), z.size / z.sum() - 1)


def test_class_without_positives(xp, device, backend):
    z = make(xp, device, np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    if backend.value == "dask":
        out = wce_xp.pos_weight_from_labels(z)  # lazy: no error, +inf, nothing computed
        np.testing.assert_array_equal(to_numpy(out), [0.0, np.inf, np.inf])
    else:
        with pytest.raises(ValueError, match=r"labels: class\(es\) \[1, 2\] have no positive"):
            wce_xp.pos_weight_from_labels(z)


def test_pos_weight_from_labels_bad_input():
    with pytest.raises(TypeError, match="labels: expected bool, integer or real"):
        wce_xp.pos_weight_from_labels(np.array([1 + 1j]))
    with pytest.raises(TypeError, match="mask: expected a boolean"):
        wce_xp.pos_weight_from_labels(np.ones((2, 2)), mask=np.ones((2, 2)))
    with pytest.raises(ValueError, match="axis: 3 is out of range"):
        wce_xp.pos_weight_from_labels(np.ones((2, 2)), axis=3)
