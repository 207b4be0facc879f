"""Triton kernels for PyTorch CUDA tensors when CuPy is absent (PyTorch's CUDA builds
ship Triton): the loss, its gradient and a fused sum, one pass each.

Why it exists: without CuPy, CUDA tensors took the generic path, about twenty kernels
with full-size temporaries. Here each kernel reads the logits and labels once and
writes its result once; the sum writes one float64 partial per block, which PyTorch
adds up, so nothing of the loss's size is ever allocated for a reduction.

Arithmetic: in float64 inside the kernel whatever the storage dtype (as the CuPy
kernels do), so float32 results are correctly rounded to within an ulp or two, and
with ``exp``/``log`` only: ``log1p(e)`` is ``log(u)·e/(u - 1)`` with ``u = 1 + e``
(exact to a few ulps; ``e`` where ``u`` rounds to 1). The loss uses the exact rule of
the generic code, ``c·|x| + l·log1p(exp(-|x|))`` with ``c = q·z`` where ``x < 0``
else ``1 - z`` and ``c = 0`` giving 0 even at infinite ``x``, which holds for
coefficients of any sign; the gradient is ``(1 - z)·σ(x) - q·z·σ(-x)``.

What it takes: contiguous logits and labels of one shape and dtype (float16, bfloat16,
float32, float64; labels may be bool), ``pos_weight`` a Python number, a per-class
vector along the last axis, or the logits' shape. Anything else returns None and takes
the generic path. Nothing here reads a value back to the host: the incoming gradient
and the mean's divisor stay on the device.

Tests run these kernels on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``),
against the generic path (tests/test_triton.py). The kernels are built on first use,
so the interpreter setting is read then.
"""

from __future__ import annotations

from typing import Any

BLOCK = 1024

# pos_weight layouts
_Q_SCALAR, _Q_CLASS, _Q_FULL = 0, 1, 2


def available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def _kernels() -> Any:
    from . import _triton_kernels as k

    return k.loss_kernel, k.grad_kernel


def _q_layout(q: Any, x: Any) -> tuple[int, Any, float, int] | None:
    """``(mode, pointer tensor, scalar, C)`` for the kernels, or None (generic path)."""
    import torch

    c = x.shape[-1] if x.ndim else 1
    if isinstance(q, float):
        return _Q_SCALAR, x, q, c
    if type(q) is not torch.Tensor or q.device != x.device or not q.is_contiguous():
        return None
    if q.ndim == 0 or q.numel() == 1:
        return _Q_CLASS, q.reshape(1), 0.0, 1
    if q.ndim == 1 and x.ndim >= 1 and q.shape[0] == c:
        return _Q_CLASS, q, 0.0, c
    if tuple(q.shape) == tuple(x.shape):
        return _Q_FULL, q, 0.0, c
    return None


def _ok(z: Any, x: Any) -> bool:
    import torch

    return (type(x) is torch.Tensor and type(z) is torch.Tensor and x.is_floating_point()
            and z.shape == x.shape and z.device == x.device and x.is_contiguous()
            and z.is_contiguous() and (z.dtype == x.dtype or z.dtype == torch.bool)
            and x.numel() > 0)


