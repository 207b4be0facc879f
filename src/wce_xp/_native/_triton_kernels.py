"""The Triton kernels of :mod:`wce_xp._native._triton` (imported on first use: Triton
reads ``TRITON_INTERPRET`` when a kernel is defined, and its compiler looks helper
functions up among a kernel's module globals, so they live at this module's top level).
"""

# mypy: disable-error-code="untyped-decorator,no-untyped-def"

import triton
import triton.language as tl


@triton.jit
def _load(x_ptr, z_ptr, q_ptr, q_scalar, n, C, Q_MODE: tl.constexpr, BLOCK: tl.constexpr):
    """This program's offsets, their mask, and x, z, q there in float64 (q: a scalar
    argument, one value per class along the last axis, or one per element)."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float64)
    z = tl.load(z_ptr + offs, mask=m, other=0).to(tl.float64)
    if Q_MODE == 0:
        q = tl.zeros_like(x) + q_scalar
    elif Q_MODE == 1:
        q = tl.load(q_ptr + offs % C, mask=m, other=0.0).to(tl.float64)
    else:
        q = tl.load(q_ptr + offs, mask=m, other=0.0).to(tl.float64)
    return pid, offs, m, x, z, q


@triton.jit
def loss_kernel(
        x_ptr, z_ptr, q_ptr, out_ptr, part_ptr, n, C, q_scalar,
        Q_MODE: tl.constexpr, WRITE: tl.constexpr, REDUCE: tl.constexpr,
        BLOCK: tl.constexpr):
    pid, offs, m, x, z, q = _load(x_ptr, z_ptr, q_ptr, q_scalar, n, C, Q_MODE, BLOCK)
    a = q * z
    b = 1.0 - z
    ax = tl.abs(x)
    e = tl.exp(-ax)
    u = 1.0 + e
    lp = tl.where(u == 1.0, e, tl.log(u) * (e / tl.where(u == 1.0, 1.0, u - 1.0)))  # log1p
    c = tl.where(x < 0.0, a, b)
    lin = tl.where(c == 0.0, 0.0, c * ax)  # 0·inf is the limit 0
    loss = lin + (a + b) * lp
    if WRITE:
        tl.store(out_ptr + offs, loss.to(out_ptr.dtype.element_ty), mask=m)
    if REDUCE:
        tl.store(part_ptr + pid, tl.sum(tl.where(m, loss, 0.0), axis=0))


@triton.jit
def grad_kernel(
        x_ptr, z_ptr, q_ptr, go_ptr, out_ptr, n, C, q_scalar, divisor,
        Q_MODE: tl.constexpr, GO_FULL: tl.constexpr, BLOCK: tl.constexpr):
    _, offs, m, x, z, q = _load(x_ptr, z_ptr, q_ptr, q_scalar, n, C, Q_MODE, BLOCK)
    # σ(±x) = 1/(1 + exp(∓x)): an overflowing exp gives the right 0
    g = (1.0 - z) / (1.0 + tl.exp(-x)) - (q * z) / (1.0 + tl.exp(x))
    if GO_FULL:
        go = tl.load(go_ptr + offs, mask=m, other=0.0).to(tl.float64)
    else:  # a reduction's incoming gradient: one value, read on the device
        go = tl.load(go_ptr + offs * 0, mask=m, other=0.0).to(tl.float64)
    tl.store(out_ptr + offs, (g * (go / divisor)).to(out_ptr.dtype.element_ty), mask=m)
