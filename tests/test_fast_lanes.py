"""The fast lanes (each backend's hook for the commonest calls, before the front door):
the same results as the front door's path, bitwise, and the same errors (left to it).
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

import wce_xp
from wce_xp import _registry
from wce_xp._native import _numpy

generic = _registry.generic_only
wce = wce_xp.weighted_cross_entropy_with_logits


# --- the express lane ---------------------------------------------------------------


_general = _registry.without_fast_lanes


@pytest.mark.home("torch")
@pytest.mark.parametrize("shape", [(), (1,), (100, 10), (7, 3, 2), (5000, 10)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_express_lane_equals_the_general_path(monkeypatch, shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 5, shape).astype(dtype)
    z = (rng.uniform(size=shape) > 0.4).astype(dtype)
    zs = rng.uniform(-1, 2, shape).astype(dtype)  # outside [0, 1]: validate=False only
    calls = [(wce, (z, x, 2.0), {}), (wce, (z > 0.5, x, 3), {}),
             (wce_xp.sigmoid_cross_entropy_with_logits, (z, x), {}),
             (wce, (zs, x, 1.5), {"validate": False}),
             (wce_xp.binary_cross_entropy_with_logits, (x, zs), {}),
             (wce_xp.binary_cross_entropy_with_logits, (x, z), {"pos_weight": 2.0})]
    if shape:  # pos_weight arrays: one per class, and one value in a 0-d array
        qc = rng.uniform(0, 3, shape[-1:]).astype(dtype)
        calls += [(wce, (z, x, qc), {}), (wce, (z, x, np.asarray(qc[0])), {}),
                  (wce_xp.binary_cross_entropy_with_logits, (x, zs, None, qc), {})]
    try:
        import torch
    except ImportError:  # NumPy only, then
        torch = None

    def run_all():
        out = []
        for (fn, args, kw), red in itertools.product(calls, ["none", "sum", "mean"]):
            out.append(fn(*args, reduction=red, **kw))
            if torch is not None:  # the same call on CPU tensors
                targs = [torch.from_numpy(np.asarray(a)) if isinstance(a, np.ndarray)
                         else a for a in args]
                out.append(fn(*targs, reduction=red, **kw))
        return out

    fast = run_all()
    with _general():
        slow = run_all()
    for a, b in zip(fast, slow, strict=True):
        assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.home("torch")
def test_express_lane_with_labels_that_require_grad_under_no_grad():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-3, 3, 12).reshape(3, 4)
    z = torch.full((3, 4), 0.5, requires_grad=True)
    with torch.no_grad():
        got = wce_xp.binary_cross_entropy_with_logits(x, z)
    with generic(), torch.no_grad():
        ref = wce_xp.binary_cross_entropy_with_logits(x, z)
    assert torch.allclose(got, ref)


@pytest.mark.parametrize("route", ["C", "min/max"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lane_label_check_at_the_edges_of_the_unit_interval(dtype, route):
    """The NumPy lane's label check (the backend's ``in_range``): one C pass where the C
    kernels are built and the labels contiguous, else a min and a max. Every label in
    [0, 1] passes (-0.0 too), everything else goes to the front door, which raises for
    what is out of range."""
    if route == "C" and _numpy._fused_module is None:
        pytest.skip("the C kernels are not built")
    info = np.finfo(dtype)
    x = np.linspace(-3, 3, 6, dtype=dtype)
    inside = [0.0, -0.0, info.smallest_subnormal, info.tiny, 0.5,
              np.nextafter(1, 0, dtype=dtype), 1.0]
    outside = [np.nextafter(1, 2, dtype=dtype), 2.0, np.inf, np.nan, -info.smallest_subnormal,
               -1.0, -np.inf]
    with _numpy.c_kernels(route == "C"):
        for v in inside:
            z = np.full(6, v, dtype)
            assert _numpy.in_range(z, 0.0, 1.0), v
            assert _numpy.in_range(np.full((6, 2), v, dtype)[:, 0], 0.0, 1.0), v  # strided
            assert _numpy.fast_call(z, x, 2.0, True, "none") is not None
        for v in outside:
            for at in range(6):  # the one bad label anywhere
                z = np.full(6, 0.5, dtype)
                z[at] = v
                assert not _numpy.in_range(z, 0.0, 1.0), (v, at)
                assert _numpy.fast_call(z, x, 2.0, True, "none") is None
            with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
                wce(z, x, 2.0)
        z = np.array([0.0, -0.0, 1.0, 0.5, 1.0, 0.0], dtype)
        got = wce(z, x, 2.0)
        with _general():
            np.testing.assert_array_equal(got, wce(np.abs(z), x, 2.0))
        np.testing.assert_array_equal(got, _numpy.fast_call(np.abs(z), x, 2.0, True, "none"))


@pytest.mark.skipif(_numpy._fused is None, reason="the C kernels are not built")
@pytest.mark.parametrize("n", [1, 1023, 1024, 1025, 5000])
def test_within_scans_every_block(n):
    """``within`` tests blocks of 1024 elements: a bad value in any position of any
    block (the last one partial) is found; bool arrays; (address, n, code) operands."""
    f = _numpy._fused
    for dtype in (np.float32, np.float64):
        a = np.full(n, 0.25, dtype)
        assert f.within(a, 0.0, 1.0)
        for at in {0, n // 2, n - 1}:
            b = a.copy()
            b[at] = np.nan
            assert not f.within(b, 0.0, 1.0)
            b[at] = 1.5
            assert not f.within(b, 0.0, 1.0)
            assert f.within(b, 0.0, 1.5)
            code = "f" if dtype == np.float32 else "d"
            assert not f.within((b.ctypes.data, n, code), 0.0, 1.0)
            assert f.within((b.ctypes.data, at, code), 0.0, 1.0)  # the elements before it
    ones = np.ones(n, bool)
    assert f.within(ones, 0.0, 1.0) and f.within(ones, 1.0, 1.0)
    assert not f.within(ones, 0.0, 0.5)
    assert f.within(np.zeros(n, bool), 0.0, 0.5)
    assert f.within(np.zeros(0, np.float32), 0.0, 1.0)
    with pytest.raises(TypeError, match="float32, float64 or bool"):
        f.within(np.zeros(3, np.int32), 0.0, 1.0)
    with pytest.raises(ValueError, match="address, n, code"):
        f.within((0, 3, "f"), 0.0, 1.0)
    with pytest.raises(ValueError, match="not C-contiguous"):
        f.within(np.zeros((4, 4))[:, 0], 0.0, 1.0)


def test_express_lane_leaves_errors_to_the_general_path():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    z = np.full_like(x, 0.5)
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce(z * 3, x, 1.0)
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce(np.where(x > 0, np.nan, z), x, 1.0)
    with pytest.raises(ValueError, match="pos_weight: expected a finite non-negative"):
        wce(z, x, -1.0)
    with pytest.raises(ValueError, match="pos_weight: expected a finite non-negative"):
        wce(z, x, float("inf"))
    with pytest.raises(ValueError, match="validate: expected True, False or 'always'"):
        wce(z, x, 1.0, validate="sometimes")
    with pytest.raises(ValueError, match="reduction: expected one of"):
        wce(z, x, 1.0, reduction="avg")
    with pytest.raises(ValueError, match="reduction: expected one of"):
        wce_xp.binary_cross_entropy_with_logits(x, z, reduction="weighted_mean")
    with pytest.raises(ValueError, match="must have the same shape"):
        wce(z[:2], x, 1.0)
    # inputs are never modified
    before = x.copy(), z.copy()
    wce(z, x, 2.0)
    np.testing.assert_array_equal(before[0], x)
    np.testing.assert_array_equal(before[1], z)


@pytest.mark.home("torch")
def test_torch_express_lane_from_several_threads_at_once():
    """Training steps on four Python threads at once (the express lane, the C kernels
    on the tensors' memory, one job at a time in the C pool, the others on their
    callers): every thread's loss and gradient equal the same step run alone, bitwise."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    cases = []
    for n in (1000, 3 * 2048 + 5, 40_000, _numpy.CHUNK + 7):
        x = torch.from_numpy(rng.normal(0, 5, (n,)).astype(np.float32))
        z = torch.from_numpy((rng.uniform(size=n) > 0.6).astype(np.float32))
        cases.append((x, z))

    def step(x, z, red):
        xg = x.clone().requires_grad_()
        v = wce_xp.binary_cross_entropy_with_logits(xg, z, pos_weight=2.0, reduction=red)
        (g,) = torch.autograd.grad(v.sum(), xg)
        return v.detach(), g

    alone = {(i, red): step(x, z, red) for i, (x, z) in enumerate(cases)
             for red in ("none", "mean")}
    errors: list = []

    def worker(k):
        try:
            for rep in range(20):
                i = (k + rep) % len(cases)
                red = ("none", "mean")[(k + rep) % 2]
                v, g = step(*cases[i], red)
                torch.testing.assert_close(v, alone[i, red][0], rtol=0, atol=0)
                torch.testing.assert_close(g, alone[i, red][1], rtol=0, atol=0)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]

