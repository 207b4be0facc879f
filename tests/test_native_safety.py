"""The native paths are as safe as the operations they replace (issue 18's audit).

Neg/conj-bit views, misaligned buffers, storage freed by another thread, two backward
passes through one graph at once, batched incoming gradients, the engine's thread pool
growing under running calls, fork, tracing, and tensors without dense memory. Each test
reproduces a defect seen on the native paths; the expected values come from PyTorch's
own function or from the same call on a plain copy of the inputs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import wce_xp

# Backend-independent tests here run in the torch session (tests/conftest.py).
pytestmark = pytest.mark.home("torch")

torch = pytest.importorskip("torch")
F = torch.nn.functional

REDUCTIONS = ("none", "sum", "mean")


def _reduce(loss, reduction):
    return loss.sum() if reduction == "none" else loss


# --- neg/conj bits: PyTorch applies them when it reads; raw memory does not hold them


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("grad", [False, True])
def test_neg_bit_views_give_pytorchs_values(reduction, grad):
    c = torch.tensor([0.3 + 2j, -1.5 - 0.25j, 4.0 + 0.5j], requires_grad=grad)
    x = c.conj().imag  # a view with the neg bit set: logits -2, 0.25, -0.5
    assert x.is_neg()
    z = torch.tensor([1.0, 0.0, 1.0])
    got = wce_xp.binary_cross_entropy_with_logits(x, z, reduction=reduction)
    want = F.binary_cross_entropy_with_logits(x.resolve_neg(), z, reduction=reduction)
    torch.testing.assert_close(got, want)
    if grad:
        (g,) = torch.autograd.grad(_reduce(got, reduction), c)
        (w,) = torch.autograd.grad(_reduce(want, reduction), c)
        torch.testing.assert_close(g, w)


def test_neg_bit_labels_and_pos_weight():
    z = torch.tensor([-1.0, -0.0, -0.5])._neg_view()  # labels 1, 0, 0.5
    q = torch.tensor([-2.0, -1.0, -3.0])._neg_view()
    x = torch.tensor([0.5, -1.0, 2.0])
    got = wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=q, reduction="none")
    want = F.binary_cross_entropy_with_logits(x, z.resolve_neg(), pos_weight=q.resolve_neg(),
                                              reduction="none")
    torch.testing.assert_close(got, want)


# --- alignment: a misaligned load is undefined behaviour in C


def test_misaligned_numpy_arrays_match_aligned_copies():
    n = 5000
    raw = np.random.default_rng(0).standard_normal(n).astype(np.float32).tobytes()
    x = np.frombuffer(b"\0" + raw, np.float32, count=n, offset=1)
    z = np.frombuffer(b"\0" + np.full(n, 0.25, np.float32).tobytes(), np.float32, count=n,
                      offset=1)
    assert not x.flags.aligned and not z.flags.aligned
    for reduction in ("none", "sum"):
        got = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction=reduction)
        want = wce_xp.weighted_cross_entropy_with_logits(z.copy(), x.copy(), 2.0,
                                                         reduction=reduction)
        np.testing.assert_array_equal(got, want)
    w = np.frombuffer(b"\0" + np.ones(n, np.float32).tobytes(), np.float32, count=n, offset=1)
    got = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, weight=w, reduction="sum")
    np.testing.assert_array_equal(
        got, wce_xp.weighted_cross_entropy_with_logits(z.copy(), x.copy(), 2.0,
                                                       weight=w.copy(), reduction="sum"))


@pytest.mark.parametrize("grad", [False, True])
def test_misaligned_tensors_match_aligned_copies(grad):
    # (a misaligned tensor takes the generic torch ops: the same values within the
    # library's few-ulp bound, not bitwise the C kernels')
    n = 5000
    raw = np.random.default_rng(1).standard_normal(n).astype(np.float32).tobytes()
    x = torch.frombuffer(bytearray(b"\0" + raw), dtype=torch.float32, offset=1, count=n)
    assert x.data_ptr() % 4
    x.requires_grad_(grad)
    z = torch.full((n,), 0.25)
    xc = x.detach().clone().requires_grad_(grad)
    for reduction in REDUCTIONS:
        got = wce_xp.binary_cross_entropy_with_logits(x, z, reduction=reduction)
        want = wce_xp.binary_cross_entropy_with_logits(xc, z, reduction=reduction)
        torch.testing.assert_close(got, want, rtol=4 * 2**-23, atol=0)
        if grad:
            (g,) = torch.autograd.grad(_reduce(got, reduction), x)
            (w,) = torch.autograd.grad(_reduce(want, reduction), xc)
            # the gradient (1 - z)·σ(x) - q·z·σ(-x) cancels where it crosses 0: its
            # error is bounded relative to its terms (at most 1), not to itself
            scale = 1.0 / n if reduction == "mean" else 1.0
            torch.testing.assert_close(g, w, rtol=0, atol=4 * 2**-24 * scale)


# --- ownership: memory read by address is held for the whole call


def test_operands_read_by_address_hold_their_storage():
    from wce_xp._native import _numpy, _torch

    if _numpy._fused is None:
        pytest.skip("the C kernels are not built")
    x = torch.linspace(-3, 3, 4096)
    z = torch.full((4096,), 0.5)
    want = x.clone()
    *operands, held = _torch._c_operands(z, x, 1.0)
    x.set_(torch.zeros(0))  # another thread could do this while the GIL is released
    z.set_(torch.zeros(0))
    import gc

    gc.collect()
    storage = held[0]
    assert storage.data_ptr() == operands[0][0]  # the address handed to C is in it
    kept = torch.empty(0).set_(storage, 0, want.shape)
    torch.testing.assert_close(kept, want, rtol=0, atol=0)


def test_calls_while_another_thread_replaces_the_storage():
    x = torch.linspace(-4, 4, 1 << 15)
    z = torch.full(x.shape, 0.25)
    want = F.binary_cross_entropy_with_logits(x, z, reduction="sum").item()
    stop = threading.Event()
    errors: list[str] = []
    results: list[float] = []

    def swap():
        spare = [torch.linspace(-4, 4, 1 << 15) for _ in range(2)]
        i = 0
        while not stop.is_set():
            x.set_(spare[i % 2].clone())
            i += 1

    def call():
        for _ in range(200):
            try:
                results.append(
                    wce_xp.binary_cross_entropy_with_logits(x, z, reduction="sum").item())
            except Exception as exc:  # pragma: no cover - the defect
                errors.append(repr(exc))

    t1, t2 = threading.Thread(target=swap), threading.Thread(target=call)
    t1.start()
    t2.start()
    t2.join()
    stop.set()
    t1.join()
    assert not errors
    # every value is the loss of some complete copy of the same data
    np.testing.assert_allclose(results, want, rtol=1e-5)


# --- two backward passes through one graph at once (retain_graph=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_concurrent_backward_through_one_graph(reduction):
    x = torch.randn(1000, requires_grad=True)
    z = torch.rand(1000)
    want = torch.autograd.grad(
        _reduce(F.binary_cross_entropy_with_logits(x, z, reduction=reduction), reduction), x)[0]
    errors: list[str] = []
    for _ in range(300):
        loss = _reduce(wce_xp.binary_cross_entropy_with_logits(x, z, reduction=reduction),
                       reduction)
        grads: list = [None, None]

        def run(i, loss=loss, grads=grads):
            try:
                grads[i] = torch.autograd.grad(loss, x, retain_graph=True)[0]
            except Exception as exc:  # pragma: no cover - the defect
                errors.append(repr(exc))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for g in grads:
            if g is not None:
                torch.testing.assert_close(g, want)
    assert not errors, errors[:3]


# --- batched incoming gradients: the backward pass runs under vmap


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "pos_weight", "weight"])
def test_batched_gradients(reduction, options):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    z = torch.rand(4, 3, dtype=torch.float64, generator=gen)
    kw = {} if options == "plain" else {options: torch.rand(3, dtype=torch.float64,
                                                            generator=gen)}

    def f(x):
        return wce_xp.binary_cross_entropy_with_logits(x, z, reduction=reduction, **kw)

    assert torch.autograd.gradcheck(f, (x,), check_batched_grad=True, check_forward_ad=True,
                                    check_batched_forward_grad=True)
    out = f(x)
    v = torch.randn(5, *out.shape, dtype=out.dtype, generator=gen)
    (batched,) = torch.autograd.grad(out, x, v, is_grads_batched=True)
    for i in range(5):
        (one,) = torch.autograd.grad(f(x), x, v[i])
        torch.testing.assert_close(batched[i], one)
    jac = torch.autograd.functional.jacobian(f, x, vectorize=True)
    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(f, x))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_batched_gradients_of_the_focal_loss(reduction):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    z = torch.rand(4, 3, dtype=torch.float64, generator=gen)

    def f(x):
        return wce_xp.sigmoid_focal_loss(z, x, gamma=1.5, alpha=0.25, reduction=reduction)

    assert torch.autograd.gradcheck(f, (x,), check_batched_grad=True)


def test_incoming_gradient_broadcast_from_a_complex_tensor():
    x = torch.randn(4, 3, requires_grad=True)
    z = torch.rand(4, 3)
    want = F.binary_cross_entropy_with_logits(x, z, reduction="none")
    (w,) = torch.autograd.grad((want.sum() * torch.tensor(2 + 3j)).real, x)
    got = wce_xp.binary_cross_entropy_with_logits(x, z, reduction="none")
    (g,) = torch.autograd.grad((got.sum() * torch.tensor(2 + 3j)).real, x)
    torch.testing.assert_close(g, w)


# --- one rule for in-place changes between forward and backward


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": torch.ones(5)}])
def test_inplace_change_of_the_logits_raises_at_backward(reduction, options):
    x = torch.randn(5, requires_grad=True)
    y = x * 1.0
    loss = _reduce(wce_xp.binary_cross_entropy_with_logits(y, torch.rand(5),
                                                           reduction=reduction, **options),
                   reduction)
    with torch.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# --- tracing: never a silent constant


def test_jit_trace_records_the_computation():
    def f(x, z):
        return wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=torch.tensor(2.0))

    x, z = torch.randn(4, 3), torch.rand(4, 3)
    traced = torch.jit.trace(f, (x, z), check_trace=False)
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        x2, z2 = torch.randn(4, 3, generator=gen), torch.rand(4, 3, generator=gen)
        torch.testing.assert_close(traced(x2, z2), f(x2, z2))


# --- tensors without dense memory


@pytest.mark.parametrize("make", [
    pytest.param(lambda t: t.to_sparse(), id="sparse"),
    pytest.param(lambda t: t.to_mkldnn(), id="mkldnn"),
    pytest.param(lambda t: torch.nested.nested_tensor([t], layout=torch.jagged), id="nested"),
])
def test_tensors_without_dense_memory_are_refused_by_name(make):
    dense = torch.zeros(3)
    try:
        odd = make(dense)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"this PyTorch build cannot make it: {exc}")
    with pytest.raises(TypeError, match=r"^logits: .*dense"):
        wce_xp.sigmoid_cross_entropy_with_logits(dense, odd)
    with pytest.raises(TypeError, match=r"^labels: .*dense"):
        wce_xp.sigmoid_cross_entropy_with_logits(odd, dense)


def test_zero_tensors_are_computed_as_zeros():
    zero = torch._efficientzerotensor(3)
    got = wce_xp.sigmoid_cross_entropy_with_logits(torch.ones(3), zero)
    torch.testing.assert_close(got, torch.full((3,), math.log(2.0)))


# --- the engine's threads


def test_pool_grows_under_running_calls():
    from wce_xp._native import _numpy

    if _numpy.max_threads() < 3:
        pytest.skip("needs room for three threads at least")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1 << 18,)).astype(np.float32)
    z = rng.random(x.shape).astype(np.float32)
    w = rng.random(x.shape).astype(np.float32)  # weight=: the chunked ufunc route
    want = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, weight=w, reduction="sum")
    errors: list[str] = []
    stop = threading.Event()

    def call():
        while not stop.is_set():
            try:
                got = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, weight=w,
                                                                reduction="sum")
                assert got == want
            except Exception as exc:  # pragma: no cover - the defect
                errors.append(repr(exc))

    callers = [threading.Thread(target=call) for _ in range(3)]
    try:
        for t in callers:
            t.start()
        for n in range(2, _numpy.max_threads() + 1):
            wce_xp.set_num_threads(n)
            _numpy._executor(n)  # what the next call with n threads does first
    finally:
        stop.set()
        for t in callers:
            t.join()
        wce_xp.set_num_threads(None)
    assert not errors, errors[:3]


def test_thread_count_is_capped_at_four_per_core():
    from wce_xp._native import _numpy

    try:
        wce_xp.set_num_threads(2**63)
        assert wce_xp.get_num_threads() == 4 * _numpy.cores()
        x = np.linspace(-3, 3, 1 << 17)
        assert np.isfinite(wce_xp.sigmoid_cross_entropy_with_logits(np.zeros_like(x), x,
                                                                    reduction="sum"))
    finally:
        wce_xp.set_num_threads(None)


@pytest.mark.parametrize("size", [4, 1 << 18])
def test_invalid_thread_variable_is_refused_for_every_call(size):
    code = ("import numpy as np, wce_xp\n"
            f"x = np.zeros({size})\n"
            "wce_xp.sigmoid_cross_entropy_with_logits(x, x)\n")
    env = {**os.environ, "WCE_XP_NUM_THREADS": "lots"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    assert "WCE_XP_NUM_THREADS: expected a positive integer or 'all'" in run.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_forked_child_after_pytorchs_openmp_use():
    # The parent uses PyTorch's OpenMP threads (a large reduction) but never the C
    # kernels; the child's first large call must not enter the parent's OpenMP team.
    code = """
import os, sys, torch, wce_xp
torch.set_num_threads(2)
torch.randn(1 << 22).sum()
pid = os.fork()
if pid == 0:
    x = torch.randn(1 << 20, requires_grad=True)
    loss = wce_xp.binary_cross_entropy_with_logits(x, torch.rand(1 << 20))
    loss.backward()
    # (checked in NumPy: PyTorch's own reductions hang in such a child)
    import numpy as np
    os._exit(0 if np.isfinite(x.grad.numpy()).all() else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr


def test_a_torch_size_as_input_is_an_error_naming_the_arguments():
    # (a tuple of ints: array_like to the front door, whose shape check names both)
    with pytest.raises(ValueError, match="target and input must have the same shape"):
        wce_xp.binary_cross_entropy_with_logits(torch.Size([1, 2]), torch.rand(1, 2))
