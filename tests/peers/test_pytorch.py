"""PyTorch's own tests of ``binary_cross_entropy_with_logits``, ported to wce_xp.

Sources (PyTorch's repository):
* ``test/test_nn.py``: the ``test_bce_with_logits_*`` tests of ``TestNN``;
* ``torch/testing/_internal/common_methods_invocations.py``: the OpInfo entry of
  ``nn.functional.binary_cross_entropy_with_logits`` and its sample inputs
  (``sample_inputs_binary_cross_entropy_with_logits``; S = 5, ``make_tensor``'s
  default range [-9, 9], so weights may be negative), tested the way the OpInfo
  suites do: values and gradients against PyTorch's function, ``gradcheck`` and
  ``gradgradcheck`` with forward-mode AD, non-contiguous inputs, every dtype.

PyTorch's function is the expected value (it is the function being replaced). The
value tests run on every backend with PyTorch computing the expectation; the autograd
tests are PyTorch's own machinery and run on PyTorch tensors.
"""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp

from ._common import gradient, make, to_numpy, with_grad

# Backend-independent tests here run in the torch session (tests/conftest.py).
pytestmark = pytest.mark.home("torch")

torch = pytest.importorskip("torch", reason="PyTorch computes the expected values")
F = torch.nn.functional
bce = wce_xp.binary_cross_entropy_with_logits

S = 5


def _ours(xp, device, output, target, dtype="float32", **kw):
    """Our function on the backend under test, from PyTorch tensors."""
    conv = {k: make(xp, device, v.detach().numpy(), dtype) if isinstance(v, torch.Tensor)
            else v for k, v in kw.items()}
    return bce(make(xp, device, output.detach().numpy(), dtype),
               make(xp, device, target.detach().numpy(), dtype), **conv)


def _close(got, want, rtol=1.3e-6, atol=1e-5):
    """torch.testing.assert_close's float32 tolerances (what assertEqual uses)."""
    np.testing.assert_allclose(to_numpy(got), want.detach().numpy(), rtol=rtol, atol=atol)


# --- test_nn.py ------------------------------------------------------------------------


def test_bce_with_logits_raises_if_target_and_input_are_different_size(xp, device):
    target = torch.rand(5)
    output = torch.rand(5, 1)
    with pytest.raises(ValueError, match="must have the same shape"):
        _ours(xp, device, output, target)
    target = torch.rand(5, 1)
    output = torch.rand(5)
    with pytest.raises(ValueError, match="must have the same shape"):
        _ours(xp, device, output, target)


def test_bce_with_logits_gives_same_result_as_sigmoid_and_bce_loss(xp, device):
    torch.manual_seed(0)
    sigmoid = torch.nn.Sigmoid()
    target = torch.rand(64, 4)
    output = torch.rand(64, 4) - 0.5
    want = torch.nn.BCELoss()(sigmoid(output), target)
    _close(_ours(xp, device, output, target), want)
    weight = torch.rand(4)
    want = torch.nn.BCELoss(weight)(sigmoid(output), target)
    _close(_ours(xp, device, output, target, weight=weight), want)
    target = torch.zeros(4, 1)
    output = torch.empty(4, 1).fill_(-100)
    want = torch.nn.BCELoss()(sigmoid(output), target)
    _close(_ours(xp, device, output, target), want)
    want = torch.nn.BCELoss(reduction="none")(sigmoid(output), target)
    _close(_ours(xp, device, output, target, reduction="none"), want)
    weight = torch.rand(1)
    want = torch.nn.BCELoss(weight)(sigmoid(output), target)
    _close(_ours(xp, device, output, target, weight=weight), want)


def test_bce_with_logits_gives_same_result_as_sigmoid_and_bce_loss_large_tensors_with_grad(
        xp, device, backend):
    torch.manual_seed(1)
    x_size, y_size = 1024, 256
    target = torch.rand(x_size, y_size)
    for reduction in ("none", "mean", "sum"):
        output_sig = (torch.rand(x_size, y_size) - 0.5).requires_grad_(True)
        weight = torch.rand(y_size)
        loss_sig = torch.nn.BCELoss(weight, reduction=reduction)(torch.sigmoid(output_sig),
                                                                 target)
        got = _ours(xp, device, output_sig, target, weight=weight, reduction=reduction)
        _close(got, loss_sig, atol=1e-4 if reduction == "sum" else 1e-5)
        grad_out = torch.rand(x_size, y_size) if reduction == "none" else None
        loss_sig.backward(grad_out)
        zt = make(xp, device, target.numpy())
        wt = make(xp, device, weight.numpy())
        go = 1.0 if grad_out is None else make(xp, device, grad_out.numpy())
        scale = 1.0 / (x_size * y_size) if reduction == "mean" else 1.0

        def ours(v, zt=zt, wt=wt, go=go, scale=scale, reduction=reduction):
            return go * bce(v, zt, wt, reduction="none") * scale

        def analytic(v, zt=zt, wt=wt, go=go, scale=scale):
            return go * wce_xp.weighted_cross_entropy_grad_hess(zt, v, weight=wt)[0] * scale

        g = gradient(backend, xp, device, with_grad(ours, analytic),
                     output_sig.detach().numpy(), "float32")
        np.testing.assert_allclose(g, output_sig.grad.numpy(), rtol=1.3e-6, atol=1e-5)


