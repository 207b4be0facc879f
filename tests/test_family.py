"""Options of the TensorFlow-style functions: weight, mask, label smoothing, reductions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import wce_xp

from . import _reference as R
from ._helpers import DTYPES, assert_like, make, to_numpy

wce = wce_xp.weighted_cross_entropy_with_logits


def _data(dtype="float64", shape=(6, 3), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, shape).astype(dtype)
    z = rng.uniform(0, 1, shape).astype(dtype)
    z[::2] = np.round(z[::2])
    return x, z


def _ref(x, z, q):
    return R.vectorize(R.loss, x, z, q).astype(float)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_per_class_and_per_sample(xp, device, dtype):
    x, z = _data(dtype)
    wc = np.array([0.5, 2.0, 1.0], dtype)
    ws = np.arange(6, dtype=dtype).reshape(6, 1)
    for w in (wc, ws, np.float64(3.0)):
        got = wce(make(xp, device, z), make(xp, device, x), 2.0,
                  weight=w if np.ndim(w) == 0 else make(xp, device, w))
        assert got.dtype == getattr(xp, dtype)
        want = np.asarray(w, float) * _ref(x, z, 2.0)
        np.testing.assert_allclose(to_numpy(got), want, rtol=8 * np.finfo(dtype).eps)


def test_mask_with_nan_and_inf_contributes_exactly_zero(xp, device, backend):
    z = np.array([[1.0, np.nan, 0.0], [np.nan, 0.0, 1.0]])
    x = np.array([[2.0, np.inf, -1.0], [np.nan, -np.inf, 3.0]])
    mask = ~np.isnan(z)
    got = to_numpy(wce(make(xp, device, z), make(xp, device, x), 3.0, mask=make(xp, device, mask)))
    assert got[0, 1] == 0 and got[1, 0] == 0
    np.testing.assert_allclose(got[mask], _ref(x[mask], z[mask], 3.0), rtol=1e-15)
    for red, want in (("sum", got.sum()), ("mean", got.sum() / 4)):
        out = wce(make(xp, device, z), make(xp, device, x), 3.0, mask=make(xp, device, mask),
                  reduction=red)
        np.testing.assert_allclose(to_numpy(out), want, rtol=1e-15)


def test_mask_broadcasts(xp, device):
    x, z = _data()
    m = np.array([True, False, True])
    got = to_numpy(wce(make(xp, device, z), make(xp, device, x), 1.0, mask=make(xp, device, m),
                       reduction="mean", axis=0))
    full = _ref(x, z, 1.0).mean(axis=0)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], full[[0, 2]], rtol=1e-14)


@pytest.mark.parametrize("s", [0.0, 0.1, 1.0])
def test_label_smoothing_follows_keras(xp, device, s):
    x, z = _data()
    got = to_numpy(wce(make(xp, device, z), make(xp, device, x), 2.0, label_smoothing=s))
    np.testing.assert_allclose(got, _ref(x, z * (1 - s) + s / 2, 2.0), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_and_axis(xp, device, dtype):
    x, z = _data(dtype, (5, 4, 3))
    w = np.random.default_rng(3).uniform(0, 2, (5, 1, 3)).astype(dtype)
    m = np.random.default_rng(4).uniform(size=(5, 4, 3)) > 0.3
    el = _ref(x, z, 2.0) * np.broadcast_to(w, x.shape)
    el = np.where(m, el, 0.0)
    wb = np.where(m, np.broadcast_to(w, x.shape), 0.0)
    args = (make(xp, device, z), make(xp, device, x), 2.0)
    kw = dict(weight=make(xp, device, w), mask=make(xp, device, m))
    rtol = 1e-5 if dtype == "float32" else 1e-13
    for axis in (None, 0, -1, (0, 1)):
        ax = axis
        s = el.sum(axis=ax)
        n = m.sum(axis=ax)
        cases = {"sum": s, "mean": s / n, "weighted_mean": s / wb.sum(axis=ax)}
        for red, want in cases.items():
            got = wce(*args, reduction=red, axis=axis, **kw)
            assert_like(got, xp, getattr(xp, dtype), np.shape(want), None)
            np.testing.assert_allclose(to_numpy(got), want, rtol=rtol)


def test_empty_or_zero_weight_reduction_is_nan_without_warnings(xp, device, backend):
    x, z = _data(shape=(4, 3))
    m = np.ones((4, 3), bool)
    m[:, 1] = False
    w = np.ones((4, 3))
    w[:, 2] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = to_numpy(wce(make(xp, device, z), make(xp, device, x), 1.0,
                            mask=make(xp, device, m), reduction="mean", axis=0))
        wmean = to_numpy(wce(make(xp, device, z), make(xp, device, x), 1.0,
                             weight=make(xp, device, w), reduction="weighted_mean", axis=0))
        empty = to_numpy(wce(make(xp, device, np.zeros((0, 3))), make(xp, device, np.zeros((0, 3))),
                             1.0, reduction="mean"))
    assert np.isnan(mean[1]) and np.all(np.isfinite(mean[[0, 2]]))
    assert np.isnan(wmean[2]) and np.all(np.isfinite(wmean[:2]))
    assert np.isnan(empty)


def test_zero_weight_drops_an_infinite_loss(xp, device):
    got = to_numpy(wce(make(xp, device, [0.0, 0.0]), make(xp, device, [np.inf, 1.0]), 1.0,
                       weight=make(xp, device, [0.0, 1.0]), reduction="sum"))
    np.testing.assert_allclose(got, np.log1p(np.e))


@pytest.mark.home("dask")
def test_dask_stays_lazy_and_keeps_chunks():
    da = pytest.importorskip("dask.array")
    import dask

    x, z = _data(shape=(40, 3))
    xd = da.from_array(x, chunks=(10, 3))
    zd = da.from_array(z, chunks=(10, 3))
    calls = []

    def counting_get(*args, **kw):
        calls.append(1)
        return dask.get(*args, **kw)

    with dask.config.set(scheduler=counting_get):
        out = wce(zd, xd, 2.0, weight=da.from_array(np.ones(3)), mask=~da.isnan(zd),
                  label_smoothing=0.1)
        red = wce(zd, xd, 2.0, reduction="mean", axis=0)
        fl = wce_xp.sigmoid_focal_loss(zd, xd, gamma=0.5)
    assert not calls, "building the graph computed something"
    assert out.chunks == xd.chunks and fl.chunks == xd.chunks
    np.testing.assert_allclose(out.compute(), wce(z, x, 2.0, label_smoothing=0.1), rtol=1e-15)
    np.testing.assert_allclose(red.compute(), wce(z, x, 2.0, reduction="mean", axis=0),
                               rtol=1e-14)


@pytest.mark.home("jax")
def test_jax_jit_of_every_option():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    x, z = _data()
    m = ~np.isnan(z)

    @jax.jit
    def f(z, x, w, m):
        return wce(z, x, 2.0, weight=w, mask=m, label_smoothing=0.1, reduction="weighted_mean")

    got = f(jnp.asarray(z), jnp.asarray(x), jnp.ones(3), jnp.asarray(m))
    want = wce(z, x, 2.0, weight=np.ones(3), mask=m, label_smoothing=0.1,
               reduction="weighted_mean")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(label_smoothing=1.5), ValueError,
         r"label_smoothing: expected a number in \[0.0, 1.0\]"),
        (dict(label_smoothing=-0.1), ValueError, r"label_smoothing"),
        (dict(weight=-1.0), ValueError, r"weight: expected a finite non-negative number"),
        (dict(weight=np.inf), ValueError, r"weight: expected a finite non-negative number"),
        (dict(mask=np.ones((2, 3), np.float64)), TypeError, r"mask: expected a boolean array"),
        (dict(mask=np.ones((4,), bool)), ValueError, r"mask: shape \(4,\) does not broadcast"),
        (dict(reduction="mean", axis=2), ValueError, r"axis: 2 is out of range"),
        (dict(reduction="mean", axis=(0, 0)), ValueError, r"axis: repeated"),
        (dict(reduction="mean", axis=1.5), TypeError, r"axis: expected an int"),
        (dict(axis=0), ValueError, r"axis: only meaningful with a reduction"),
        (dict(reduction="median"), ValueError, r"reduction: expected one of"),
    ],
)
def test_bad_option_values(xp, device, kwargs, exc, match):
    kw = {k: (make(xp, device, v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    x, z = _data(shape=(2, 3))
    with pytest.raises(exc, match=match):
        wce(make(xp, device, z), make(xp, device, x), 1.0, **kw)


def test_negative_weight_array_is_rejected(xp, device, backend):
    if backend.value == "dask":
        pytest.skip("array value checks are skipped on lazy Dask arrays")
    x, z = _data(shape=(2, 3))
    with pytest.raises(ValueError, match=r"weight: values must be finite and non-negative"):
        wce(make(xp, device, z), make(xp, device, x), 1.0, weight=make(xp, device, [1.0, -1, 1]))


def test_labels_outside_range_are_ignored_where_masked(xp, device, backend):
    z = np.array([1.0, 7.0, 0.0])
    x = np.array([0.5, 1.0, -1.0])
    m = np.array([True, False, True])
    got = to_numpy(wce(make(xp, device, z), make(xp, device, x), 1.0, mask=make(xp, device, m)))
    assert got[1] == 0
