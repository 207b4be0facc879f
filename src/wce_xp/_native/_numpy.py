"""NumPy fast path: the same formula as the generic code, evaluated in cache-sized chunks.

Why it exists: the generic code makes about twenty passes over full-size temporaries,
so a 1e7-element call moves gigabytes through memory and allocates hundreds of MB.
Here each chunk of rows (about ``CHUNK`` elements) goes through in-place ufuncs on
preallocated buffers that stay in the L2 cache, and reductions accumulate chunk sums
in float64 without ever materializing the elementwise loss. Measured in
BENCHMARKS.md; tested against the generic path in tests/test_native.py.

The arithmetic is the generic one: ``L = c·|x| + l·log1p(exp(-|x|))`` with
``c = q·z`` for ``x < 0`` and ``1 - z`` otherwise, ``l = q·z + 1 - z``; ``c·|x|`` is
formed only where ``c != 0`` (0·inf is the limit 0). The generic code's selection of
``|x|`` as ``x`` or ``-x`` exists only for autograd; the values are identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

Array = Any

# Elements per chunk: seven buffers of this size stay well inside a 1-2 MiB L2 cache.
CHUNK = 1 << 15


class _Buffers:
    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.y = np.empty(shape, dtype)
        self.g = np.empty(shape, dtype)
        self.a = np.empty(shape, dtype)
        self.b = np.empty(shape, dtype)
        self.t = np.empty(shape, dtype)
        self.m = np.empty(shape, np.bool_)

    def view(self, rows: int) -> _Buffers:
        if rows == self.y.shape[0]:
            return self
        v = object.__new__(_Buffers)
        for name in ("y", "g", "a", "b", "t", "m"):
            setattr(v, name, getattr(self, name)[:rows])
        return v


def _row_chunks(shape: tuple[int, ...]) -> tuple[int, Iterator[tuple[int, int]]]:
    """Chunks of whole rows along axis 0, each about CHUNK elements."""
    n0 = shape[0] if shape else 1
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    rows = max(1, min(n0, CHUNK // max(row, 1)))
    return rows, ((i, min(i + rows, n0)) for i in range(0, n0, rows))


# 0·inf (an infinite logit with a zero coefficient) and exp overflow are intended and
# resolved below; NumPy would warn about them.
_QUIET = {"invalid": "ignore", "over": "ignore"}


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def _chunk_loss(xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array) -> Array:
    """The loss of one chunk into ``out``, for non-negative ``a = q·z`` and ``b = 1 - z``.

    Masked ufuncs (``where=``) and ``np.where`` are 20-50x slower than plain ufuncs
    here, so the selection ``c·|x|`` is done arithmetically: ``max(b·x, -(a·x))`` is
    exactly ``b·x`` for ``x ≥ 0`` and ``a·|x|`` for ``x < 0`` (a, b ≥ 0). ``fmax``
    skips the NaN of ``0·inf`` at infinite logits and the final ``fmax(·, 0)`` turns
    the remaining ``-inf`` or NaN of that case into the limit 0. A NaN logit still
    reaches the result through the log1p term.
    """
    y, g, a, b, t = buf.y, buf.g, buf.a, buf.b, buf.t
    _log_term(xc, zc, qc, y, g, a, b, t)
    np.multiply(b, xc, out=b)  # b·x
    np.multiply(a, xc, out=a)
    np.negative(a, out=a)  # a·(-x)
    np.fmax(b, a, out=b)
    np.fmax(b, 0.0, out=b)  # c·|x|
    np.add(b, g, out=out)
    return out


def _log_term(xc: Array, zc: Array, qc: Array | float, y: Array, g: Array, a: Array,
              b: Array, t: Array) -> None:
    """``g = l·log1p(exp(-|x|))``, ``a = q·z``, ``b = 1 - z`` (``y``, ``t`` scratch)."""
    np.abs(xc, out=y)
    np.negative(y, out=y)
    np.exp(y, out=y)
    np.log1p(y, out=g)  # log1p(exp(-|x|)) in [0, log 2]
    np.multiply(zc, qc, out=a)  # a = q·z
    np.subtract(1.0, zc, out=b)  # b = 1 - z
    np.add(a, b, out=t)  # l = a + b
    np.multiply(g, t, out=g)  # l·g


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def _chunk_loss_signed(
    xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array
) -> Array:
    """The loss of one chunk for coefficients of any sign (labels outside [0, 1],
    negative weights: PyTorch's semantics, or ``validate=False``).

    ``c·|x| = b·max(x, 0) - a·min(x, 0)``: one of the two terms is 0 for each x, and
    the sum has the sign of the coefficients. Only ``0·inf`` (a zero coefficient at an
    infinite logit) gives NaN here; such a chunk is redone with explicit selections.
    """
    y, g, a, b, t = buf.y, buf.g, buf.a, buf.b, buf.t
    _log_term(xc, zc, qc, y, g, a, b, t)
    np.maximum(xc, 0.0, out=y)
    np.multiply(b, y, out=b)  # b·max(x, 0)
    np.minimum(xc, 0.0, out=y)
    np.multiply(a, y, out=a)  # -a·|min(x, 0)|
    np.subtract(b, a, out=b)
    np.add(b, g, out=out)
    np.isnan(out, out=buf.m)
    if buf.m.any():
        # exact rule: c = a where x < 0 else b; c = 0 gives 0 whatever |x| is
        # (a NaN logit stays NaN through the log term, which is never guarded)
        a_full = np.multiply(zc, qc)
        c = np.where(xc < 0, a_full, 1.0 - zc)
        lin = np.where(c == 0, 0.0, c * np.abs(xc))
        np.add(lin, g, out=out)
    return out


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def _chunk_grad_hess(
    xc: Array, zc: Array, qc: Array | float, buf: _Buffers, gout: Array, hout: Array
) -> None:
    """Gradient and Hessian of one chunk.

    ``σ(±x) = 1/(1 + exp(∓x))`` is accurate for every x (an overflowing exp gives 0,
    the right answer below the subnormal range), so no selection is needed;
    ``σ(x)σ(-x) = e/(1+e)²`` with ``e = exp(-|x|)`` keeps the Hessian's relative error small.
    """
    y, a, b, t = buf.y, buf.a, buf.b, buf.t
    np.multiply(zc, qc, out=a)  # a = q·z
    np.subtract(1.0, zc, out=b)  # b = 1 - z
    np.abs(xc, out=y)
    np.negative(y, out=y)
    np.exp(y, out=y)  # e
    np.add(y, 1.0, out=t)
    np.multiply(t, t, out=t)
    np.divide(y, t, out=y)  # σ(x)σ(-x)
    np.add(a, b, out=t)
    np.multiply(t, y, out=hout)  # h = l·σ(x)σ(-x)
    np.negative(xc, out=y)
    np.exp(y, out=y)
    np.add(y, 1.0, out=y)
    np.divide(b, y, out=b)  # b·σ(x)
    np.exp(xc, out=y)
    np.add(y, 1.0, out=y)
    np.divide(a, y, out=a)  # a·σ(-x)
    np.subtract(b, a, out=gout)


def _broadcast(v: Array | float | None, shape: tuple[int, ...]) -> Array | float | None:
    if v is None or isinstance(v, float):
        return v
    return np.broadcast_to(v, shape)


def _flatten_if_possible(
    x: Array, z: Array, q: Array | float, w: Array | None, m: Array | None
) -> tuple[Array, Array, Array | float, Array | None, Array | None]:
    """1-D views when every operand is full-size and C-contiguous or a scalar: one
    long axis chunks better than a few huge rows."""
    ops = [v for v in (q, w, m) if v is not None and not isinstance(v, float)]
    if x.ndim > 1 and all(o.ndim == 0 or o.shape == x.shape for o in ops) and all(
        a.flags.c_contiguous for a in (x, z, *[o for o in ops if o.ndim])
    ):
        def flat(o: Any) -> Any:
            return o if o is None or isinstance(o, float) or o.ndim == 0 else o.reshape(-1)

        return x.reshape(-1), z.reshape(-1), flat(q), flat(w), flat(m)
    return x, z, q, w, m


def _as_1d(v: Any) -> Any:
    """0-d operands as 1-element views (the chunk loop indexes rows)."""
    return v if v is None or isinstance(v, float) else v.reshape(1)


def _map_chunks(kernel: Any, z: Array, x: Array, q: Array | float, n_out: int) -> list[Array]:
    """Run a chunk kernel over ``x`` (same shape ``z``, broadcastable ``q``) into
    ``n_out`` new arrays of the logits' shape and dtype."""
    z, x = np.asarray(z), np.asarray(x)  # NumPy's 0-d arithmetic gives scalars
    if x.ndim == 0:  # the chunk loop indexes rows: one row of one element
        return [o.reshape(()) for o in
                _map_chunks(kernel, _as_1d(z), _as_1d(x), _as_1d(q), n_out)]
    outs = [np.empty(x.shape, x.dtype) for _ in range(n_out)]
    if x.size == 0:
        return outs
    xv, zv, qv, _, _ = _flatten_if_possible(x, z, q, None, None)
    views = [o.reshape(-1) for o in outs] if xv.ndim == 1 and x.ndim != 1 else outs
    qb = _broadcast(qv, xv.shape)
    rows, chunks = _row_chunks(xv.shape)
    buf = _Buffers((rows, *xv.shape[1:]), x.dtype)
    for i0, i1 in chunks:
        qc = qb if isinstance(qb, float) else qb[i0:i1]  # type: ignore[index]
        kernel(xv[i0:i1], zv[i0:i1], qc, buf.view(i1 - i0), *(v[i0:i1] for v in views))
    return outs


def weighted_loss(z: Array, x: Array, q: Array | float, *, nonneg: bool = False) -> Array:
    """Elementwise loss of NumPy arrays ``z``, ``x`` (same shape and float dtype).
    ``nonneg``: ``q·z`` and ``1 - z`` are known to be ≥ 0 (a shorter formula)."""
    return _map_chunks(_chunk_loss if nonneg else _chunk_loss_signed, z, x, q, 1)[0]


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def reduced_loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    nonneg: bool = False,
) -> Array:
    """``sum``/``mean``/``weighted_mean`` over all elements, never materializing the loss.

    Chunk sums are accumulated in float64 (pairwise within a chunk, then summed across
    chunks), so a float32 mean over 1e8 elements is within 1e-6 of a float64 reference.
    Masked elements must already be zeroed in ``z`` and ``x`` (their loss is finite).
    """
    z, x = np.asarray(z), np.asarray(x)
    if x.ndim == 0:
        return reduced_loss(_as_1d(z), _as_1d(x), _as_1d(q), weight=_as_1d(weight),
                            mask=_as_1d(mask), reduction=reduction, nonneg=nonneg)
    kernel = _chunk_loss if nonneg else _chunk_loss_signed
    dtype = x.dtype
    total = 0.0
    denom = 0.0
    if x.size:
        xv, zv, qv, wv, mv = _flatten_if_possible(x, z, q, weight, mask)
        qb = _broadcast(qv, xv.shape)
        wb = _broadcast(wv, xv.shape)
        mb = _broadcast(mv, xv.shape)
        rows, chunks = _row_chunks(xv.shape)
        buf = _Buffers((rows, *xv.shape[1:]), dtype)
        loss_buf = np.empty((rows, *xv.shape[1:]), dtype)
        for i0, i1 in chunks:
            qc = qb if isinstance(qb, float) else qb[i0:i1]  # type: ignore[index]
            lc = kernel(xv[i0:i1], zv[i0:i1], qc, buf.view(i1 - i0), loss_buf[: i1 - i0])
            wc = None if wb is None else wb[i0:i1]  # type: ignore[index]
            mc = None if mb is None else mb[i0:i1]  # type: ignore[index]
            if wc is not None:
                np.multiply(lc, wc, out=lc)
            if mc is not None:
                np.multiply(lc, mc, out=lc)
            part = float(np.add.reduce(lc, axis=None, dtype=np.float64))
            if wc is not None and math.isnan(part):
                # rare: 0·inf (a zero weight on an infinite loss) or a NaN input.
                # Redo this chunk with the exact rule: a zero weight drops the element.
                lc = kernel(xv[i0:i1], zv[i0:i1], qc, buf.view(i1 - i0), lc)
                lc = np.where(wc == 0, 0.0, lc * wc)
                if mc is not None:
                    lc = lc * mc
                part = float(np.add.reduce(lc, axis=None, dtype=np.float64))
            total += part
            if reduction == "mean" and mc is not None:
                denom += float(np.count_nonzero(mc))
            elif reduction == "weighted_mean":
                if wc is None:
                    denom += float(lc.size if mc is None else np.count_nonzero(mc))
                else:
                    wfull = np.broadcast_to(wc, lc.shape)
                    if mc is not None:
                        wfull = wfull * mc
                    denom += float(np.add.reduce(wfull, axis=None, dtype=np.float64))
        if reduction == "mean" and mb is None:
            denom = float(x.size)
    if reduction == "sum":
        return np.asarray(total, dtype)
    if denom == 0.0:
        return np.asarray(math.nan, dtype)
    return np.asarray(total / denom, dtype)


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array]:
    """Chunked gradient and Hessian (the generic formulas, in place on buffers; any
    sign of the coefficients)."""
    g, h = _map_chunks(_chunk_grad_hess, z, x, q, 2)
    return g, h