def test_bce_with_logits_has_correct_forward_grad():
    torch.manual_seed(2)
    output = torch.randn(3, 5, dtype=torch.double, requires_grad=True)
    target = torch.randn(3, 5, dtype=torch.double, requires_grad=True)
    for reduction in ("sum", "mean", "none"):
        assert torch.autograd.gradcheck(
            lambda o, t, r=reduction: bce(o, t, reduction=r), (output, target),
            check_forward_ad=True, check_batched_grad=True)
        # logits only requiring a gradient: the native autograd Functions, whose backward
        # PyTorch runs under vmap for batched gradients
        assert torch.autograd.gradcheck(
            lambda o, r=reduction: bce(o, target.detach(), reduction=r), (output,),
            check_forward_ad=True, check_batched_grad=True,
            check_batched_forward_grad=True)


def test_bce_with_logits_has_correct_grad_at_zero(xp, device, backend):
    z = make(xp, device, np.zeros((3, 1)), "float32")
    g = gradient(backend, xp, device, with_grad(
        lambda v: bce(v, z, reduction="sum"),
        lambda v: wce_xp.weighted_cross_entropy_grad_hess(z, v)[0]), np.zeros((3, 1)),
        "float32")
    np.testing.assert_array_equal(g, np.full((3, 1), 0.5))


def test_bce_with_logits_broadcasts_weights(xp, device):
    torch.manual_seed(3)
    target = torch.rand(16, 4)
    output = torch.rand(16, 4) - 0.5
    for weight in (torch.rand(4), torch.rand(16, 1)):
        out1 = to_numpy(_ours(xp, device, output, target, weight=weight))
        out2 = to_numpy(_ours(xp, device, output, target,
                              weight=weight.expand(16, 4).contiguous()))
        np.testing.assert_allclose(out1, out2, rtol=1.3e-6, atol=1e-5)
        _close(out1, F.binary_cross_entropy_with_logits(output, target, weight))


def test_bce_with_logits_ones_in_pos_weights_are_the_same_as_none(xp, device):
    torch.manual_seed(4)
    target = torch.rand(64, 4)
    output = torch.rand(64, 4) - 0.5
    pos_weight = torch.ones(64, 4)
    np.testing.assert_allclose(to_numpy(_ours(xp, device, output, target)),
                               to_numpy(_ours(xp, device, output, target,
                                              pos_weight=pos_weight)), rtol=1.3e-6)


def test_bce_with_logits_broadcasts_pos_weights(xp, device):
    torch.manual_seed(5)
    target = torch.rand(64, 4)
    output = torch.rand(64, 4) - 0.5
    pos_weight = torch.rand(4)
    out1 = to_numpy(_ours(xp, device, output, target, pos_weight=pos_weight))
    out2 = to_numpy(_ours(xp, device, output, target, pos_weight=pos_weight.expand(1, 4)))
    out3 = to_numpy(_ours(xp, device, output, target, pos_weight=pos_weight.expand(64, 4)))
    np.testing.assert_allclose(out1, out2, rtol=1.3e-6)
    np.testing.assert_allclose(out1, out3, rtol=1.3e-6)
    _close(out1, F.binary_cross_entropy_with_logits(output, target, pos_weight=pos_weight))


def test_bce_with_logits_with_pos_weight_has_correct_grad_at_zero(xp, device, backend):
    z = make(xp, device, np.zeros((3, 1)), "float32")
    q = make(xp, device, np.ones((3, 1)), "float32")
    g = gradient(backend, xp, device, with_grad(
        lambda v: bce(v, z, pos_weight=q, reduction="sum"),
        lambda v: wce_xp.weighted_cross_entropy_grad_hess(z, v, q)[0]), np.zeros((3, 1)),
        "float32")
    np.testing.assert_array_equal(g, np.full((3, 1), 0.5))


def test_bce_with_logits_stability(xp, device):
    output = torch.tensor([0.0, -120.0])
    target = torch.tensor([0.0, 1.0])
    pos_weight = torch.tensor([1.0, 1.0])
    assert np.isfinite(to_numpy(_ours(xp, device, output, target))).all()
    assert np.isfinite(to_numpy(_ours(xp, device, output, target,
                                      pos_weight=pos_weight))).all()


