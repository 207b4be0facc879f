"""Focal loss: values against mpmath, gamma = 0 is the cross-entropy, finite gradients."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import wce_xp

from . import _reference as R
from ._helpers import DTYPES, make, to_numpy

REL = {"float32": 2e-5, "float64": 1e-12}


@functools.cache
def _grid(dtype):
    mags = np.concatenate([10.0 ** np.arange(-30, 31, 3), [0.5, 1, 2, 5, 17, 40, 90, 100, 700]])
    x = np.concatenate([[0.0, np.inf, -np.inf], mags, -mags]).astype(dtype)
    z = np.array([0, 1, 0.5, 0.1, 0.9], dtype)
    g = np.array([0.25, 0.5, 1.0, 2.0, 5.0])
    X, Z, G = (a.ravel() for a in np.meshgrid(x, z, g, indexing="ij"))
    return X, Z, G


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_against_mpmath(xp, device, dtype, alpha):
    X, Z, G = _grid(dtype)
    q = 2.0
    for gamma in np.unique(G):
        sel = gamma == G
        x, z = X[sel], Z[sel]
        got = to_numpy(wce_xp.sigmoid_focal_loss(
            make(xp, device, z), make(xp, device, x), gamma=float(gamma), alpha=alpha,
            pos_weight=q))
        ref = R.vectorize(lambda a, b, g=float(gamma): R.focal(a, b, q, g, alpha), x, z)
        for i, r in enumerate(ref):
            if R.mp.isinf(r):
                assert got[i] == float(r), (x[i], z[i], gamma, got[i])
            elif abs(r) > R.TINY[dtype]:
                rel = float(abs((R.mp.mpf(float(got[i])) - r) / r))
                assert rel <= REL[dtype], (x[i], z[i], gamma, got[i], r, rel)
            else:
                assert abs(float(got[i])) <= 2 * R.TINY[dtype], (x[i], z[i], gamma, got[i], r)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_zero_is_the_cross_entropy_exactly(xp, device, dtype):
    x, z, q = R.accuracy_grid(dtype)
    args = (make(xp, device, z), make(xp, device, x))
    fl = wce_xp.sigmoid_focal_loss(*args, gamma=0.0, pos_weight=make(xp, device, q))
    ce = wce_xp.weighted_cross_entropy_with_logits(*args, make(xp, device, q))
    np.testing.assert_array_equal(to_numpy(fl), to_numpy(ce))


def test_matches_torchvision_formula_on_moderate_inputs(xp, device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, 500)
    z = rng.uniform(0, 1, 500)
    z[::2] = np.round(z[::2])
    xt, zt = torch.asarray(x), torch.asarray(z)
    # torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a dependency)
    p = torch.sigmoid(xt)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(xt, zt, reduction="none")
    p_t = p * zt + (1 - p) * (1 - zt)
    want = (ce * (1 - p_t) ** 2) * (0.25 * zt + 0.75 * (1 - zt))
    got = wce_xp.sigmoid_focal_loss(make(xp, device, z), make(xp, device, x), gamma=2.0,
                                    alpha=0.25)
    np.testing.assert_allclose(to_numpy(got), want.numpy(), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("gamma", [0.1, 0.5, 1.0, 2.0])
def test_gradients_are_finite_at_large_and_infinite_logits(xp, device, backend, gamma):
    x = np.array([100.0, -100.0, 1e4, -1e4, np.inf, -np.inf, 0.0, 3.0] * 3)
    z = np.repeat([0.0, 1.0, 0.3], 8)
    for dtype in ("float32", "float64"):
        def fl(zz, xx):
            return wce_xp.sigmoid_focal_loss(zz, xx, gamma=gamma, alpha=0.25, pos_weight=2.0)

        if backend.value in ("torch", "torch_cuda"):
            xt = make(xp, device, x, dtype).requires_grad_(True)
            val = fl(make(xp, device, z, dtype), xt)
            val.sum().backward() if np.all(np.isfinite(to_numpy(val))) else \
                val[xp.isfinite(val)].sum().backward()
            g = to_numpy(xt.grad)
        elif backend.value == "jax":
            import jax

            zj = make(xp, device, z, dtype)
            def finite_sum(v, zj=zj):
                val = fl(zj, v)
                return xp.sum(xp.where(xp.isfinite(val), val, 0.0))

            g = np.asarray(jax.grad(finite_sum)(make(xp, device, x, dtype)))
        elif backend.value == "tensorflow":
            import tensorflow as tf

            xv = tf.Variable(make(xp, device, x, dtype))
            with tf.GradientTape() as tape:
                val = fl(make(xp, device, z, dtype), xv)
                total = tf.reduce_sum(tf.where(tf.math.is_finite(val), val, 0.0))
            g = to_numpy(tape.gradient(total, xv))
        else:
            pytest.skip(f"{backend.value} has no automatic differentiation")
        assert np.all(np.isfinite(g)), (dtype, x[~np.isfinite(g)], z[~np.isfinite(g)])
        v = to_numpy(fl(make(xp, device, z, dtype), make(xp, device, x, dtype)))
        assert not np.any(np.isnan(v))


@pytest.mark.home("torch")
def test_focal_gradient_matches_finite_difference_in_float64():
    torch = pytest.importorskip("torch")
    x = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([1.0, 0.0, 0.4, 1.0, 0.0], dtype=torch.float64)
    wce_xp.sigmoid_focal_loss(z, x, gamma=0.7, alpha=0.3, pos_weight=1.5).sum().backward()
    h = 1e-6
    xs = x.detach().numpy()
    zs = z.numpy()

    def f(v):
        return wce_xp.sigmoid_focal_loss(zs, v, gamma=0.7, alpha=0.3, pos_weight=1.5)

    fd = (f(xs + h) - f(xs - h)) / (2 * h)
    np.testing.assert_allclose(x.grad.numpy(), fd, rtol=1e-7, atol=1e-9)


def test_bad_focal_options():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"gamma: expected a number in \[0.0, inf\]"):
        wce_xp.sigmoid_focal_loss(x, x, gamma=-1.0)
    with pytest.raises(ValueError, match=r"alpha: expected a number in \[0.0, 1.0\]"):
        wce_xp.sigmoid_focal_loss(x, x, alpha=2.0)
