"""The NumPy backend (wce_xp._native._numpy): the chunked engine (every option chunk by
chunk, on a pool of threads), the C kernels and the ufunc kernel they stand in for,
threads, and the value checks, each against the generic array-API code and mpmath.

These tests need no backend fixture: they run in every session at the same small cost.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
import tracemalloc

import numpy as np
import pytest

import wce_xp
from wce_xp import _registry
from wce_xp._native import _numpy

from . import _reference as R
from ._engine_data import N, _data

generic = _registry.generic_only
wce = wce_xp.weighted_cross_entropy_with_logits
focal = wce_xp.sigmoid_focal_loss

def _close(a, b, dtype, reduced):
    if reduced:  # float64 chunk sums against the generic sums: summation order differs
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   equal_nan=True)
    else:
        np.testing.assert_allclose(a, b, rtol=8 * np.finfo(dtype).eps, atol=1e-30,
                                   equal_nan=True)


OPTIONS = {
    "plain": {},
    "bool labels": {"labels": "bool"},
    "int labels": {"labels": "int8"},
    "float64 labels": {"labels": "float64"},
    "mask (NaN under it)": {"mask": True},
    "smoothing": {"label_smoothing": 0.1},
    "weight": {"weight": True},
    "everything": {"mask": True, "weight": True, "label_smoothing": 0.2},
}


def _call(fn, x, z, q, w, m, opts, **kw):
    labels = z
    if opts.get("labels"):
        labels = (z > 0.5).astype(opts["labels"])
    if opts.get("mask"):
        labels = np.where(m, labels, np.nan) if labels.dtype.kind == "f" else labels
        kw["mask"] = m
    if opts.get("weight"):
        kw["weight"] = w
    if opts.get("label_smoothing"):
        kw["label_smoothing"] = opts["label_smoothing"]
    return fn(labels, x, pos_weight=q, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("reduction,axis", [("none", None), ("sum", None), ("mean", None),
                                            ("weighted_mean", None), ("mean", 0),
                                            ("sum", 1)])
def test_engine_equals_generic_for_every_option(dtype, option, reduction, axis):
    x, z, q, w, m = _data(dtype)
    if reduction != "none":
        x = np.where(np.isfinite(x), x, 2.0).astype(dtype)  # finite sums
    opts = OPTIONS[option]
    for fn, kw in ((wce, {}), (focal, {"gamma": 0.5, "alpha": 0.3}), (focal, {"gamma": 2.0})):
        got = _call(fn, x, z, q, w, m, opts, reduction=reduction, axis=axis, **kw)
        with generic():
            ref = _call(fn, x, z, q, w, m, opts, reduction=reduction, axis=axis, **kw)
        assert got.dtype == ref.dtype == np.dtype(dtype)
        assert got.shape == ref.shape
        _close(got, ref, dtype, reduction != "none")


@pytest.mark.parametrize("shape,axis", [((), None), ((1,), 0), ((0, 3), 0), ((5, 0), 1),
                                        ((40, 9, 5), (0, 2)), ((40, 9, 5), 1),
                                        ((3, 2, 9, 9), (1, 2, 3))])
def test_engine_shapes_and_axes(shape, axis):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, shape)
    z = rng.uniform(size=shape)
    m = rng.uniform(size=shape) > 0.3
    for red in ("sum", "mean", "weighted_mean"):
        for kw in ({}, {"mask": m}, {"weight": z + 0.5}):
            got = wce(z, x, 2.0, reduction=red, axis=axis, **kw)
            with generic():
                ref = wce(z, x, 2.0, reduction=red, axis=axis, **kw)
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)


def test_noncontiguous_and_broadcast_operands():
    x, z, q, w, m = _data("float64", shape=(2 * N, 7))
    x = np.where(np.isfinite(x), x, 1.0)
    xs, zs, ms = x[::2], z[::2], m[::2]  # strided rows
    xt, zt = np.asfortranarray(xs), np.asfortranarray(zs)
    for xx, zz in ((xs, zs), (xt, zt)):
        for red, axis in (("none", None), ("mean", None), ("mean", 0)):
            got = wce(zz, xx, q, weight=w[::2], mask=ms, reduction=red, axis=axis)
            with generic():
                ref = wce(zz, xx, q, weight=w[::2], mask=ms, reduction=red, axis=axis)
            np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_results_do_not_depend_on_the_thread_count():
    """Chunking is fixed and chunk sums are added in chunk order: bitwise equal."""
    x, z, q, w, m = _data("float32", shape=(5 * N, 7))
    calls = [
        lambda: wce(z, x, q),
        lambda: wce(z, x, q, reduction="mean"),
        lambda: wce(z, x, q, weight=w, mask=m, reduction="weighted_mean", axis=0),
        lambda: focal(z, x, gamma=1.5, mask=m, reduction="sum"),
        lambda: wce_xp.weighted_cross_entropy_grad_hess(z, x, q)[0],
    ]
    old = wce_xp.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            wce_xp.set_num_threads(n)
            results.append([np.asarray(c()) for c in calls])
    finally:
        wce_xp.set_num_threads(None if old == _numpy._default_threads() else old)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_thread_settings(monkeypatch):
    try:
        wce_xp.set_num_threads(3)
        assert wce_xp.get_num_threads() == 3
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="n: expected a positive integer"):
                wce_xp.set_num_threads(bad)
        wce_xp.set_num_threads(None)
        monkeypatch.setenv("WCE_XP_NUM_THREADS", "2")
        assert wce_xp.get_num_threads() == 2
        monkeypatch.setenv("WCE_XP_NUM_THREADS", "all")
        assert wce_xp.get_num_threads() == _numpy.cores() >= 1
        monkeypatch.setenv("WCE_XP_NUM_THREADS", "many")
        with pytest.raises(ValueError, match="WCE_XP_NUM_THREADS: expected a positive"):
            wce_xp.get_num_threads()
        monkeypatch.delenv("WCE_XP_NUM_THREADS")
        assert wce_xp.get_num_threads() == _numpy.cores()
    finally:
        wce_xp.set_num_threads(None)  # (the default: what every other test runs with)


@pytest.mark.parametrize("threads", [2, 3, 16])
@pytest.mark.parametrize("n_chunks", [2, 7, 50])
def test_chunks_each_run_once_and_come_back_in_order(threads, n_chunks):
    chunks = [(i, i + 1) for i in range(n_chunks)]
    seen, lock = [], threading.Lock()

    def task(i0, i1):
        with lock:
            seen.append(i0)
        return (i0, i1)

    assert _numpy._for_chunks(task, chunks, threads) == chunks
    assert sorted(seen) == list(range(n_chunks))


def test_the_calling_thread_does_the_work_when_the_pool_is_busy():
    """With every pool thread held by other work, a call still finishes: the caller
    takes every group itself and does not wait for helpers that never started (before
    this, the caller took one group of eight and waited for the pool to do the rest)."""
    release = threading.Event()
    pool = _numpy._executor(3)  # the pool may be larger: hold every one of its threads
    blockers = [pool.submit(release.wait) for _ in range(_numpy._pool_size)]
    try:
        done = []
        t = threading.Thread(target=lambda: done.append(
            _numpy._for_chunks(lambda i0, i1: i0, [(i, i + 1) for i in range(40)], 4)))
        t.start()
        t.join(timeout=30)
        assert done == [list(range(40))]
    finally:
        release.set()
        for b in blockers:
            b.result()


def test_a_helper_threads_error_reaches_the_caller():
    def task(i0, i1):
        if i0 == 37:
            raise ZeroDivisionError("chunk 37")
        return i0

    with pytest.raises(ZeroDivisionError, match="chunk 37"):
        _numpy._for_chunks(task, [(i, i + 1) for i in range(40)], 2)


@pytest.mark.parametrize("option", ["smoothing", "mask", "bool labels", "int labels",
                                    "axis=0", "weight", "focal", "focal, mask, axis=0"])
def test_reductions_with_options_stay_in_bounded_memory(option):
    """4e6 float32 elements (16 MB per array): with every option, the memory beyond the
    inputs stays a few chunks per thread, under 8 MiB (the generic path: 140-190 MiB)."""
    n, c = 400_000, 10
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, c)).astype(np.float32)
    z = (rng.uniform(size=(n, c)) > 0.5).astype(np.float32)
    kw: dict = {"reduction": "mean"}
    fn = wce
    args = [z, x, 2.0]
    if option == "smoothing":
        kw["label_smoothing"] = 0.1
    if "mask" in option:
        kw["mask"] = rng.uniform(size=(n, c)) > 0.1
    if option == "bool labels":
        args[0] = z > 0.5
    if option == "int labels":
        args[0] = z.astype(np.int64)
    if "axis=0" in option:
        kw["axis"] = 0
    if option == "weight":
        kw["weight"] = rng.uniform(size=(n, c)).astype(np.float32)
        kw["reduction"] = "weighted_mean"
    if "focal" in option:
        fn, args = focal, args[:2]
    try:
        for threads in (1, 2):
            wce_xp.set_num_threads(threads)
            tracemalloc.start()
            fn(*args, **kw)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < 8 * 2**20, f"{option}, {threads} threads: {peak / 2**20:.1f} MiB"
    finally:
        wce_xp.set_num_threads(None)  # (the default: what every other test runs with)


# --- the float32 kernels in C (wce_xp._fused) against the ufunc kernels and mpmath ----


@pytest.fixture(params=["C", "ufuncs"])
def kernels(request, monkeypatch):
    """The engine's kernels: the C ones (skipped where they were not built) or the
    NumPy ufunc ones they stand in for."""
    if request.param == "C" and _numpy._fused_module is None:
        pytest.skip("wce_xp._fused was not built (no C compiler at install)")
    with _numpy.c_kernels(request.param == "C"):
        yield request.param


# ulp bounds against mpmath: the C kernels compute float32 in double precision and
# round once (1 ulp); float64 and the ufunc kernels: the library's 4 ulp
LOSS_ULP = {("C", "float32"): 1.0, ("C", "float64"): 4.0, ("ufuncs", "float32"): 4.0,
            ("ufuncs", "float64"): 4.0}
# the gradient, in units of eps times the scale of its terms
GRAD_EPS = {("C", "float32"): 2, ("C", "float64"): 4, ("ufuncs", "float32"): 8,
            ("ufuncs", "float64"): 8}


def _scalar_q_grid(dtype):
    """accuracy_grid's logits and labels (signed labels too: validate=False), the
    edges added; pos_weight is one number per call, as the C kernels take it."""
    x, z, _ = R.accuracy_grid(dtype)
    keep = np.ones(x.shape, bool)
    keep[::3] = False  # a third fewer points: the grid repeats each (x, z) per q
    tiny = float(np.finfo(dtype).smallest_subnormal)
    x = np.concatenate([x[keep], [np.inf, -np.inf, np.nan, 0.0, -0.0, tiny, -tiny]])
    z = np.concatenate([z[keep], [0.0, 1.0, 0.5, 2.0, -0.5, 1.0, 0.0]])
    return x.astype(dtype), z.astype(dtype)


@functools.cache
def _loss_reference(dtype, q):
    """mpmath's loss on the grid, once per (dtype, q) for both kernels."""
    x, z = _scalar_q_grid(dtype)
    return R.vectorize(R.loss, x, z, q)