# --- OpInfo: nn.functional.binary_cross_entropy_with_logits ----------------------------


def _opinfo_samples(dtype=torch.float64, seed=0, noncontiguous=False):
    """sample_inputs_binary_cross_entropy_with_logits, with a fixed seed."""
    from torch.testing import make_tensor

    torch.manual_seed(seed)

    def make(shape, low=None, high=None):
        return make_tensor(shape, device="cpu", dtype=dtype, low=low, high=high,
                           noncontiguous=noncontiguous)

    def make_prob(shape):
        return make(shape, low=0, high=1)

    reductions = ("mean", "sum", "none")
    cases = [*[(shape, {}) for shape in ((), (1,), (S,), (S, S), (S, S, S))],
             *[((S, S), {"reduction": r}) for r in reductions]]
    for wshape in ((1,), (1, S), (S,), (S, S)):
        cases += [((S, S), {"reduction": r, "weight": make(wshape)}) for r in reductions]
    cases += [((S, S), {"reduction": r, "pos_weight": make((S,), low=0)}) for r in reductions]
    cases += [((S, S), {"reduction": r, "weight": make((S, S)),
                        "pos_weight": make((S,), low=0)}) for r in reductions]
    for shape, kwargs in cases:
        yield make(shape), make_prob(shape), kwargs


@pytest.mark.parametrize("noncontiguous", [False, True])
def test_opinfo_values_on_every_backend(xp, device, noncontiguous):
    """Values on PyTorch's OpInfo samples: within 1e-10 relative in float64."""
    for i, (inp, target, kwargs) in enumerate(_opinfo_samples(noncontiguous=noncontiguous)):
        want = F.binary_cross_entropy_with_logits(inp, target, **kwargs)
        got = _ours(xp, device, inp, target, "float64", **kwargs)
        assert tuple(got.shape) == tuple(want.shape), i
        np.testing.assert_allclose(to_numpy(got), want.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"sample {i}: {kwargs}")


def test_opinfo_random_targets_and_negative_weights():
    """PyTorch's tests use normally distributed targets; weights from make_tensor may be
    negative. Values and gradients (input and target: PyTorch differentiates nothing
    else) within 1e-10 in float64."""
    torch.manual_seed(7)
    x = torch.randn(S, S, dtype=torch.float64) * 4
    z = torch.randn(S, S, dtype=torch.float64)
    w = torch.randn(S, S, dtype=torch.float64)
    q = torch.randn(S, dtype=torch.float64)
    for reduction in ("none", "mean", "sum"):
        args = [t.clone().requires_grad_(True) for t in (x, z)]
        ours = bce(args[0], args[1], w, q, reduction=reduction)
        peer_args = [t.clone().requires_grad_(True) for t in (x, z)]
        peer = F.binary_cross_entropy_with_logits(*peer_args, weight=w, pos_weight=q,
                                                  reduction=reduction)
        np.testing.assert_allclose(ours.detach().numpy(), peer.detach().numpy(), rtol=1e-10)
        ours.sum().backward()
        peer.sum().backward()
        for a, b in zip(args, peer_args, strict=True):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("noncontiguous", [False, True])
def test_opinfo_gradcheck_gradgradcheck_forward_ad(noncontiguous):
    """test_fn_grad / test_fn_gradgrad / test_forward_mode_AD / test_fn_fwgrad_bwgrad:
    input and target require grad (OpInfo's make_prob(requires_grad=...))."""
    for inp, target, kwargs in _opinfo_samples(noncontiguous=noncontiguous, seed=1):
        args = (inp.requires_grad_(True), target.requires_grad_(True))

        def fn(i, t, kwargs=kwargs):
            return bce(i, t, **kwargs)

        assert torch.autograd.gradcheck(fn, args, check_forward_ad=True,
                                        check_batched_grad=True)
        assert torch.autograd.gradgradcheck(fn, args, check_fwd_over_rev=True,
                                            check_batched_grad=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_opinfo_dtypes_match_pytorch(dtype):
    """OpInfo's dtype coverage on CPU: the result dtype is the input's, and the value is
    PyTorch's within the dtype's own tolerance (ours is computed in float32; PyTorch's
    half-precision kernel is less accurate, so the tolerance is PyTorch's for the type)."""
    tdt = getattr(torch, dtype)
    tol = {"float32": (1.3e-6, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float16": (1e-3, 1e-5)}
    for inp, target, kwargs in _opinfo_samples(dtype=tdt, seed=2):
        want = F.binary_cross_entropy_with_logits(inp.double(), target.double(), **{
            k: v.double() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
        got = bce(inp, target, **kwargs)
        assert got.dtype == tdt
        rtol, atol = tol[dtype]
        scale = max(1.0, float(want.abs().max()))
        np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=rtol,
                                   atol=atol + rtol * scale)
