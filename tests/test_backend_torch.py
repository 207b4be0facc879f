"""The PyTorch backend (wce_xp._native._torch) on CPU tensors: the fused reduction with
its gradient-only backward, the gradient the forward pass computes, and the C calls on
tensor memory, each against the generic array-API code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import wce_xp
from wce_xp import _registry
from wce_xp._native import _numpy

from . import _reference as R
from ._engine_data import _data

# Backend-independent tests here run in the torch session (tests/conftest.py).
pytestmark = pytest.mark.home("torch")

generic = _registry.generic_only
wce = wce_xp.weighted_cross_entropy_with_logits


# --- PyTorch: the fused reduction and the gradient-only backward ----------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["sum", "mean", "weighted_mean"])
def test_torch_fused_reduction_forward_backward_equal_generic(dtype, reduction):
    torch = pytest.importorskip("torch")
    x, z, q, w, m = (torch.from_numpy(np.ascontiguousarray(a)) for a in _data(dtype))
    x = torch.where(torch.isfinite(x), x, 1.0)
    for kw in ({}, {"weight": w}, {"mask": m}, {"weight": w, "mask": m}):
        out = []
        for gen in (False, True):
            xg = x.clone().requires_grad_()
            if gen:
                with generic():
                    v = wce(z, xg, q, reduction=reduction, **kw)
            else:
                v = wce(z, xg, q, reduction=reduction, **kw)
            (g,) = torch.autograd.grad(v, xg)
            out.append((v.detach().numpy(), g.numpy()))
        (v1, g1), (v0, g0) = out
        np.testing.assert_allclose(v1, v0, rtol=1e-5 if dtype == "float32" else 1e-12)
        scale = np.max(np.abs(g0))
        assert np.max(np.abs(g1 - g0)) <= 8 * np.finfo(dtype).eps * scale


def test_torch_backward_with_a_strided_incoming_gradient():
    torch = pytest.importorskip("torch")
    x, z, q, _, _ = (torch.from_numpy(np.ascontiguousarray(a)) for a in _data("float64"))
    x = torch.where(torch.isfinite(x), x, 1.0)
    res = []
    for gen in (False, True):
        xg = x.clone().requires_grad_()
        if gen:
            with generic():
                loss = wce(z, xg, q)
        else:
            loss = wce(z, xg, q)
        (loss[:, ::2].sum() + (loss.T[1] * 3).sum()).backward()  # strided, expanded grads
        res.append(xg.grad.numpy())
    # the gradient (1-z)σ(x) - qzσ(-x) cancels: compare on the scale of its terms (times
    # the largest incoming gradient, 4)
    xn, zn, qn = x.numpy(), z.numpy(), q.numpy()
    with np.errstate(over="ignore"):
        scale = 4 * ((1 - zn) / (1 + np.exp(-xn)) + qn * zn / (1 + np.exp(xn)))
    assert np.all(np.abs(res[0] - res[1]) <= 8 * np.finfo(np.float64).eps * scale + 1e-300)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("q", [2.0, "per class"])
def test_torch_reduction_gradient_from_the_forward_pass(reduction, q):
    """A small float32 reduction under autograd computes its gradient in the forward
    pass (one C pass); backward hands it over when the incoming gradient is 1 and
    recomputes otherwise (a second backward, a scaled one): the same values, bitwise,
    and the generic graph's within the gradient's bound."""
    torch = pytest.importorskip("torch")
    x, z, qa, _, _ = (torch.from_numpy(np.ascontiguousarray(a)) for a in _data("float32"))
    x, z = torch.where(torch.isfinite(x), x, 1.0)[:300], z[:300]
    qq = qa if q == "per class" else q
    xg = x.clone().requires_grad_()
    loss = wce(z, xg, qq, reduction=reduction)
    loss.backward(retain_graph=True)  # from the forward pass
    first = xg.grad.clone()
    xg.grad = None
    loss.backward(retain_graph=True)  # recomputed: the forward's was handed over
    torch.testing.assert_close(xg.grad, first, rtol=0, atol=0)
    xg.grad = None
    loss.backward(torch.tensor(3.0))  # scaled: recomputed with the scale folded in
    np.testing.assert_allclose(xg.grad.numpy(), 3 * first.numpy(), rtol=2e-7, atol=1e-30)
    xr = x.clone().requires_grad_()
    with generic():
        wce(z, xr, qq, reduction=reduction).backward()
    xn, zn = x.double().numpy(), z.double().numpy()
    qn = qa.double().numpy() if q == "per class" else q
    with np.errstate(over="ignore"):
        scale = (1 - zn) / (1 + np.exp(-xn)) + qn * zn / (1 + np.exp(xn))
    n = 1.0 if reduction == "sum" else xn.size
    assert np.all(np.abs(first.numpy() - xr.grad.numpy())
                  <= 8 * np.finfo(np.float32).eps * scale / n + 1e-30)


def test_weighted_mean_without_weights_is_the_mean_with_its_gradient():
    """reduction="weighted_mean" without weights or a mask is the mean: the value and,
    under PyTorch's autograd, the gradient (it came out n times too large on the
    fused path once)."""
    torch = pytest.importorskip("torch")
    x, z, q, _, _ = (torch.from_numpy(np.ascontiguousarray(a)) for a in _data("float32"))
    x = torch.where(torch.isfinite(x), x, 1.0)
    for n in (50, x.shape[0]):  # one chunk, and several
        grads, values = [], []
        for reduction in ("mean", "weighted_mean"):
            xg = x[:n].clone().requires_grad_()
            v = wce(z[:n], xg, q, reduction=reduction)
            v.backward()
            values.append(v.detach())
            grads.append(xg.grad)
        torch.testing.assert_close(values[1], values[0], rtol=0, atol=0)
        torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)
    assert np.asarray(wce(z.numpy(), x.numpy(), q.numpy(), reduction="weighted_mean")) == \
        np.asarray(wce(z.numpy(), x.numpy(), q.numpy(), reduction="mean"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("incoming", ["sum", "mean", "per element", "strided", "other dtype",
                                      "twice", "create_graph"])
def test_torch_elementwise_gradient_from_the_forward_pass(dtype, incoming):
    """An elementwise call under autograd computes the loss and its gradient in one C
    pass; backward multiplies it by the incoming gradient (nothing to do for .sum(),
    a number for .mean(), elementwise otherwise), hands it over once (a second
    backward recomputes) and leaves double backward to the differentiable graph. Every
    route within the gradient's bound of the generic graph."""
    torch = pytest.importorskip("torch")
    x, z, q, _, _ = (torch.from_numpy(np.ascontiguousarray(a)) for a in _data(dtype))
    x = torch.where(torch.isfinite(x), x, 1.0)
    rng = np.random.default_rng(5)
    w = torch.from_numpy(rng.uniform(-2, 2, x.shape).astype(dtype))

    def run(xg):
        loss = wce(z, xg, q)
        if incoming == "sum":
            return torch.autograd.grad(loss.sum(), xg)[0]
        if incoming == "mean":
            return torch.autograd.grad(loss.mean(), xg)[0]
        if incoming == "per element":
            return torch.autograd.grad(loss, xg, w)[0]
        if incoming == "strided":
            return torch.autograd.grad(loss, xg, w.T.contiguous().T)[0]
        if incoming == "other dtype":
            other = torch.float64 if dtype == "float32" else torch.float32
            return torch.autograd.grad(loss.to(other).sum(), xg)[0]
        if incoming == "twice":
            first = torch.autograd.grad(loss.sum(), xg, retain_graph=True)[0].clone()
            second = torch.autograd.grad(loss.sum(), xg)[0]
            torch.testing.assert_close(second, first, rtol=0, atol=0)
            return second
        (g,) = torch.autograd.grad(loss.sum(), xg, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), xg)
        return torch.cat([g.detach().reshape(-1), h.reshape(-1)])

    got = run(x.clone().requires_grad_())
    with generic():
        ref = run(x.clone().requires_grad_())
    xn, zn, qn = x.double().numpy(), z.double().numpy(), q.double().numpy()
    with np.errstate(over="ignore"):
        scale = (1 - zn) / (1 + np.exp(-xn)) + qn * zn / (1 + np.exp(xn))
    if incoming in ("per element", "strided"):
        scale = scale * 2
    if incoming == "mean":
        scale = scale / xn.size
    if incoming == "create_graph":  # the Hessian l·σ(x)σ(-x) ≤ the same scale
        scale = np.concatenate([scale.reshape(-1), scale.reshape(-1)])
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(got.numpy() - ref.numpy()).reshape(scale.shape)
                  <= 8 * eps * scale + R.TINY[dtype])