def _grid(n: int) -> tuple[int]:
    return ((n + BLOCK - 1) // BLOCK,)


def weighted_loss(z: Any, x: Any, q: Any) -> Any:
    """The elementwise loss, one kernel (no autograd graph), or None."""
    import torch

    lay = _q_layout(q, x) if _ok(z, x) else None
    if lay is None:
        return None
    mode, qp, qs, c = lay
    loss_kernel, _ = _kernels()
    out = torch.empty_like(x)
    n = x.numel()
    loss_kernel[_grid(n)](x, z, qp, out, out, n, c, qs, Q_MODE=mode, WRITE=True, REDUCE=False,
                          BLOCK=BLOCK)
    return out


def loss_sum(z: Any, x: Any, q: Any) -> Any:
    """The float64 sum of the loss over every element, fused (no elementwise loss is
    written), as a 0-d device tensor; or None."""
    import torch

    lay = _q_layout(q, x) if _ok(z, x) else None
    if lay is None:
        return None
    mode, qp, qs, c = lay
    loss_kernel, _ = _kernels()
    n = x.numel()
    parts = torch.empty(_grid(n)[0], dtype=torch.float64, device=x.device)
    loss_kernel[_grid(n)](x, z, qp, x, parts, n, c, qs, Q_MODE=mode, WRITE=False, REDUCE=True,
                          BLOCK=BLOCK)
    return parts.sum()


def grad(z: Any, x: Any, q: Any, go: Any, divisor: float = 1.0) -> Any:
    """``go·grad/divisor``: ``go`` of the logits' shape, or one value (a reduction's)."""
    import torch

    lay = _q_layout(q, x) if _ok(z, x) else None
    if lay is None:
        return None
    mode, qp, qs, c = lay
    full = go.numel() != 1
    if full and (tuple(go.shape) != tuple(x.shape) or not go.is_contiguous()):
        go = go.expand(x.shape).contiguous()
    _, grad_kernel = _kernels()
    out = torch.empty_like(x)
    n = x.numel()
    grad_kernel[_grid(n)](x, z, qp, go.reshape(-1) if not full else go, out, n, c, qs,
                          float(divisor), Q_MODE=mode, GO_FULL=full, BLOCK=BLOCK)
    return out


def _make_functions() -> tuple[Any, Any]:
    import torch

    from .._compat import array_namespace
    from .._generic import _core

    def grad_graph(z: Any, x: Any, q: Any) -> Any:  # differentiable: double backward
        return _core.grad(z.to(x.dtype), x, q, xp=array_namespace(x))

    class TritonLoss(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, x: Any, z: Any, q: Any) -> Any:
            ctx.save_for_backward(x, z, *([q] if isinstance(q, torch.Tensor) else []))
            ctx.q = q if isinstance(q, float) else None
            return weighted_loss(z, x, q)

        @staticmethod
        def backward(ctx: Any, go: Any) -> Any:
            x, z, *rest = ctx.saved_tensors
            q = rest[0] if rest else ctx.q
            if torch.is_grad_enabled():  # double backward: differentiable torch ops
                g = grad_graph(z, x, q)
                return go * g, None, None
            return grad(z, x, q, go), None, None

    class TritonSum(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, x: Any, z: Any, q: Any, divisor: float) -> Any:
            ctx.save_for_backward(x, z, *([q] if isinstance(q, torch.Tensor) else []))
            ctx.q = q if isinstance(q, float) else None
            ctx.divisor = divisor
            return (loss_sum(z, x, q) / divisor).to(x.dtype)

        @staticmethod
        def backward(ctx: Any, go: Any) -> Any:
            x, z, *rest = ctx.saved_tensors
            q = rest[0] if rest else ctx.q
            if torch.is_grad_enabled():
                g = grad_graph(z, x, q)
                return go * g / ctx.divisor, None, None, None
            return grad(z, x, q, go, ctx.divisor), None, None, None

    return TritonLoss, TritonSum


_FUNCTIONS: tuple[Any, Any] | None = None


def _functions() -> tuple[Any, Any]:
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _make_functions()
    return _FUNCTIONS


def _needs_graph(*tensors: Any) -> bool:
    import torch

    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def loss(z: Any, x: Any, q: Any) -> Any:
    """The elementwise loss with autograd (a gradient in the logits only), or None."""
    if _q_layout(q, x) is None or not _ok(z, x) or _needs_graph(z, q):
        return None
    if _needs_graph(x):
        return _functions()[0].apply(x, z, q)
    return weighted_loss(z, x, q)


def reduced(z: Any, x: Any, q: Any, reduction: str) -> Any:
    """``sum`` or ``mean`` over every element, fused, with autograd; or None."""
    if reduction not in ("sum", "mean") or _q_layout(q, x) is None or not _ok(z, x) \
            or _needs_graph(z, q):
        return None
    divisor = float(x.numel()) if reduction == "mean" else 1.0
    if _needs_graph(x):
        return _functions()[1].apply(x, z, q, divisor)
    total = loss_sum(z, x, q)
    return (total / divisor).to(x.dtype)
