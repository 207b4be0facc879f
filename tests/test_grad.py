"""Gradients through the loss with torch autograd and jax.grad, against the analytic
derivative l·σ(x) - q·z computed with mpmath."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import wce_xp

from . import _reference as R
from ._helpers import DTYPES, make, to_numpy

MAX_ULP = 4.0


@functools.cache
def _grid(dtype: str):
    mags = np.concatenate([10.0 ** np.arange(-30, 31, 2), [0.5, 1, 3, 17, 40, 100, 800]])
    x = np.concatenate([[0.0, np.inf, -np.inf], mags, -mags]).astype(dtype)
    z = np.array([0, 1, 0.5, 0.1, 0.9], dtype)
    q = np.array([0, 1, 2, 1e3, 0.3], dtype)
    X, Z, Q = (a.ravel() for a in np.meshgrid(x, z, q, indexing="ij"))
    ref = R.vectorize(lambda *a: R.grad(*a)[0], X, Z, Q)
    scale = R.vectorize(lambda *a: R.grad(*a)[1], X, Z, Q)
    return X, Z, Q, ref, scale


def _autograd(backend, xp, device, fn, x, z, q):
    """d sum(fn(z, x, q)) / dx with the backend's autodiff."""
    if backend.value in ("torch", "torch_cuda"):
        xt = make(xp, device, x).requires_grad_(True)
        fn(make(xp, device, z), xt, make(xp, device, q)).sum().backward()
        return to_numpy(xt.grad)
    if backend.value == "jax":
        import jax

        zj, qj = make(xp, device, z), make(xp, device, q)
        g = jax.grad(lambda xv: fn(zj, xv, qj).sum())(make(xp, device, x))
        return to_numpy(g)
    if backend.value == "tensorflow":
        import tensorflow as tf

        xv = tf.Variable(make(xp, device, x))
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(fn(make(xp, device, z), xv, make(xp, device, q)))
        return to_numpy(tape.gradient(total, xv))
    pytest.skip(f"{backend.value} has no automatic differentiation")


def _check(got, X, Z, Q, ref, scale, dtype):
    assert np.all(np.isfinite(got)), f"non-finite gradient at x={X[~np.isfinite(got)]}"
    err = np.array([
        float(abs(R.mp.mpf(float(g)) - r) / np.spacing(np.array(float(s), dtype)).astype(float))
        if abs(float(s)) > R.TINY[dtype] else float(abs(R.mp.mpf(float(g)) - r) > R.TINY[dtype])
        for g, r, s in zip(got.astype(float), ref, scale, strict=True)
    ])
    i = int(np.argmax(err))
    assert err.max() <= MAX_ULP, (
        f"{err.max():.2f} ulp at x={X[i]!r}, z={Z[i]!r}, q={Q[i]!r}: got {got[i]!r}, want {ref[i]}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_autograd_matches_analytic_gradient(xp, device, backend, dtype):
    X, Z, Q, ref, scale = _grid(dtype)
    got = _autograd(backend, xp, device, wce_xp.weighted_cross_entropy_with_logits, X, Z, Q)
    _check(got, X, Z, Q, ref, scale, dtype)


def test_gradient_at_zero_is_exact(xp, device, backend):
    # TensorFlow returns 1 - z here; the derivative is l/2 - q·z.
    z = np.array([0.0, 1.0, 0.5, 0.25], np.float64)
    q = np.array([2.0, 2.0, 3.0, 0.5], np.float64)
    x = np.zeros(4)
    got = _autograd(backend, xp, device, wce_xp.weighted_cross_entropy_with_logits, x, z, q)
    np.testing.assert_array_equal(got, (1 + (q - 1) * z) / 2 - q * z)


def test_masked_entries_get_zero_gradient(xp, device, backend):
    z = np.array([np.nan, 1.0, 0.0, np.nan])
    x = np.array([np.inf, 2.0, np.nan, -np.inf])
    mask = make(xp, device, ~np.isnan(z) & ~np.isnan(x))

    def fn(zz, xx, qq):
        return wce_xp.weighted_cross_entropy_with_logits(zz, xx, qq, mask=mask)

    got = _autograd(backend, xp, device, fn, x, z, np.full(4, 2.0))
    assert got[0] == 0 and got[2] == 0 and got[3] == 0
    assert np.isfinite(got[1]) and got[1] != 0