@pytest.mark.skipif(_numpy._fused is None, reason="the C kernels are not built")
@pytest.mark.parametrize("n", [1, 1000, 3 * 2048 + 1, _numpy.CHUNK + 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_c_route_on_tensor_memory_equals_the_numpy_views(monkeypatch, n, dtype):
    """Contiguous CPU tensors and a number pos_weight go to the C kernels as
    (address, n, code) operands, without NumPy views: the same bits as the views'
    route (loss, sum and gradient), for labels of the logits' dtype or bool, 2-D and
    non-contiguous operands (the views' route), one thread and every thread."""
    torch = pytest.importorskip("torch")
    from wce_xp._native import _torch as nt

    rng = np.random.default_rng(n)
    cols = 10 if n % 10 == 0 else 1
    x = torch.from_numpy(rng.normal(0, 6, (n // cols, cols)).astype(dtype))
    zf = torch.from_numpy((rng.uniform(size=x.shape) > 0.7).astype(dtype))

    def strided(t):  # the same values, every other element of a buffer twice the size
        return torch.stack([t, t], -1)[..., 0]

    cases = [(zf, x), (zf > 0.5, x), (strided(zf), x), (zf, strided(x))]
    pw = torch.tensor(2.5, dtype=x.dtype)

    def run():
        out = []
        for z, xx in cases:
            for red, q in itertools.product(["none", "sum", "mean"], [2.5, pw]):
                xg = xx.detach().clone().requires_grad_()
                v = wce_xp.binary_cross_entropy_with_logits(xg, z, pos_weight=q, reduction=red)
                (g,) = torch.autograd.grad(v.sum(), xg)
                out.append((v.detach(), g))
        return out

    real = nt._c_operands
    seen: list = []

    def recorded(*a):
        seen.append(real(*a))
        return seen[-1]

    for threads in (1, None):
        wce_xp.set_num_threads(threads)
        try:
            seen.clear()
            monkeypatch.setattr(nt, "_c_operands", recorded)
            fast = run()
            assert any(c is not None for c in seen) and (n < 2 or any(c is None for c in seen))
            monkeypatch.setattr(nt, "_c_operands", lambda *a: None)
            views = run()
            monkeypatch.setattr(nt, "_c_operands", real)
        finally:
            wce_xp.set_num_threads(None)
        for (v1, g1), (v0, g0) in zip(fast, views, strict=True):
            torch.testing.assert_close(v1, v0, rtol=0, atol=0)
            torch.testing.assert_close(g1, g0, rtol=0, atol=0)


def test_torch_c_operands_refuse_what_the_kernels_cannot_read():
    torch = pytest.importorskip("torch")
    from wce_xp._native import _torch as nt

    if _numpy._fused is None:
        pytest.skip("the C kernels are not built")
    x = torch.zeros(4, 3)
    z = torch.zeros(4, 3)
    assert nt._c_operands(z, x, 2.0) is not None
    assert nt._c_operands(z > 0, x, 2.0)[1][2] == "?"
    for zz, xx, q in [(z, x, torch.tensor(2.0)), (z.double(), x, 2.0), (z, x.half(), 2.0),
                      (z.T, x.T, 2.0), (z[:, :2], x[:, :2], 2.0), (z[:3], x, 2.0),
                      (z.int(), x, 2.0), (z > 0, x > 0, 2.0)]:
        assert nt._c_operands(zz, xx, q) is None
    assert nt.labels_in_unit(z) and nt.labels_in_unit(z > 0) and nt.labels_in_unit(z.T)
    assert not nt.labels_in_unit(z - 1) and not nt.labels_in_unit((z - 1).T)
    assert not nt.labels_in_unit(torch.full((3,), float("nan")))


