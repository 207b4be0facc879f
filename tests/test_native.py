"""Every native fast path agrees with the generic array-API path, on the same inputs.

The generic code is the reference; native paths (NumPy chunks, CuPy kernels, PyTorch
through them, Dask map_blocks) must give the same answers within a few ulps (the
CuPy kernels compute in double internally, so they may differ by rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp
from wce_xp import _registry
from wce_xp._native import _numpy

from . import _reference as R
from ._helpers import DTYPES, make, to_numpy

generic = _registry.generic_only


def _inputs(dtype, shape=(301, 7), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_cauchy(shape) * 5).astype(dtype)
    x.flat[:6] = [0.0, np.inf, -np.inf, 1e30, -1e30, np.nan]
    z = rng.uniform(0, 1, shape).astype(dtype)
    z[::3] = np.round(z[::3])
    q = rng.uniform(0, 10, shape[-1:]).astype(dtype)
    w = rng.uniform(0, 2, (*shape[:1], 1)).astype(dtype)
    w[::5] = 0.0
    m = rng.uniform(size=shape) > 0.2
    return x, z, q, w, m


def _close(a, b, dtype):
    """Within 8 eps relative, or within the documented absolute threshold below 1e-30
    (float32) / 1e-300 (float64), where backends may flush subnormals."""
    np.testing.assert_allclose(a, b, rtol=8 * np.finfo(dtype).eps, atol=R.TINY[dtype],
                               equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_native_equals_generic(xp, device, dtype):
    x, z, q, _, _ = _inputs(dtype)
    args = (make(xp, device, z), make(xp, device, x))
    for qv in (make(xp, device, q), 2.5):
        fast = to_numpy(wce_xp.weighted_cross_entropy_with_logits(*args, qv))
        with generic():
            ref = to_numpy(wce_xp.weighted_cross_entropy_with_logits(*args, qv))
        _close(fast, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean", "weighted_mean"])
def test_reductions_native_equal_generic(xp, device, dtype, reduction):
    x, z, q, w, m = _inputs(dtype)
    x[~np.isfinite(x)] = 3.0  # finite sums; infinite ones are tested below
    kw_sets = [{}, {"weight": make(xp, device, w)}, {"mask": make(xp, device, m)},
               {"weight": make(xp, device, w), "mask": make(xp, device, m)}]
    for kw in kw_sets:
        for axis in (None, 0):
            args = (make(xp, device, z), make(xp, device, x), make(xp, device, q))
            fast = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
                *args, reduction=reduction, axis=axis, **kw))
            with generic():
                ref = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
                    *args, reduction=reduction, axis=axis, **kw))
            rtol = 1e-5 if dtype == "float32" else 1e-12  # summation order differs
            np.testing.assert_allclose(fast, ref, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_reductions_native_equal_generic(xp, device, dtype):
    """Large enough for the two-stage GPU reduction (rows of 2**14 and a tail), with
    per-class pos_weight, per-element and per-class weights, and a mask."""
    x, z, q, _w, m = _inputs(dtype, shape=(40_000, 3), seed=7)
    # moderate logits: the generic float32 sums of some backends would otherwise be
    # the less accurate side of the comparison
    x = np.clip(np.where(np.isfinite(x), x, 1.0), -50, 50).astype(dtype)
    wfull = np.random.default_rng(8).uniform(0, 2, x.shape).astype(dtype)
    cases = [{}, {"weight": make(xp, device, wfull)}, {"weight": make(xp, device, q)},
             {"mask": make(xp, device, m), "weight": make(xp, device, wfull)}]
    args = (make(xp, device, z), make(xp, device, x), make(xp, device, q))
    for kw in cases:
        for red in ("sum", "mean", "weighted_mean"):
            fast = to_numpy(wce_xp.weighted_cross_entropy_with_logits(*args, reduction=red, **kw))
            with generic():
                ref = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
                    *args, reduction=red, **kw))
            np.testing.assert_allclose(fast, ref, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_reduction_with_zero_weight_on_infinite_loss(xp, device):
    x = np.array([np.inf, 1.0, -np.inf, 2.0])
    z = np.array([0.0, 1.0, 1.0, 0.0])
    w = np.array([0.0, 1.0, 0.0, 2.0])
    args = (make(xp, device, z), make(xp, device, x), 2.0)
    for red in ("sum", "mean", "weighted_mean"):
        fast = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
            *args, weight=make(xp, device, w), reduction=red))
        with generic():
            ref = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
                *args, weight=make(xp, device, w), reduction=red))
        assert np.isfinite(fast)
        np.testing.assert_allclose(fast, ref, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_hess_native_equals_generic(xp, device, dtype):
    x, z, q, _, _ = _inputs(dtype)
    x = np.where(np.isnan(x), 0.5, x).astype(dtype)
    args = (make(xp, device, z), make(xp, device, x), make(xp, device, q))
    g, h = (to_numpy(a) for a in wce_xp.weighted_cross_entropy_grad_hess(*args))
    with generic():
        g0, h0 = (to_numpy(a) for a in wce_xp.weighted_cross_entropy_grad_hess(*args))
    # grad: both within 4 ulp of the scale |(1-z)σ(x)| + |qzσ(-x)|; compare on that scale
    with np.errstate(over="ignore"):
        x64 = x.astype(np.float64)
        sig, sig_neg = 1 / (1 + np.exp(-x64)), 1 / (1 + np.exp(x64))
    scale = (1 - z) * sig + q * z * sig_neg
    assert np.all(np.abs(g - g0) <= 8 * np.finfo(dtype).eps * scale + R.TINY[dtype])
    _close(h, h0, dtype)


@pytest.mark.parametrize("kernels", ["C", "ufuncs"])
def test_numpy_kernel_shapes_strides_and_empty(kernels, monkeypatch):
    """Shapes, strides, transposes, chunks smaller than a row: the ufunc kernels are
    the generic formula's arithmetic, bitwise; the C kernels (their own exp and log1p,
    tested against mpmath in tests/test_backend_numpy.py) agree within 8 eps."""
    if kernels == "C" and _numpy._fused_module is None:
        pytest.skip("wce_xp._fused was not built (no C compiler at install)")
    with _numpy.c_kernels(kernels == "C"):
        same = np.testing.assert_array_equal if kernels == "ufuncs" else \
            (lambda a, b: _close(a, b, "float64"))
        rng = np.random.default_rng(5)
        xf = rng.normal(0, 3, (40, 9, 5))
        zf = rng.uniform(size=(40, 9, 5))
        q = rng.uniform(0, 3, (9, 1))
        xp = wce_xp._compat.array_namespace(xf)
        for x, z in ((xf, zf), (xf[:, ::2], zf[:, ::2]), (xf.T, zf.T), (xf[..., 0], zf[..., 0])):
            qq = q if x.shape[-2:] == (9, 5) else 1.5
            got = _numpy.weighted_loss(z, x, qq)
            ref = wce_xp._generic._core.weighted_loss(z, x, qq, xp=xp)
            same(got, ref)
        whole = _numpy.weighted_loss(zf, xf, q)
        monkeypatch.setattr(_numpy, "CHUNK", 7)  # rows bigger than a chunk, partial last one
        np.testing.assert_array_equal(_numpy.weighted_loss(zf, xf, q), whole)  # any chunking
        same(whole, wce_xp._generic._core.weighted_loss(zf, xf, q, xp=xp))
        assert _numpy.weighted_loss(np.zeros((0, 3)), np.zeros((0, 3)), 1.0).shape == (0, 3)


def test_numpy_mean_is_accurate_and_never_materializes_the_loss():
    import tracemalloc

    n = 2_000_000
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, n).astype(np.float32)
    z = (rng.uniform(size=n) > 0.9).astype(np.float32)
    tracemalloc.start()
    tracemalloc.reset_peak()
    got = wce_xp.weighted_cross_entropy_with_logits(z, x, 3.0, reduction="mean")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ref = wce_xp.weighted_cross_entropy_with_logits(
        z.astype(np.float64), x.astype(np.float64), 3.0).mean()
    assert abs(float(got) - ref) <= 1e-6 * ref
    assert peak < 4 * n  # less than one float32 copy of the input: nothing full-size


@pytest.mark.home("torch")
def test_torch_autograd_goes_through_the_fused_function():
    torch = pytest.importorskip("torch")
    x = torch.tensor([-2.0, 0.0, 3.0, float("inf")], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([1.0, 0.5, 0.0, 1.0], dtype=torch.float64)
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0)
    assert "WeightedLoss" in type(out.grad_fn).__name__
    out.sum().backward()
    g_fast = x.grad.clone()
    x.grad = None
    with generic():
        wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0).sum().backward()
    np.testing.assert_allclose(g_fast.numpy(), x.grad.numpy(), rtol=1e-15)
    # labels that need a gradient take the generic (fully differentiable) path
    zg = z.clone().requires_grad_(True)
    out = wce_xp.weighted_cross_entropy_with_logits(zg, x, 2.0)
    assert "WeightedLoss" not in type(out.grad_fn).__name__


@pytest.mark.home("dask")
def test_dask_native_path_is_one_task_per_block():
    da = pytest.importorskip("dask.array")
    x, z, q, _, _ = _inputs("float64", (400, 7))
    xd = da.from_array(x, chunks=(100, 7))
    zd = da.from_array(z, chunks=(100, 7))
    out = wce_xp.weighted_cross_entropy_with_logits(zd, xd, da.from_array(q))
    assert out.chunks == xd.chunks
    layers = out.__dask_graph__().layers
    assert any("weighted_loss" in name for name in layers), list(layers)
    with generic():
        ref = wce_xp.weighted_cross_entropy_with_logits(z, x, q)
    _close(out.compute(), ref, "float64")


@pytest.mark.home("dask")
def test_dask_local_cluster_compute_equals_numpy():
    """Worker processes on loopback, started here: the graph runs remotely and agrees."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    x, z, q, w, m = _inputs("float64", (4000, 5), seed=3)
    x = np.where(np.isfinite(x), x, 0.0)
    xd, zd = da.from_array(x, chunks=(500, 5)), da.from_array(z, chunks=(500, 5))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        qd, wd = da.from_array(q), da.from_array(w, chunks=(500, 1))
        el = wce_xp.weighted_cross_entropy_with_logits(zd, xd, qd).compute()
        mean = wce_xp.weighted_cross_entropy_with_logits(
            zd, xd, qd, weight=wd, mask=da.from_array(m, chunks=(500, 5)), reduction="mean",
            axis=0).compute()
    np.testing.assert_array_equal(el, wce_xp.weighted_cross_entropy_with_logits(z, x, q))
    np.testing.assert_allclose(mean, wce_xp.weighted_cross_entropy_with_logits(
        z, x, q, weight=w, mask=m, reduction="mean", axis=0), rtol=1e-13)
