"""NumPy fast path: the generic formula, evaluated in cache-sized chunks on every core.

Why it exists: the generic code makes about twenty passes over full-size temporaries,
so a 1e7-element call moves gigabytes through memory and allocates hundreds of MB.
Here each chunk of rows (about ``CHUNK`` elements) goes through in-place ufuncs on
per-thread buffers that stay in the L2 cache, and reductions accumulate chunk sums
in float64 without ever materializing the elementwise loss. Every option is applied
per chunk too (label casts, masks, label smoothing, weights, the focal factor, any
``axis``), so memory beyond the inputs and the result stays a few chunks per thread.
Chunks run on a pool of threads (ufuncs release the GIL); the chunking does not depend
on the number of threads, and chunk sums are added in chunk order, so results are
identical for every thread count. Measured in BENCHMARKS.md; tested against the
generic path in tests/test_native.py and tests/test_backend_numpy.py.

float32 and float64 go to the C kernels of :mod:`wce_xp._fused` (one pass; float32
within 1 ulp of mpmath, computed in double precision; float64 within the library's
4 ulp) where they were built: a plain call on C-contiguous operands (labels of the
logits' dtype or bool, a number or a pos_weight per element or per class) in one C
call whose own threads (or PyTorch's OpenMP threads, for tensors) take its tasks;
anything else chunk by chunk, each chunk's operands copied to C-contiguous ones. The
ufunc kernels below are what they stand in for, and run everything else (labels or
weights of another dtype; installs without a C compiler). tests/test_backend_numpy.py runs
both against mpmath.

The arithmetic is the generic one: ``L = c·|x| + l·log1p(exp(-|x|))`` with
``c = q·z`` for ``x < 0`` and ``1 - z`` otherwise, ``l = q·z + 1 - z``; ``c·|x|`` is
formed only where ``c != 0`` (0·inf is the limit 0). The generic code's selection of
``|x|`` as ``x`` or ``-x`` exists only for autograd; the values are identical. The
focal factor, masks and weights use the generic code itself, on chunk-sized arrays.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import _args
from .._compat import numpy_namespace
from .._generic import _core
from .._registry import Backend, Check

Array = Any

_fused_module: Any = None
try:  # the kernels in C (optional: absent where no compiler built them)
    from .. import _fused as _c_module

    _fused_module = _c_module
except ImportError:  # pragma: no cover - a build without a C compiler
    pass

# The C kernels in use, or None (c_kernels(False): the ufunc kernels they stand for).
_fused: Any = _fused_module
_BOOL = np.dtype(np.bool_)


@contextlib.contextmanager
def c_kernels(on: bool) -> Iterator[None]:
    """Within this block the C kernels run where they were built (``on``), or the ufunc
    kernels run everything, as on an install without a C compiler (for tests)."""
    global _fused
    old = _fused
    _fused = _fused_module if on else None
    try:
        yield
    finally:
        _fused = old


_C_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # native byte order


def c_ready(a: Array) -> bool:
    """Whether the C kernels may read an array in place: C-contiguous and aligned to its
    element size (a misaligned load is undefined behaviour in C; NumPy makes such arrays
    from buffers at any offset)."""
    f = a.flags
    return bool(f.c_contiguous and f.aligned)


def _c_copy(a: Array) -> Array:
    """The array itself where the C kernels may read it in place, else an aligned
    C-contiguous copy."""
    return a if c_ready(a) else np.require(a, requirements=("C", "A"))


def _c_args(xc: Array, zc: Array, qc: Any) -> tuple[Array, Array, Any] | None:
    """``(x, z, q)`` of one chunk for the C kernels, or None where they cannot take it.

    They take float32 or float64 logits with labels of the same dtype or bool, and a
    number or a ``pos_weight`` of the logits' dtype (the ufunc kernels take the rest:
    labels or weights of another dtype). Strided or broadcast operands are copied to
    one C-contiguous array each (one pass: the kernels then make one more, against the
    ufunc kernels' twelve), so every call gets the same arithmetic however its
    operands were laid out or given.
    """
    dt = xc.dtype
    if _fused is None or dt not in _C_DTYPES or (zc.dtype != dt and zc.dtype != _BOOL):
        return None
    if type(qc) is not float:
        if qc.dtype != dt:
            return None
        qc = _c_copy(np.broadcast_to(qc, xc.shape))
    return _c_copy(xc), _c_copy(np.broadcast_to(zc, xc.shape)), qc


def _c_loss(xc: Array, zc: Array, qc: Any, out: Array) -> bool:
    """The loss of a chunk into ``out`` by the C kernels, if they take it."""
    c = _c_args(xc, zc, qc)
    if c is None or not c_ready(out):
        return False
    _fused.loss(*c, out)
    return True


def _c_grad(xc: Array, zc: Array, qc: Any, scale: float, out: Array) -> bool:
    """The gradient of a chunk times ``scale`` into ``out`` by the C kernels, if they
    take it."""
    c = _c_args(xc, zc, qc)
    if c is None or not c_ready(out):
        return False
    _fused.grad(*c, scale, out)
    return True


def _c_whole(x: Array, z: Array, q: Any) -> tuple[Array, Array, Any] | None:
    """``(x, z, q)`` for one C call over the whole arrays (its threads take the
    tasks), without a copy, or None where the operands need one (the chunked route
    then copies chunk by chunk). It takes C-contiguous float32 or float64 logits,
    labels of their shape and dtype or bool, and a number or a C-contiguous
    ``pos_weight`` of their dtype, of their shape or one per class of the last axis
    (the kernels read it with that period)."""
    dt = x.dtype
    if (_fused is None or dt not in _C_DTYPES or not c_ready(x)
            or (x.size > CHUNK and not _fused.POOL)  # no C threads: the chunks' Python ones
            or z.shape != x.shape or not c_ready(z)
            or (z.dtype != dt and z.dtype != _BOOL)):
        return None
    if type(q) is not float:
        if q.dtype != dt or not c_ready(q):
            return None
        if q.ndim == 0:  # one value: as a number (the same arithmetic, bitwise)
            return x, z, float(q)
        if q.shape != x.shape and (
                q.ndim > x.ndim or q.shape[-1] != x.shape[-1]
                or any(d != 1 for d in q.shape[:-1])):
            return None
    return x, z, q


def sum_and_grad(z: Array, x: Array, q: Any, scale: float,
                 threads: int | None = None) -> tuple[Any, Array] | None:
    """The float64 sum of the loss and the gradient times ``scale``, in one C pass
    (for a reduction whose backward pass is known to follow), or None where the C
    kernels cannot take these operands as they are."""
    c = _c_whole(x, z, q)
    if c is None:
        return None
    g = np.empty(x.shape, x.dtype)
    return np.float64(_fused.loss_sum_grad(*c, scale, g, _nthreads(threads, x.size))), g


def loss_and_grad(z: Array, x: Array, q: Any,
                  threads: int | None = None) -> tuple[Array, Array] | None:
    """The elementwise loss and its gradient, in one C pass (for an elementwise call
    whose backward pass is known to follow), or None where the C kernels cannot take
    these operands as they are."""
    c = _c_whole(x, z, q)
    if c is None:
        return None
    out, g = np.empty(x.shape, x.dtype), np.empty(x.shape, x.dtype)
    _fused.loss_grad(*c, 1.0, out, g, _nthreads(threads, x.size))
    return out, g


def _number(q: Any) -> Any:
    """A pos_weight of one value as a Python float (as the fast lane takes it, and
    the C kernels can); anything else as it is."""
    return float(q) if not isinstance(q, float) and np.ndim(q) == 0 else q


def _c_chunks(dtype: Any, q: Any) -> bool:
    """Whether the chunks will go to the C kernels (float32 or float64 logits, and a
    number or a ``pos_weight`` of their dtype; the labels are not known yet: a guess)."""
    return _fused is not None and dtype in _C_DTYPES and (
        isinstance(q, float) or getattr(q, "dtype", None) == dtype)


# Elements per chunk: the buffers of one thread stay well inside a 1-2 MiB L2 cache.
# (The C kernels add a chunk's sum from its tasks of TASK elements in the same
# order, so a contiguous array summed by one C call and chunk by chunk agree bitwise.)
CHUNK = 1 << 16
# Elements per task of one C call's threads; the kernels give each thread two tasks at
# least, so calls of up to SERIAL_MAX elements run on the calling thread alone.
TASK = 1 << 11
SERIAL_MAX = 3 * TASK

# 0·inf (an infinite logit with a zero coefficient) and exp overflow are intended and
# resolved in the kernels; NumPy would warn about them.
_QUIET = {"invalid": "ignore", "over": "ignore"}

# --- threads ------------------------------------------------------------------------

_ENV = "WCE_XP_NUM_THREADS"
_threads: int | None = None  # None: from the environment variable, else every core
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


_default_cache: tuple[str | None, int] = (None, 0)  # (the variable's text, its value)


def _default_threads() -> int:
    """``WCE_XP_NUM_THREADS`` (a positive integer, or ``all``), else every core this
    process may run on. Read on every call (a per-call cost of a dict lookup: the
    value is cached by the variable's text)."""
    global _default_cache
    text = os.environ.get(_ENV, "")
    if text == _default_cache[0]:
        return _default_cache[1]
    n = _parse_threads(text)
    _default_cache = (text, n)
    return n


def _parse_threads(text: str) -> int:
    env = text.strip().lower()
    if not env or env == "all":
        return cores()
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{_ENV}: expected a positive integer or 'all', got {env!r}")
    return n


def _check_environment() -> None:
    """An invalid ``WCE_XP_NUM_THREADS`` is refused on first use of the engine, for
    every call alike (not only for the calls large enough to ask for threads)."""
    _default_threads()


@functools.cache
def max_threads() -> int:
    """The most threads the engine runs: four per core this process may run on when
    the engine is first used (beyond the cores, threads only take turns)."""
    return 4 * cores()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads of the NumPy engine.

    NumPy arrays are computed on this many threads: the C kernels cut a call into
    tasks of 2048 elements that its threads take in turn, and the ufunc kernels (other
    dtypes, options, installs without a C compiler) run chunks of 65,536 elements
    on a pool of Python threads (ufuncs release the GIL). PyTorch CPU tensors use at
    most ``torch.get_num_threads()`` of them, and the C kernels then run on PyTorch's
    own OpenMP threads. Results do not depend on it: the tasks and chunks and the order
    in which their sums are added are fixed.

    Returns
    -------
    int
        The value of :func:`set_num_threads` if set, else the environment variable
        ``WCE_XP_NUM_THREADS`` (a positive integer, or ``all``), else every core this
        process may run on; at most four times those cores (more threads than that
        would only take turns on them).

    Notes
    -----
    A C call gives each thread two tasks at least (a call of up to three tasks, 6,144
    elements, runs on the calling thread); its threads are started on first use and
    spin briefly for the next call before they sleep. The ufunc kernels run a call
    under four chunks on the calling thread, since their GIL hand-overs cost more than
    a second thread gains there. ``benchmarks/training.py`` prints the table of
    throughput against threads for your machine (BENCHMARKS.md has the 2-core one).

    Examples
    --------
    >>> import wce_xp
    >>> wce_xp.get_num_threads() >= 1
    True
    """
    n = _threads if _threads is not None else _default_threads()
    return min(n, max_threads())


def set_num_threads(n: int | None) -> None:
    """Set the number of threads of the NumPy engine.

    Parameters
    ----------
    n : int or None
        A positive number of threads; ``None`` restores the default
        (``WCE_XP_NUM_THREADS``, else every core). Values above four times the cores
        this process may run on are used as that cap (:func:`get_num_threads`).

    Raises
    ------
    ValueError
        ``n`` is not a positive integer or None.

    Examples
    --------
    >>> import wce_xp
    >>> wce_xp.set_num_threads(2)
    >>> wce_xp.get_num_threads()
    2
    >>> wce_xp.set_num_threads(None)
    """
    global _threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    _threads = n


def _reset_after_fork() -> None:  # a pool's threads do not survive fork()
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

_check_environment()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            # The old pool is dropped, not shut down: calls running on other threads
            # may still submit to it; its threads end once nothing refers to it.
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="wce_xp")
            _pool_size = workers
        return _pool


def _run_group(task: Callable[[int, int], Any], group: Sequence[tuple[int, int]]) -> list[Any]:
    with np.errstate(**_QUIET):  # type: ignore[arg-type]  # error state is per thread
        return [task(i0, i1) for i0, i1 in group]


def _for_chunks(task: Callable[[int, int], Any], chunks: list[tuple[int, int]],
                threads: int) -> list[Any]:
    """``task(i0, i1)`` for every chunk, on up to ``threads`` threads; results in chunk
    order. Chunks are cut into contiguous groups, a few per thread, and every thread
    (the calling one included) takes the next group left until none is: a thread
    that is slowed (another process, a page fault) takes fewer."""
    if threads <= 1 or len(chunks) < 2:
        return _run_group(task, chunks)
    k = min(len(chunks), 4 * threads)
    step = -(-len(chunks) // k)
    groups = [chunks[i:i + step] for i in range(0, len(chunks), step)]
    results: list[list[Any] | None] = [None] * len(groups)
    taken = itertools.count()  # next() on a count is atomic: one group per take

    def worker() -> None:
        for i in iter(taken.__next__, None):
            if i >= len(groups):
                return
            results[i] = _run_group(task, groups[i])

    pool = _executor(threads - 1)
    futures = [pool.submit(worker) for _ in range(min(threads, len(groups)) - 1)]
    worker()
    for f in futures:
        if not f.cancel():  # a helper still queued behind other calls' work is not waited for
            f.result()  # re-raises a helper's error
    return [r for group in results for r in group]  # type: ignore[union-attr]


# --- per-thread buffers -------------------------------------------------------------

_local = threading.local()
_NAMES = ("y", "g", "a", "b", "t", "o")


class _Buffers:
    """Scratch arrays of one chunk's shape: views of the thread's flat buffers. Each
    thread keeps the views of the last few shapes (a training loop's are always the same)."""

    __slots__ = _NAMES
    y: Array
    g: Array
    a: Array
    b: Array
    t: Array
    o: Array

    def __new__(cls, shape: tuple[int, ...], dtype: Any) -> _Buffers:
        d = _local.__dict__
        views: dict[Any, _Buffers] | None = d.get("views")
        if views is None:
            views = d["views"] = {}
            d["store"] = {}
        key = (shape, dtype)
        self = views.get(key)
        if self is not None:
            return self
        n = math.prod(shape)
        store: dict[Any, list[Array]] = d["store"]
        flat = store.get(dtype)
        if flat is None or flat[0].size < n:
            flat = [np.empty(max(n, CHUNK), dtype) for _ in _NAMES]
            store[dtype] = flat
            views.clear()  # views of the old buffers must not outlive them
        self = object.__new__(cls)
        for name, f in zip(_NAMES, flat, strict=True):
            setattr(self, name, f[:n].reshape(shape))
        if len(views) >= 16:
            views.clear()
        views[key] = self
        return self


# --- kernels (called inside _run_group's error state) -------------------------------

def _log_term(xc: Array, zc: Array, qc: Array | float, buf: _Buffers) -> tuple[Array, Array]:
    """``buf.g = l·log1p(exp(-|x|))``; returns ``(-a, b) = (-q·z, 1 - z)``, the negated
    first (so that ``-a·x`` costs one pass). With the scalar ``q = 1``, ``l = 1`` needs
    no pass."""
    y, g, a, b = buf.y, buf.g, buf.a, buf.b
    np.abs(xc, out=y)  # (copysign(x, -1) is one pass but not vectorized)
    np.negative(y, out=y)
    np.exp(y, out=y)
    np.log1p(y, out=g)  # log1p(exp(-|x|)) in [0, log 2]
    np.subtract(1.0, zc, out=b)  # b = 1 - z
    if isinstance(qc, float):
        np.multiply(zc, -qc, out=a)  # -a = -q·z
        if qc == 1.0:
            return a, b
    else:
        np.multiply(zc, qc, out=a)
        np.negative(a, out=a)
    np.subtract(b, a, out=buf.t)  # l = b + a
    np.multiply(g, buf.t, out=g)
    return a, b


def _chunk_loss(
    xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array, check: bool = True
) -> Array:
    """The loss of one chunk into ``out``: the C kernel where it takes the operands, else
    the generic rule in in-place ufuncs, for coefficients of any sign (labels outside
    [0, 1] and negative weights give PyTorch's values).

    ``c·|x| = b·max(x, 0) - a·min(x, 0)``: one of the two terms is 0 for each x (masked
    ufuncs and ``np.where`` cost many passes more than plain ufuncs, so the selection
    is arithmetic). Only ``0·inf`` (a zero coefficient at an infinite logit) gives NaN
    here; such a chunk is redone by the exact rule. ``check=False``: the caller looks
    for that NaN itself (in a sum it computes anyway) and calls :func:`_exact_signed`
    where it finds one.
    """
    if _c_loss(xc, zc, qc, out):  # the exact rule (no NaN check needed)
        return out
    na, b = _log_term(xc, zc, qc, buf)
    y, t = buf.y, buf.t
    np.maximum(xc, 0.0, out=y)
    np.multiply(b, y, out=t)  # b·max(x, 0)
    np.minimum(xc, 0.0, out=y)
    np.multiply(na, y, out=y)  # a·|min(x, 0)|
    np.add(t, y, out=t)
    np.add(t, buf.g, out=out)
    if check and np.isnan(np.add.reduce(out, axis=None)):
        _exact_signed(xc, zc, qc, buf, out)
    return out


def _exact_signed(xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array) -> Array:
    """The signed loss by the exact rule: ``c = a`` where ``x < 0`` else ``b``, and
    ``c = 0`` gives 0 whatever ``|x|`` is (a NaN logit stays NaN through the log term,
    which is never guarded). Called right after :func:`_chunk_loss` on the same
    chunk, whose log term is still in ``buf.g``."""
    a_full = np.multiply(zc, qc)
    c = np.where(xc < 0, a_full, 1.0 - zc)
    lin = np.where(c == 0, 0.0, c * np.abs(xc))
    np.add(lin, buf.g, out=out)
    return out


def _chunk_grad(xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array) -> Array:
    """The gradient ``(1 - z)·σ(x) - q·z·σ(-x)`` of one chunk (no Hessian).

    ``σ(±x) = 1/(1 + exp(∓x))`` is accurate for every x (an overflowing exp gives 0,
    the right answer below the subnormal range), so no selection is needed.
    """
    if _c_grad(xc, zc, qc, 1.0, out):
        return out
    y, b = buf.y, buf.b
    np.subtract(1.0, zc, out=b)
    np.negative(xc, out=y)
    np.exp(y, out=y)
    np.add(y, 1.0, out=y)
    np.divide(b, y, out=b)  # b·σ(x)
    if isinstance(qc, float) and qc == 1.0:
        a = zc
    else:
        a = buf.a
        np.multiply(zc, qc, out=a)
    np.exp(xc, out=y)
    np.add(y, 1.0, out=y)
    np.divide(a, y, out=y)  # a·σ(-x)
    np.subtract(b, y, out=out)
    return out


def _chunk_grad_hess(
    xc: Array, zc: Array, qc: Array | float, buf: _Buffers, gout: Array, hout: Array
) -> None:
    """Gradient and Hessian of one chunk; ``σ(x)σ(-x) = e/(1+e)²`` with
    ``e = exp(-|x|)`` keeps the Hessian's relative error small."""
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


# --- layout -------------------------------------------------------------------------

def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, float)


def _row_chunks(shape: tuple[int, ...], chunk: int) -> list[tuple[int, int]]:
    """Chunks of whole rows along axis 0, each about ``chunk`` elements."""
    n0 = shape[0]
    row = math.prod(shape[1:])
    rows = max(1, min(n0, chunk // max(row, 1)))
    return [(i, min(i + rows, n0)) for i in range(0, n0, rows)]


class _Layout:
    """The operands as arrays whose rows (axis 0) are chunked together: 0-d inputs as
    one-element 1-D arrays; full-size C-contiguous inputs flattened to 1-D when every
    axis is reduced (or none), since one long axis chunks better than a few huge rows;
    other operands broadcast (views, no copies) to the logits' shape."""

    def __init__(self, x: Array, operands: dict[str, Any], axes: tuple[int, ...] | None,
                 chunk: int = CHUNK) -> None:
        ops = {k: v for k, v in operands.items() if not _is_scalar(v)}
        if x.ndim == 0:
            x = x.reshape(1)
            ops = {k: v.reshape(1) for k, v in ops.items()}
            axes = None if axes is None else (0,)
        self.axes = axes
        whole = axes is None or axes == tuple(range(x.ndim))
        if (x.ndim > 1 and whole and x.flags.c_contiguous
                and all(v.ndim == 0 or (v.shape == x.shape and v.flags.c_contiguous)
                        for v in ops.values())):
            x = x.reshape(-1)
            ops = {k: v if v.ndim == 0 else v.reshape(-1) for k, v in ops.items()}
            self.axes = None if axes is None else (0,)
        self.x = x
        self.ops = {k: v if v.shape == x.shape else np.broadcast_to(v, x.shape)
                    for k, v in ops.items()}
        self.scalars = {k: v for k, v in operands.items() if _is_scalar(v)}
        self.chunks = _row_chunks(x.shape, chunk)

    def get(self, name: str, i0: int, i1: int) -> Any:
        v = self.ops.get(name)
        return self.scalars.get(name) if v is None else v[i0:i1]


# Below four chunks a second thread does not pay for the GIL hand-overs of the ufunc
# kernels (BENCHMARKS.md, "threads"); a C kernel takes a chunk in one call, and two
# chunks pay.
PARALLEL_MIN = 4 * CHUNK


def _nthreads(threads: int | None, size: int) -> int:
    """Threads for one C call over ``size`` elements (up to SERIAL_MAX: the caller's
    alone, without asking)."""
    if size <= SERIAL_MAX:
        return 1
    return get_num_threads() if threads is None else threads


def _threads_for(threads: int | None, size: int, one_call: bool = False) -> int:
    """Threads for ``size`` elements; ``one_call``: each chunk is one C call."""
    if size <= CHUNK or (size < PARALLEL_MIN and not one_call):
        return 1
    return get_num_threads() if threads is None else threads


# --- the elementwise kernels over whole arrays --------------------------------------

def _map(kernel: Any, z: Array, x: Array, q: Array | float, n_out: int,
         threads: int | None, extra: Array | None = None) -> list[Array]:
    """``kernel`` over chunks into ``n_out`` new arrays of the logits' shape and dtype;
    ``extra`` (broadcasting to the logits) multiplies the first output."""
    z, x = np.asarray(z), np.asarray(x)  # NumPy's 0-d arithmetic gives scalars
    q = _number(q)
    outs = [np.empty(x.shape, x.dtype) for _ in range(n_out)]
    if x.size == 0:
        return outs
    if x.size <= CHUNK and x.ndim and z.shape == x.shape:  # one chunk: ufuncs broadcast
        _one_map(kernel, z, x, q, outs, extra)
        return outs
    lay = _Layout(x, {"z": z, "q": q, "e": extra}, None)
    views = [o.reshape(lay.x.shape) for o in outs]

    def task(i0: int, i1: int) -> None:
        xc = lay.x[i0:i1]
        buf = _Buffers(xc.shape, x.dtype)
        kernel(xc, lay.get("z", i0, i1), lay.get("q", i0, i1), buf,
               *(v[i0:i1] for v in views))
        if extra is not None:
            np.multiply(views[0][i0:i1], lay.get("e", i0, i1), out=views[0][i0:i1])

    _for_chunks(task, lay.chunks, _threads_for(threads, x.size, _c_chunks(x.dtype, q)))
    return outs


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def _one_map(kernel: Any, z: Array, x: Array, q: Array | float, outs: list[Array],
             extra: Array | None) -> None:
    kernel(x, z, q, _Buffers(x.shape, x.dtype), *outs)
    if extra is not None:
        np.multiply(outs[0], extra, out=outs[0])


def weighted_loss(z: Array, x: Array, q: Array | float, *,
                  threads: int | None = None) -> Array:
    """Elementwise loss of NumPy arrays ``z``, ``x`` (same shape and float dtype)."""
    z, x, q = np.asarray(z), np.asarray(x), _number(q)
    c = _c_whole(x, z, q)
    if c is not None:  # one C call, on its threads (the exact rule for any sign)
        out = np.empty(x.shape, x.dtype)
        _fused.loss(*c, out, _nthreads(threads, x.size))
        return out
    return _map(_chunk_loss, z, x, q, 1, threads)[0]


def grad(z: Array, x: Array, q: Array | float, *, scale: Array | float | None = None,
         threads: int | None = None) -> Array:
    """The gradient in ``x``, times ``scale`` (a number, or an array broadcasting to
    ``x``) if given."""
    z, x, q = np.asarray(z), np.asarray(x), _number(q)
    if scale is None or isinstance(scale, float):  # a number: in the kernel's pass
        s = 1.0 if scale is None else scale
        c = _c_whole(x, z, q)
        if c is not None:
            out = np.empty(x.shape, x.dtype)
            _fused.grad(*c, s, out, _nthreads(threads, x.size))
            return out
        return _map(_scaled_grad(s), z, x, q, 1, threads)[0]
    return _map(_chunk_grad, z, x, q, 1, threads, extra=scale)[0]


def _scaled_grad(scale: float) -> Callable[..., Array]:
    def kernel(xc: Array, zc: Array, qc: Array | float, buf: _Buffers, out: Array) -> Array:
        if _c_grad(xc, zc, qc, scale, out):
            return out
        _chunk_grad(xc, zc, qc, buf, out)
        return np.multiply(out, scale, out=out)

    return kernel


def grad_hess(z: Array, x: Array, q: Array | float, *,
              threads: int | None = None) -> tuple[Array, Array]:
    """Chunked gradient and Hessian (the generic formulas, in place on buffers; any
    sign of the coefficients)."""
    g, h = _map(_chunk_grad_hess, z, x, q, 2, threads)
    return g, h


@np.errstate(**_QUIET)  # type: ignore[arg-type]
def plain(z: Array, x: Array, q: Any, reduction: str, threads: int | None = None) -> Any:
    """The plain loss (no options): the elementwise loss, or its float64 sum or mean
    over every element, by one C call at any size (on its threads), else by the ufunc
    kernel on one chunk; None where neither takes the operands as they are."""
    c = _c_whole(x, z, q)
    if c is not None:  # one C call: the loss, or its float64 sum
        n = _nthreads(threads, x.size)
        if reduction == "none":
            out = np.empty(x.shape, x.dtype)
            _fused.loss(*c, out, n)
            return out
        total = np.float64(_fused.loss_sum(*c, n))  # a NumPy scalar, as np.add.reduce
        return total if reduction == "sum" else total / x.size
    if (type(q) is not float or x.size > CHUNK or z.shape != x.shape
            or (z.dtype != x.dtype and z.dtype != _BOOL)):
        return None
    buf = _Buffers(x.shape, x.dtype)  # ufuncs take any shape: no reshaping
    if reduction == "none":
        return _chunk_loss(x, z, q, buf, np.empty(x.shape, x.dtype))
    out = _chunk_loss(x, z, q, buf, buf.o, check=False)  # the sum below is the NaN check
    total = np.add.reduce(out, axis=None, dtype=np.float64)
    if total != total:
        _exact_signed(x, z, q, buf, out)
        total = np.add.reduce(out, axis=None, dtype=np.float64)
    return total if reduction == "sum" else total / x.size


# --- the whole loss family: options, focal factor, reductions ----------------------

def loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None = None,
    mask: Array | None = None,
    smoothing: float = 0.0,
    focal: tuple[float, float | None] | None = None,
    reduction: str = "none",
    axes: tuple[int, ...] = (),
    threads: int | None = None,
    with_denominator: bool = False,
) -> Any:
    """The loss with every option, chunk by chunk, in the logits' (float) dtype.

    ``z`` may be of any real dtype (bool and integer labels are cast per chunk) and
    masked elements may hold anything (they are zeroed per chunk, before any
    arithmetic); ``q``, ``weight``, ``mask`` broadcast to ``x``. Reductions add float64
    chunk sums in chunk order; ``axes`` are the reduced axes (every axis reduced:
    ``tuple(range(x.ndim))``). The result of a reduction is float64; the caller casts.
    ``with_denominator``: also return what a mean divided by (None for a sum).
    """
    x = np.asarray(x)
    dtype = x.dtype
    red = reduction != "none"
    q = _number(q)
    if (weight is None and mask is None and not smoothing and focal is None and x.size
            and (not red or axes == tuple(range(x.ndim)))):
        value = plain(z, x, q, reduction, threads)  # the short way
        if value is not None:  # (without weights, weighted_mean is the mean)
            denom = float(x.size) if reduction in ("mean", "weighted_mean") else None
            return (value, denom) if with_denominator else value
    # the focal factor is the generic code on chunk-sized temporaries: half-size chunks
    # keep its memory per thread where it was (tests/test_backend_numpy.py bounds it)
    bare = focal is None and mask is None and weight is None
    lay = _Layout(x, {"z": z, "q": q, "w": weight, "m": mask}, axes if red else None,
                  CHUNK if focal is None else CHUNK // 2)
    out = None if red else np.empty(x.shape, dtype)
    out_view = None if out is None else out.reshape(lay.x.shape)
    raxes = lay.axes or ()
    along0 = 0 in raxes  # sums over the chunked axis: partial sums to add up
    # the denominators that the chunks must count: masked means, weighted means
    want_denom = reduction == "weighted_mean" or (reduction == "mean" and mask is not None)
    # not along the chunked axis: each chunk finishes its own rows of the result, written
    # in the logits' dtype (nothing of the result's size in float64)
    kept_shape = tuple(d for i, d in enumerate(lay.x.shape) if i not in raxes)
    rows_out = np.empty(kept_shape, dtype) if red and not along0 else None
    n_reduced = float(math.prod(lay.x.shape[i] for i in raxes)) if red else 1.0

    def task(i0: int, i1: int) -> Any:
        xc = lay.x[i0:i1]
        zc = lay.get("z", i0, i1)
        qc = lay.get("q", i0, i1)
        mc = lay.get("m", i0, i1)
        wc = lay.get("w", i0, i1)
        if zc.dtype != dtype:
            zc = zc.astype(dtype)
        if mc is not None:  # masked entries may be NaN/inf: replaced before arithmetic
            zc = np.where(mc, zc, 0.0)
            xc = np.where(mc, xc, 0.0)
        if smoothing:
            zc = zc * (1.0 - smoothing) + 0.5 * smoothing
        c = _c_args(xc, zc, qc) if red and bare and xc.ndim == 1 and raxes == (0,) \
            else None
        if c is not None:  # the sum in C, the loss never written
            # (no weight and no mask: a weighted mean's denominator is the count)
            return np.float64(_fused.loss_sum(*c)), (float(xc.size) if want_denom else None)
        buf = _Buffers(xc.shape, dtype)
        lc = _chunk_loss(xc, zc, qc, buf, buf.o if out_view is None else out_view[i0:i1])
        if focal is not None or mc is not None or wc is not None:
            lc = _options(lc, zc, xc, qc, wc, mc, focal)
            if out_view is not None:
                out_view[i0:i1] = lc
        if not red:
            return None
        total = np.add.reduce(lc, axis=raxes, dtype=np.float64)
        denom = None
        if want_denom:
            if reduction == "mean":
                denom = np.add.reduce(np.broadcast_to(mc, xc.shape), axis=raxes,
                                      dtype=np.float64)
            else:
                wfull = np.ones(xc.shape, dtype) if wc is None else np.broadcast_to(
                    wc, xc.shape)
                if mc is not None:
                    wfull = np.where(mc, wfull, 0.0)
                denom = np.add.reduce(wfull, axis=raxes, dtype=np.float64)
        if rows_out is not None:
            rows_out[i0:i1] = _divide(total, denom, reduction, n_reduced)
            return None
        return total, denom

    one_call = bare and _c_chunks(dtype, q)
    results = _for_chunks(task, lay.chunks, _threads_for(threads, lay.x.size, one_call)) \
        if lay.x.size else []
    if not red:
        assert out is not None
        return out
    if rows_out is not None:
        if not lay.x.size:  # no chunk ran: sums over nothing
            empty = np.zeros(kept_shape)
            rows_out[...] = _divide(empty, empty if want_denom else None, reduction,
                                    n_reduced)
        return (rows_out, None) if with_denominator else rows_out
    value, denom = _combine(results, kept_shape, n_reduced, reduction, want_denom)
    return (value, denom) if with_denominator else value


def _divide(total: Array, denom: Array | None, reduction: str, n: float) -> Array:
    """A reduction's value from its sum: as is, over ``n``, or over ``denom`` (NaN where
    that is 0: a reduction over nothing)."""
    if reduction == "sum":
        return total
    d = np.full(np.shape(total), n) if denom is None else np.asarray(denom)
    return np.asarray(_core.divide_or_nan(np.asarray(total), d, xp=numpy_namespace()))


def _options(lc: Array, zc: Array, xc: Array, qc: Any, wc: Array | None, mc: Array | None,
             focal: tuple[float, float | None] | None) -> Array:
    """The focal factor, the mask and the weights on one chunk: the generic code itself
    (``_core``), on chunk-sized arrays."""
    npx = numpy_namespace()
    if focal is not None:
        lc = _core.focal_loss(zc, xc, qc, focal[0], focal[1], xp=npx, ce=lc)
    if mc is not None:
        lc = np.where(mc, lc, 0.0)
    if wc is not None:  # a zero weight drops the element, even an infinite loss
        lc = wc * np.where(wc == 0, 0.0, lc)
        if mc is not None:
            lc = np.where(mc, lc, 0.0)
    return np.asarray(lc)


def _combine(results: list[Any], kept: tuple[int, ...], n: float, reduction: str,
             want_denom: bool) -> tuple[Array, Array | None]:
    """Chunk sums (and denominators) along the chunked axis into the reduction and its
    denominator, in float64, added in chunk order (``kept``: the result's shape; ``n``:
    the number of reduced elements per result)."""
    total = np.zeros(kept, np.float64)
    denom = np.zeros(kept, np.float64) if want_denom else None
    for t, d in results:  # in chunk order: the same sums for every thread count
        total += t
        if denom is not None:
            denom += d
    if reduction == "mean" and denom is None:
        denom = np.full(kept, n)
    return _divide(total, denom, reduction, n), (None if reduction == "sum" else denom)


def check_masked_labels(z: Array, mask: Array, threads: int | None = None) -> bool:
    """Labels in [0, 1] where ``mask`` is True (masked ones may be anything), in one
    chunked pass (no full-size temporary)."""
    z = np.asarray(z)
    if z.size == 0:
        return True
    lay = _Layout(z, {"m": mask}, None)

    def task(i0: int, i1: int) -> bool:
        zc = lay.x[i0:i1]
        mc = lay.get("m", i0, i1)
        zc = np.where(mc, zc, 0)
        return bool((zc.min() >= 0) & (zc.max() <= 1))

    return all(_for_chunks(task, lay.chunks, _threads_for(threads, z.size)))


# --- value checks -------------------------------------------------------------------

_C_CHECKED = (np.dtype(np.float32), np.dtype(np.float64), _BOOL)
# the largest finite double: "finite" as a closed upper bound, for the C kernels' check
FINITE_MAX = float(np.finfo(np.float64).max)


def in_range(a: Array, lo: float, hi: float) -> bool:
    """Whether every value of a NumPy array lies in ``[lo, hi]`` (``hi = inf``: finite;
    NaN fails), the rule of :func:`wce_xp._generic._core.bounds_hold`: one C pass for
    contiguous float32, float64 and bool arrays, where the C kernels are built; else a
    min and a max."""
    if not a.size:
        return True
    f = _fused
    if f is not None and a.dtype in _C_CHECKED and c_ready(a):
        return bool(f.within(a, lo, FINITE_MAX if hi == math.inf else hi))
    return bool(_core.bounds_hold(np.min(a), np.max(a), lo, hi))


def verdicts(checks: list[Check]) -> list[bool]:
    """The registry's ``in_range``: one pass per check (masked labels chunk by chunk)."""
    return [in_range(c.array, c.lo, c.hi) if c.mask is None
            else check_masked_labels(c.array, c.mask) for c in checks]


# --- the fast lane: the commonest call, before the front door -----------------------

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # native byte order only
# the reductions the engine computes (it declines any other: the generic code runs)
TAKES = ("none", "sum", "mean", "weighted_mean")


def _q_array(q: Array, x: Array, checked: bool) -> Array | float | None:
    """A NumPy ``pos_weight`` of the logits' dtype: one value (as a float) or one per
    class along the last axis; None for anything else or anything refused."""
    if q.dtype != x.dtype or not x.ndim:
        return None
    if q.ndim == 0:
        return _args.pos_weight_number(float(q), checked)
    if q.ndim != 1 or q.shape[0] != x.shape[-1] or not q.size:
        return None
    if checked and not in_range(q, 0.0, math.inf):
        return None
    return q


def fast_call(labels: Any, logits: Any, pos_weight: Any, validate: Any,
              reduction: str) -> Any:
    """A call without options on NumPy arrays of float32/float64 logits, labels of their
    dtype (or bool) and shape, and a number or a NumPy ``pos_weight`` of one value or
    one per class; None for anything else (and anything the checks refuse: the front
    door raises)."""
    x, z = logits, labels
    if (type(z) is not np.ndarray or reduction not in TAKES or x.dtype not in _FLOATS
            or (z.dtype != x.dtype and z.dtype != _BOOL) or z.shape != x.shape or not x.size):
        return None
    checked = _args.validate_mode(validate)
    if checked is None:
        return None
    q = _q_array(pos_weight, x, checked) if type(pos_weight) is np.ndarray else \
        _args.pos_weight_number(pos_weight, checked)
    if q is None or (checked and not in_range(z, 0.0, 1.0)):
        return None
    return plain_or_chunked(z, x, q, reduction, None)


def plain_or_chunked(z: Array, x: Array, q: Any, reduction: str,
                     threads: int | None) -> Array:
    """The plain loss of prepared operands: one C call or one chunk (:func:`plain`),
    else the chunked engine; reductions as 0-d arrays of the logits' dtype."""
    out = plain(z, x, q, reduction, threads)
    if out is None:
        out = loss(z, x, q, reduction=reduction, axes=tuple(range(x.ndim)), threads=threads)
    return out if reduction == "none" else np.asarray(out, x.dtype)


# --- the registry entry --------------------------------------------------------------

def _own(a: Array) -> Array:
    """Arrays of non-native byte order or extended precision as the native dtype of the
    same precision (longdouble: float64, documented)."""
    dt = a.dtype
    if dt.kind == "f" and dt.itemsize > 8:
        return a.astype(np.float64)
    if not dt.isnative:
        return a.astype(dt.newbyteorder("="))
    return a


def _all_numpy(*arrays: Any) -> bool:
    return all(a is None or isinstance(a, float | np.ndarray) for a in arrays)


def _loss_hook(z: Array, x: Array, q: Array | float) -> Array | None:
    return weighted_loss(z, x, q) if _all_numpy(z, x, q) else None


def _grad_hess_hook(z: Array, x: Array, q: Array | float) -> tuple[Array, Array] | None:
    return grad_hess(z, x, q) if _all_numpy(z, x, q) else None


def _whole_hook(z: Array, x: Array, q: Array | float, *, weight: Array | None,
                mask: Array | None, smoothing: Any, focal: Any, reduction: str,
                axes: tuple[int, ...]) -> Array | None:
    if (not _all_numpy(z, x, q, weight, mask) or not isinstance(smoothing, float)
            or reduction not in TAKES):
        return None
    return loss(z, x, q, weight=weight, mask=mask, smoothing=smoothing, focal=focal,
                reduction=reduction, axes=axes)


def simd_level() -> str:
    """The vector instructions the C kernels' loops run with: the clone that GCC's
    resolver picks at load time for this CPU (AVX-512F, else AVX2, else the baseline),
    read from the CPU's flags; "baseline" where the kernels carry no clones."""
    import platform

    if _fused_module is None or platform.machine() not in ("x86_64", "AMD64") or \
            not os.path.exists("/proc/cpuinfo"):
        return "baseline"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return "baseline"
    return "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "baseline"


def _describe() -> dict[str, str]:
    if _fused_module is None:
        kernels = ("missing: the ufunc kernel runs (slower); with a C compiler, "
                   "pip install --force-reinstall --no-binary wce_xp wce_xp builds them")
    else:
        pool = ("threads of its own, PyTorch's OpenMP team for tensors"
                if _fused_module.POOL else "one thread per call")
        kernels = f"present (wce_xp._fused, {simd_level()} loops, {pool})"
    return {"compiled kernels": kernels, "threads": str(get_num_threads())}


# Every option and reduction chunk by chunk on every core (the labels cast and the mask
# applied per chunk: no full-size temporary); NumPy has no device and no trace.
BACKEND = Backend(
    name="numpy",
    counts_by_shape=True,
    own=_own,
    loss=_loss_hook,
    grad_hess=_grad_hess_hook,
    whole=_whole_hook,
    in_range=verdicts,
    fast_lanes=((np.ndarray, fast_call),),
    describe=_describe,
)
