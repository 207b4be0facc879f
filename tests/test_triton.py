"""The Triton kernels for CUDA tensors without CuPy, against the generic path.

On a machine with CUDA they run on the GPU; elsewhere Triton's interpreter runs the
same kernels on the CPU (``TRITON_INTERPRET=1``, which the root conftest sets before
Triton is imported where there is no NVIDIA GPU). Skipped where Triton is not installed
(PyTorch's CPU wheels do not ship it; the torch nox session installs it).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if "tensorflow" in sys.modules:  # (the nox sessions never install both)
    pytest.skip("TensorFlow is loaded in this process, and loading Triton after it aborts "
                "the process ('LLVM ERROR: inconsistency in registered CommandLine "
                "options'): run this file without the TensorFlow backend",
                allow_module_level=True)
pytest.importorskip("triton", reason="Triton is not installed")

import array_api_compat.torch as tx  # noqa: E402

from wce_xp._generic import _core  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"


@pytest.fixture(scope="module")
def T():
    if not CUDA and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no CUDA device, and Triton's interpreter was not set before Triton "
                    "was imported (the root conftest sets it)")
    from wce_xp._native import _triton

    return _triton


def _data(dtype, shape=(301, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 8
    x.view(-1)[:5] = torch.tensor([0.0, np.inf, -np.inf, np.nan, 1e30], dtype=torch.float64)
    z = torch.rand(shape, generator=g, dtype=torch.float64)
    z[::3] = z[::3].round()
    q = torch.rand(shape[-1:], generator=g, dtype=torch.float64) * 4
    return (t.to(dtype).to(DEVICE) for t in (x, z, q))


def _q_variants(q, x):
    return [2.5, q, q.expand(x.shape).contiguous(), q[:1].reshape(())]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_equals_generic(T, dtype):
    """The kernel computes in float64: float32 results are the float64 reference rounded
    (within 2 eps); float64 ones within 8 eps of the generic float64 loss (itself ≤ 4 ulp)."""
    x, z, q = _data(dtype)
    eps = torch.finfo(dtype).eps
    for qq in _q_variants(q, x):
        got = T.weighted_loss(z, x, qq)
        q64 = qq if isinstance(qq, float) else qq.double()
        ref = _core.weighted_loss(z.double(), x.double(), q64, xp=tx)
        assert got.dtype == dtype and got.device == x.device
        fin = torch.isfinite(ref) & (ref.abs() > 1e-30)
        rel = ((got.double() - ref).abs() / ref.abs())[fin]
        assert rel.max() <= (2 if dtype == torch.float32 else 8) * eps, rel.max()
        ref = ref.to(dtype)
        assert torch.equal(torch.isnan(got), torch.isnan(ref))
        assert torch.equal(got[torch.isinf(ref)], ref[torch.isinf(ref)])


def test_bool_labels_and_signed_coefficients(T):
    x, z, q = _data(torch.float64)
    x = torch.where(torch.isfinite(x), x, 3.0)
    zb = z > 0.5
    np.testing.assert_allclose(T.weighted_loss(zb, x, 2.0).cpu(),
                               _core.weighted_loss(zb.double(), x, 2.0, xp=tx).cpu(), rtol=1e-15)
    zs = z * 3 - 1  # outside [0, 1]: PyTorch's semantics, the exact rule
    np.testing.assert_allclose(T.weighted_loss(zs, x, -q).cpu(),
                               _core.weighted_loss(zs, x, -q, xp=tx).cpu(), rtol=1e-13,
                               atol=1e-300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_sum_and_mean(T, dtype):
    x, z, q = _data(dtype, shape=(3001, 5))
    x = torch.where(torch.isfinite(x) & (x.abs() < 1e3), x, 1.0)
    ref = _core.weighted_loss(z.double(), x.double(), q.double(), xp=tx)
    s = T.loss_sum(z, x, q)
    assert s.dtype == torch.float64
    np.testing.assert_allclose(s.item(), ref.sum().item(), rtol=1e-6 if dtype == torch.float32
                               else 1e-13)
    m = T.reduced(z, x, q, "mean")
    assert m.dtype == dtype and m.shape == ()
    np.testing.assert_allclose(m.item(), ref.mean().item(), rtol=1e-6 if dtype == torch.float32
                               else 1e-13)


def _grad_scale(z, x, q):
    x64, z64, q64 = x.double(), z.double(), q.double()
    return (1 - z64) * torch.sigmoid(x64) + q64 * z64 * torch.sigmoid(-x64)


# the interpreter evaluates exp(x) with NumPy, which warns where it overflows to inf (the
# intended limit, σ = 0); a GPU raises no floating-point warnings
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_kernel(T, dtype):
    x, z, q = _data(dtype)
    x = torch.where(torch.isfinite(x), x, -2.0)
    go = torch.rand(x.shape, dtype=dtype, device=x.device)
    g0, _ = _core.grad_hess(z.double(), x.double(), q.double(), xp=tx)
    eps = torch.finfo(dtype).eps
    bound = 8 * eps * _grad_scale(z, x, q)
    assert ((T.grad(z, x, q, go).double() - go.double() * g0).abs() <= bound + 1e-30).all()
    one = torch.tensor(3.0, dtype=dtype, device=x.device)  # a reduction's incoming gradient
    got = T.grad(z, x, q, one, divisor=4.0).double()
    assert ((got - 0.75 * g0).abs() <= bound + 1e-30).all()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_autograd_matches_generic_and_double_backward(T, reduction):
    x, z, q = _data(torch.float64, shape=(40, 3))
    x = torch.where(torch.isfinite(x) & (x.abs() < 1e3), x, 0.5)

    def ours(xx):
        return T.loss(z, xx, q) if reduction == "none" else T.reduced(z, xx, q, reduction)

    def ref(xx):
        v = _core.weighted_loss(z, xx, q, xp=tx)
        return v if reduction == "none" else (v.sum() if reduction == "sum" else v.mean())

    xg = x.clone().requires_grad_()
    out = ours(xg)
    (g,) = torch.autograd.grad(out.sum(), xg)
    x0 = x.clone().requires_grad_()
    (g0,) = torch.autograd.grad(ref(x0).sum(), x0)
    assert (g - g0).abs().max() <= 1e-14 * _grad_scale(z, x, q).max()
    torch.autograd.gradcheck(lambda xx: ours(xx), (x.clone().requires_grad_(),))
    torch.autograd.gradgradcheck(lambda xx: ours(xx), (x.clone().requires_grad_(),))


def test_what_it_does_not_take_goes_to_the_generic_path(T):
    x, z, q = _data(torch.float32)
    assert T.weighted_loss(z[:, ::2], x[:, ::2], 1.0) is None  # not contiguous
    assert T.weighted_loss(z, x, q[:3]) is None  # pos_weight of another length
    assert T.reduced(z, x, q, "weighted_mean") is None
    assert T.loss(z.requires_grad_(), x, 1.0) is None  # a gradient in the labels


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (the dispatch to Triton)")
def test_cuda_tensors_without_cupy_take_triton(T, monkeypatch):
    import wce_xp
    from wce_xp._native import _torch

    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    x, z, q = _data(torch.float32)
    x = torch.where(torch.isfinite(x), x, 1.0)
    assert _torch._route(x) == "triton"
    xg = x.clone().requires_grad_()
    v = wce_xp.binary_cross_entropy_with_logits(xg, z, pos_weight=q)
    v.backward()
    with wce_xp._registry.generic_only():
        x0 = x.clone().requires_grad_()
        v0 = wce_xp.binary_cross_entropy_with_logits(x0, z, pos_weight=q)
        v0.backward()
    np.testing.assert_allclose(v.item(), v0.item(), rtol=1e-5)
    assert (xg.grad - x0.grad).abs().max() <= 1e-6 * x0.grad.abs().max()
