"""wce_xp.torch: the loss modules PyTorch users hold, on every PyTorch device here.

``BCEWithLogitsLoss`` is PyTorch's module with wce_xp's arithmetic: the same constructor,
buffers that follow ``.to()``, ``state_dict`` keys that load into and from a model built
with PyTorch's module, gradients equal to the functional form, and no graph break under
``torch.compile(fullgraph=True)``. ``SigmoidFocalLoss`` takes torchvision's arguments.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import wce_xp

torch = pytest.importorskip("torch")
from wce_xp import torch as wt  # noqa: E402

# Backend-independent tests here run in the torch session (tests/conftest.py).
pytestmark = pytest.mark.home("torch")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _data(device, shape=(64, 5), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 3).to(device=device, dtype=dtype)
    z = (torch.rand(shape, generator=g) > 0.7).to(device=device, dtype=dtype)
    q = torch.rand(shape[-1:], generator=g).mul(3).to(device=device, dtype=dtype)
    w = torch.rand(shape[-1:], generator=g).to(device=device, dtype=dtype)
    return x, z, q, w


def test_importing_the_module_imports_no_pytorch():
    code = "import sys, wce_xp.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_module_equals_pytorchs_module_and_the_functional_form(dev, reduction, dtype):
    x, z, q, w = _data(dev, dtype=dtype)
    ours = wt.BCEWithLogitsLoss(weight=w, pos_weight=q, reduction=reduction)
    theirs = torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=q, reduction=reduction)
    assert isinstance(ours, torch.nn.BCEWithLogitsLoss)
    xa, xb, xc = (x.clone().requires_grad_() for _ in range(3))
    a, b = ours(xa, z), theirs(xb, z)
    c = wce_xp.binary_cross_entropy_with_logits(xc, z, w, q, reduction=reduction)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(a, c, rtol=0, atol=0)  # the functional form, bitwise
    for _t, out in ((xa, a), (xb, b), (xc, c)):
        (out if out.dim() == 0 else out.sum()).backward()
    torch.testing.assert_close(xa.grad, xb.grad, **tol)
    torch.testing.assert_close(xa.grad, xc.grad, rtol=0, atol=0)
    assert a.device == x.device and a.dtype == x.dtype


def test_buffers_follow_the_module_and_state_dicts_interchange():
    q = torch.tensor([2.0, 1.0, 0.5])
    w = torch.tensor([1.0, 0.5, 2.0])
    ours = wt.BCEWithLogitsLoss(weight=w, pos_weight=q)
    theirs = torch.nn.BCEWithLogitsLoss(weight=w * 0, pos_weight=q * 0)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "pos_weight"]
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(theirs.pos_weight, q)
    back = wt.BCEWithLogitsLoss(weight=w * 0, pos_weight=q * 0)
    back.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(back.pos_weight, q)
    # in a model, saved with PyTorch's module and loaded with ours
    model_theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), theirs)
    model_ours = torch.nn.Sequential(torch.nn.Linear(4, 3), wt.BCEWithLogitsLoss(
        weight=torch.zeros(3), pos_weight=torch.zeros(3)))
    model_ours.load_state_dict(model_theirs.state_dict())
    torch.testing.assert_close(model_ours[1].weight, w)
    # .to() moves the buffers (the functools.partial stand-in kept them behind)
    moved = ours.to("meta")
    assert moved.pos_weight.device.type == "meta" and moved.weight.device.type == "meta"
    out = moved(torch.zeros(2, 3, device="meta"), torch.zeros(2, 3, device="meta"))
    assert out.device.type == "meta"
    ours64 = wt.BCEWithLogitsLoss(pos_weight=q).to(torch.float64)
    assert ours64.pos_weight.dtype == torch.float64
    assert repr(ours) == "BCEWithLogitsLoss()"


@pytest.mark.parametrize("module", ["bce", "focal"])
def test_modules_compile_without_graph_breaks(module):
    torch._dynamo.reset()
    x, z, q, _ = _data("cpu")
    loss = wt.BCEWithLogitsLoss(pos_weight=q) if module == "bce" else \
        wt.SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="mean", pos_weight=q)
    explanation = torch._dynamo.explain(loss)(x, z)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(loss, fullgraph=True)
    xg, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = compiled(xg, z), loss(xe, z)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    got.backward()
    want.backward()
    torch.testing.assert_close(xg.grad, xe.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dev", DEVICES)
def test_modules_in_a_sequential_model_train(dev):
    torch.manual_seed(0)
    x = torch.randn(256, 4, device=dev)
    z = (x[:, :3] > 0).float()
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    criterion = wt.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 3.0]))
    model, criterion = model.to(dev), criterion.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = criterion(model(x), z)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.5 * first


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("alpha", [0.25, -1.0])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_module_is_torchvisions_formula(dev, alpha, reduction):
    """torchvision's ``sigmoid_focal_loss`` (its code, restated): ce·(1 - p_t)^γ·α_t,
    no alpha term for a negative alpha; and the module equals wce_xp's function."""
    x, z, q, _ = _data(dev, dtype=torch.float64)
    fl = wt.SigmoidFocalLoss(alpha=alpha, gamma=2.0, reduction=reduction)
    got = fl(x, z)
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, z, reduction="none")
    p_t = p * z + (1 - p) * (1 - z)
    ref = ce * (1 - p_t) ** 2
    if alpha >= 0:
        ref = (alpha * z + (1 - alpha) * (1 - z)) * ref
    ref = {"none": ref, "mean": ref.mean(), "sum": ref.sum()}[reduction]
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    with_q = wt.SigmoidFocalLoss(alpha=alpha, reduction=reduction, pos_weight=q)(x, z)
    torch.testing.assert_close(with_q, wce_xp.sigmoid_focal_loss(
        z, x, gamma=2.0, alpha=None if alpha < 0 else alpha, pos_weight=q,
        reduction=reduction))
    assert list(wt.SigmoidFocalLoss(pos_weight=q).state_dict()) == ["pos_weight"]


def test_focal_module_refuses_a_reduction_torchvision_lacks():
    with pytest.raises(ValueError, match="reduction: expected 'none', 'mean' or 'sum'"):
        wt.SigmoidFocalLoss(reduction="weighted_mean")


def test_torchvision_if_installed():
    tv = pytest.importorskip("torchvision.ops")
    x, z, _, _ = _data("cpu", dtype=torch.float64)
    torch.testing.assert_close(wt.SigmoidFocalLoss(reduction="sum")(x, z),
                               tv.sigmoid_focal_loss(x, z, reduction="sum"))