@functools.cache
def _grad_reference(dtype, q):
    """mpmath's gradient and its scale on the grid, once per (dtype, q) for both kernels."""
    x, z = _scalar_q_grid(dtype)
    ok = (z >= 0) & (z <= 1) & ~np.isnan(x)
    pairs = [R.grad(float(a), float(b), q) for a, b in zip(x[ok], z[ok], strict=True)]
    return [g for g, _ in pairs], np.array([float(c) for _, c in pairs], dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("q", [0.0, 1.0, 2.5, 1e-3, 1e3])
def test_kernels_against_mpmath(kernels, dtype, q):
    """Elementwise within LOSS_ULP of mpmath; one chunk's float64 sum equals the sum of
    the elementwise values; bool labels give what 0/1 labels give."""
    x, z = _scalar_q_grid(dtype)
    q = float(np.asarray(q, dtype))  # the value in this dtype, as the reference sees it
    ref = _loss_reference(dtype, q)
    got = _numpy.weighted_loss(z, x, q)
    err = R.ulp_error(got, ref, dtype)
    worst = int(np.argmax(err))
    assert err.max() <= LOSS_ULP[kernels, dtype], (
        f"{kernels}: {err.max():.2f} ulp at x={x[worst]!r}, z={z[worst]!r}, q={q}")
    finite = np.isfinite(x) & (z >= 0) & (z <= 1)
    xs, zs = x[finite][:4000], z[finite][:4000]
    el = _numpy.plain(zs, xs, q, "none")
    np.testing.assert_array_equal(el, got[finite][:4000])
    total = _numpy.plain(zs, xs, q, "sum")
    assert total == pytest.approx(float(np.add.reduce(el, dtype=np.float64)), rel=1e-14)
    hard = zs == np.round(zs)
    np.testing.assert_array_equal(_numpy.weighted_loss(zs[hard] > 0.5, xs[hard], q),
                                  el[hard])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("q", [0.0, 1.0, 2.5, 1e3])
def test_gradient_kernels_against_mpmath(kernels, dtype, q):
    """The gradient within GRAD_EPS·eps of the scale (1 - z)σ(x) + qzσ(-x), which
    bounds what its cancellation can keep; with a scale folded in."""
    x, z = _scalar_q_grid(dtype)
    ok = (z >= 0) & (z <= 1) & ~np.isnan(x)
    x, z = x[ok], z[ok]
    q = float(np.asarray(q, dtype))
    ref, scale = _grad_reference(dtype, q)
    got = _numpy.grad(z, x, q, scale=0.5)
    diff = np.array([abs(R.mp.mpf(float(g)) - 0.5 * r) for g, r in zip(got, ref, strict=True)],
                    dtype=np.float64)
    eps = np.finfo(dtype).eps
    bound = GRAD_EPS[kernels, dtype] * eps * 0.5 * scale + R.TINY[dtype]
    worst = int(np.argmax(diff - bound))
    assert np.all(diff <= bound), f"{kernels}: at x={x[worst]!r}, z={z[worst]!r}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_with_pos_weight_per_element_against_mpmath(kernels, dtype):
    """The accuracy grid as test_accuracy.py has it (pos_weight per element)."""
    x, z, q = R.accuracy_grid(dtype)
    ref = R.loss_reference(dtype)
    got = _numpy.weighted_loss(z, x, q)
    err = R.ulp_error(got, ref, dtype)
    worst = int(np.argmax(err))
    assert err.max() <= LOSS_ULP[kernels, dtype], (
        f"{kernels}: {err.max():.2f} ulp at x={x[worst]!r}, z={z[worst]!r}, q={q[worst]!r}")


def test_c_kernels_take_only_what_they_can(monkeypatch):
    """float32/float64 logits with labels of their dtype or bool and a number or a
    pos_weight of their dtype go to the C kernels, however laid out (strided or
    broadcast operands are copied first); mixed dtypes go to the ufunc kernels. The C
    entry points refuse wrong buffers with errors that name them."""
    if _numpy._fused_module is None:
        pytest.skip("wce_xp._fused was not built (no C compiler at install)")
    f = _numpy._fused_module
    for dt in (np.float32, np.float64):
        x = np.linspace(-3, 3, 12, dtype=dt)
        z = np.full(12, 0.5, dt)
        q = np.full(12, 2.0, dt)
        for args in ((x, z, 2.0), (x[::2], z[::2], 2.0), (x, z > 0.2, 2.0), (x, z, q),
                     (x.reshape(3, 4), z[:4], q[:4]), (x, z, dt(2.0))):
            c = _numpy._c_args(*args)
            assert c is not None
            assert all(a.flags.c_contiguous and a.dtype in (dt, np.bool_) for a in c
                       if not isinstance(a, float))  # bool labels: read as they are
        other = np.float64 if dt == np.float32 else np.float32
        for args in ((x, z.astype(other), 2.0), (x, z.astype(np.int8), 2.0),
                     (x, z, q.astype(other)), (x.astype(np.float16), z, 2.0)):
            assert _numpy._c_args(*args) is None
        out = np.empty(12, dt)
        name = np.dtype(dt).name
        with pytest.raises(TypeError, match="x: expected float32 or float64"):
            f.loss(x.astype(np.float16), z, 2.0, out)
        with pytest.raises(TypeError, match=f"z: expected {name}, as x"):
            f.loss(x, z.astype(np.int8), 2.0, out)
        with pytest.raises(TypeError, match=f"z: expected {name}, as x"):
            f.loss(x, z.astype(other), 2.0, out)
        with pytest.raises(ValueError, match="z: expected as many elements as x"):
            f.loss(x, z[:5], 2.0, out)
        with pytest.raises(ValueError, match="q: expected as many elements as x"):
            f.loss(x, z, q[:5], out)  # 5 does not divide 12: not one per class either
        with pytest.raises(ValueError, match="threads: expected a positive integer"):
            f.loss(x, z, 2.0, out, 0)
        with pytest.raises(TypeError, match=r"loss\(x, z, q, out\[, threads\]\)"):
            f.loss(x, z, 2.0)
        with pytest.raises(TypeError, match=f"q: expected {name}, as x"):
            f.loss_sum(x, z, q.astype(other))
        with pytest.raises(ValueError, match="out: expected as many elements as x"):
            f.loss(x, z, 2.0, out[:5])
        with pytest.raises(ValueError, match="not C-contiguous"):
            f.loss(x[::2], z[::2], 2.0, out[:6])
        ro = np.empty(12, dt)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            f.loss(x, z, 2.0, ro)
        # a number and the same number per element: the same arithmetic, bitwise
        f.loss(x, z, 2.0, out)
        per = np.empty_like(out)
        f.loss(x, z, q, per)
        np.testing.assert_array_equal(out, per)
        assert f.loss_sum(x, z, 2.0) == f.loss_sum(x, z, q)
        g1, g2, g3 = np.empty_like(out), np.empty_like(out), np.empty_like(out)
        f.grad(x, z, 2.0, 0.25, g1)
        f.grad(x, z, q, 0.25, g2)
        np.testing.assert_array_equal(g1, g2)
        # the loss and the gradient in one pass: the same as each alone
        assert f.loss_sum_grad(x, z, q, 0.25, g3) == f.loss_sum(x, z, 2.0)
        np.testing.assert_array_equal(g3, g1)
        # buffers whose format names the (native) byte order: ctypes arrays say "<d",
        # arrays that Dask's worker processes deserialize "=d"
        ct = ctypes.c_float if dt == np.float32 else ctypes.c_double
        xc, zc = (ct * 12)(*x.tolist()), (ct * 12)(*z.tolist())
        assert memoryview(xc).format[0] in "<>"
        byctypes = np.empty_like(out)
        f.loss(xc, zc, 2.0, byctypes)
        np.testing.assert_array_equal(byctypes, out)
        # inputs are never modified
        before = x.copy(), z.copy()
        _numpy.weighted_loss(z[::2], x[::2], 2.0)
        np.testing.assert_array_equal(x, before[0])
        np.testing.assert_array_equal(z, before[1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_kernels_give_an_element_the_same_bits_wherever_it_sits(dtype):
    """Every element runs through the same fixed-length vector block (a tail is
    padded), so its bits do not depend on its position: in a chunk, at the end of a
    Dask block, alone. (A vector loop with a scalar remainder may fuse multiply-adds
    differently in each: this caught the last element of Dask blocks one ulp apart.)"""
    if _numpy._fused_module is None:
        pytest.skip("wce_xp._fused was not built (no C compiler at install)")
    f = _numpy._fused_module
    rng = np.random.default_rng(11)
    n = 1300
    x = (rng.standard_normal(n) * 6).astype(dtype)
    z = rng.uniform(size=n).astype(dtype)
    q = rng.uniform(0, 3, n).astype(dtype)
    full, g = np.empty_like(x), np.empty_like(x)
    f.loss(x, z, q, full)
    f.grad(x, z, q, 0.5, g)
    for off in (1, 7, 16, 255, 256, 257, 1299):
        part, gp = np.empty(n - off, dtype), np.empty(n - off, dtype)
        f.loss(x[off:].copy(), z[off:].copy(), q[off:].copy(), part)
        f.grad(x[off:].copy(), z[off:].copy(), q[off:].copy(), 0.5, gp)
        np.testing.assert_array_equal(part, full[off:])
        np.testing.assert_array_equal(gp, g[off:])
    # and the sums: a split into pieces adds the same elementwise values
    assert f.loss_sum(x, z, q) == pytest.approx(
        float(np.add.reduce(full, dtype=np.float64)), rel=1e-14)


# --- the C kernels' threads, bool labels and per-class pos_weight ---------------------


def _fused_or_skip():
    if _numpy._fused_module is None:
        pytest.skip("wce_xp._fused was not built (no C compiler at install)")
    return _numpy._fused_module


def _c_operands(dtype, n, classes=7, seed=3):
    rng = np.random.default_rng(seed)
    x = (rng.standard_cauchy((n, classes)) * 4).astype(dtype)
    x.flat[:3] = [np.inf, -np.inf, 0.0]
    z = rng.uniform(size=(n, classes)).astype(dtype)
    z[::2] = np.round(z[::2])
    q = rng.uniform(0, 4, classes).astype(dtype)
    return x, z, q


def _every_entry(f, x, z, q, threads):
    """What each C entry point gives for these operands, on ``threads`` threads."""
    out, g, g2, g3 = (np.empty_like(x) for _ in range(4))
    f.loss(x, z, q, out, threads)
    f.grad(x, z, q, 0.25, g, threads)
    lo = np.empty_like(x)
    f.loss_grad(x, z, q, 0.25, lo, g2, threads)
    total = f.loss_sum(x, z, q, threads)
    total_g = f.loss_sum_grad(x, z, q, 0.25, g3, threads)
    return out, g, lo, g2, np.float64(total), g3, np.float64(total_g)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [1, 300, 1170, 9363 * 3 + 1])  # tasks of 2048: 1, 2, 4, 129
def test_c_threads_give_the_same_bits_for_every_thread_count(dtype, rows):
    """A C call cuts its elements into tasks that its threads take in turn; every
    element's value and every sum (the tasks' sums added in task order) are the same
    for 1, 2, 3 and 8 threads, and the loss and the gradient computed together equal
    each computed alone."""
    f = _fused_or_skip()
    x, z, q = _c_operands(dtype, rows)
    ref = _every_entry(f, x, z, q, 1)
    for threads in (2, 3, 8):
        for a, b in zip(ref, _every_entry(f, x, z, q, threads), strict=True):
            np.testing.assert_array_equal(a, b)
    out, g, lo, g2, total, g3, total_g = ref
    np.testing.assert_array_equal(lo, out)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(g3, g)
    assert total == total_g
    assert total == pytest.approx(float(np.add.reduce(out, axis=None, dtype=np.float64)),
                                  rel=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_whole_array_sum_equals_the_chunked_routes_sum_bitwise(dtype):
    """One C call sums a chunk's tasks, then the chunks, each in order: the
    association of the engine's chunked route (chunk sums added in chunk order), so a
    contiguous array and a strided one that the engine chunks give the same bits."""
    f = _fused_or_skip()
    x, z, _ = _c_operands(dtype, 3 * _numpy.CHUNK // 7 + 11)
    assert _numpy.CHUNK == f.CHUNK and _numpy.TASK == f.TASK
    xf, zf = x.reshape(-1), z.reshape(-1)
    chunked = 0.0
    for i in range(0, xf.size, _numpy.CHUNK):
        chunked += f.loss_sum(xf[i:i + _numpy.CHUNK], zf[i:i + _numpy.CHUNK], 2.0)
    assert f.loss_sum(xf, zf, 2.0, 2) == chunked
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype)
    wide[:, ::2], wide[:, 1::2] = x, np.nan  # the same logits, strided: chunked by rows
    got = _numpy.loss(z, wide[:, ::2], 2.0, reduction="sum", axes=(0, 1))
    assert got == f.loss_sum(x, z, 2.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_c_bool_labels_and_per_class_pos_weight_are_read_as_they_are(dtype):
    """Bool labels and a pos_weight of one value per class (the last axis) are read
    in place, staged block by block: the same bits as float labels and a pos_weight
    of one value per element, with no copy of the operands' size."""
    f = _fused_or_skip()
    x, z, q = _c_operands(dtype, 2000)
    zb = z > 0.5
    zf = zb.astype(dtype)
    qfull = np.ascontiguousarray(np.broadcast_to(q, x.shape))
    for threads in (1, 2):
        a, b = np.empty_like(x), np.empty_like(x)
        f.loss(x, zb, q, a, threads)
        f.loss(x, zf, qfull, b, threads)
        np.testing.assert_array_equal(a, b)
        assert f.loss_sum(x, zb, q, threads) == f.loss_sum(x, zf, qfull, threads)
        f.grad(x, zb, q, 0.5, a, threads)
        f.grad(x, zf, qfull, 0.5, b, threads)
        np.testing.assert_array_equal(a, b)
    # through the engine: no operand-sized copy (the labels stay bool, q per class)
    tracemalloc.start()
    try:
        _numpy.loss(zb, x, q, reduction="mean", axes=(0, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 4
    # a 0-d pos_weight array is the number it holds, bitwise
    for a, b in zip(_numpy.loss_and_grad(zb, x, np.asarray(2.5, dtype)),
                    _numpy.loss_and_grad(zb, x, 2.5), strict=True):
        np.testing.assert_array_equal(a, b)
    # a pos_weight whose length does not divide the logits' count is refused by name
    with pytest.raises(ValueError, match="q: expected as many elements as x"):
        f.loss_sum(x, z, q[:3])


def test_c_calls_from_many_threads_at_once_and_after_fork():
    """Python threads calling at once (one runs on the C threads, the others on their
    own) and a forked child (whose C threads are started afresh) get the same bits."""
    f = _fused_or_skip()
    x, z, q = _c_operands("float32", 20000)
    want = f.loss_sum(x, z, q, 2)
    got: list[float] = []
    lock = threading.Lock()

    def call():
        for _ in range(20):
            v = f.loss_sum(x, z, q, 2)
            with lock:
                got.append(v)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 80
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        return
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(f.loss_sum, (x, z, q, 2)).get(timeout=120) == want


def test_c_threads_on_pytorchs_openmp_runtime_and_after_fork():
    """With PyTorch loaded, the C kernels run their threads on its OpenMP runtime (the
    same bits as on their own threads); a child forked after that runs on its own
    threads (libgomp's team does not survive fork(): the child would hang)."""
    f = _fused_or_skip()
    pytest.importorskip("torch")
    from wce_xp._native import _torch

    x, z, q = _c_operands("float64", 20000)
    previous = f.use_openmp(0)
    try:
        own = _every_entry(f, x, z, q, 2)
        if not _torch.share_openmp():
            pytest.skip("PyTorch's parallel backend here is not a loaded OpenMP runtime")
        for a, b in zip(own, _every_entry(f, x, z, q, 2), strict=True):
            np.testing.assert_array_equal(a, b)
        import multiprocessing as mp

        if "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(1) as pool:
                got = pool.apply_async(f.loss_sum, (x, z, q, 2)).get(timeout=120)
            assert got == own[4]
    finally:
        f.use_openmp(previous)


def test_without_c_threads_the_chunked_route_gives_the_same_bits(monkeypatch):
    """Where the C module has no threads of its own (not POSIX), arrays of more than
    one chunk go chunk by chunk on the engine's Python threads instead of one C call:
    the same values and sums, bitwise (the sums: for chunks of whole 64K elements,
    those of a flattened array)."""
    f = _fused_or_skip()
    x, z, q = _c_operands("float32", 3 * _numpy.CHUNK // 7 + 11)
    zb = z > 0.5
    whole = [_numpy.weighted_loss(zb, x, q), _numpy.grad(zb, x, q, scale=0.5),
             _numpy.loss(zb, x, 2.0, reduction="sum", axes=(0, 1))]

    class NoThreads:
        POOL = 0

        def __getattr__(self, name):
            return getattr(f, name)

    monkeypatch.setattr(_numpy, "_fused", NoThreads())
    assert _numpy._c_whole(x, zb, q) is None
    chunked = [_numpy.weighted_loss(zb, x, q, threads=2),
               _numpy.grad(zb, x, q, scale=0.5, threads=2),
               _numpy.loss(zb, x, 2.0, reduction="sum", axes=(0, 1), threads=2)]
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_reduce_loss_in_blocks_within_the_stated_bound():
    """``reduce_loss(block=8)``: runs of 8 added in float32, then float64. Every run
    here is 1 and seven terms just under 2^-24, each of which a float32 addition to
    1 drops (in the order that adds them to 1 one by one): the result is within
    7·2^-24 of exact, the bound its docstring states, in whatever order the backend
    adds a run. Sizes that 8 does not divide, and sums over some axes, take the plain
    float64 sum."""
    from wce_xp._generic import _core

    xp = np
    u = 2.0 ** -24
    run = np.array([1.0] + [u * 0.999] * 7, np.float32)
    loss = np.tile(run, 50_000)
    exact = 50_000 * (1.0 + 7 * float(np.float32(u * 0.999)))
    got = _core.reduce_loss(loss, weight=None, mask=None, reduction="sum", axes=(0,), xp=xp,
                            acc_dtype=np.float64, block=8)
    assert abs(got - exact) <= 7 * u * exact
    assert got != _core.reduce_loss(loss, weight=None, mask=None, reduction="sum", axes=(0,),
                                    xp=xp, acc_dtype=np.float64)  # the blocks did run
    odd = np.append(loss, np.float32(1.0))
    assert _core.reduce_loss(odd, weight=None, mask=None, reduction="sum", axes=(0,), xp=xp,
                             acc_dtype=np.float64, block=8) == np.sum(odd, dtype=np.float64)
    two = loss.reshape(-1, 8)
    np.testing.assert_array_equal(
        _core.reduce_loss(two, weight=None, mask=None, reduction="sum", axes=(0,), xp=xp,
                          acc_dtype=np.float64, block=8),
        np.sum(two, axis=0, dtype=np.float64))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool"])
def test_numpy_value_checks_in_one_c_pass_agree_with_min_and_max(monkeypatch, dtype):
    """The general path's value checks on NumPy arrays: one C pass (``within``) for
    contiguous float and bool arrays, else a min and a max; the same verdict for every
    value at the edges of [0, 1] and of [0, inf) (finite only), NaN and infinities
    included, contiguous or strided."""
    from wce_xp._native import _numpy as engine

    if dtype == "bool":
        values = [np.array(v) for v in ([True, False], [True], [False])]
    else:
        info = np.finfo(dtype)
        edge = [0.0, -0.0, info.smallest_subnormal, 0.5, 1.0, np.nextafter(1, 2, dtype=dtype),
                -info.smallest_subnormal, info.max, np.inf, -np.inf, np.nan]
        values = [np.array([0.25, v, 0.75], dtype) for v in edge]
    for a in values:
        a = a.astype(dtype)
        for lo, hi in ((0.0, 1.0), (0.0, math.inf), (0.5, 1.0)):
            strided = np.repeat(a, 2)[::2]
            assert not strided.flags.c_contiguous or a.size == 1
            with monkeypatch.context() as mp:
                mp.setattr(engine, "_fused_module", None)
                want = _numpy.in_range(a, lo, hi)
            assert _numpy.in_range(a, lo, hi) is want, (a, lo, hi)
            assert _numpy.in_range(strided, lo, hi) is want, (a, lo, hi)


