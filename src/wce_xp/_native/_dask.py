"""Dask path: the NumPy chunked kernel on every block (``map_blocks``).

Why it exists: the generic code builds about twenty tasks per block, each making a
full-block temporary; one task per block running the cache-sized NumPy kernel is
faster and keeps worker memory near one block. It stays lazy, keeps the chunk
structure, and reductions are Dask's own tree reductions over it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._registry import Backend
from . import _numpy

Array = Any


def applies(*arrays: Any) -> bool:
    """Only for Dask arrays with NumPy blocks (CuPy-backed Dask takes the generic path)."""
    return all(isinstance(getattr(a, "_meta", None), np.ndarray) for a in arrays)


def _align(v: Any, x: Array) -> Any:
    """``v`` broadcast to the logits' shape with the logits' chunks, whatever its own
    chunking (map_blocks pairs blocks by index, so they must line up)."""
    import dask.array as da

    if isinstance(v, float):
        return v
    if tuple(v.shape) != tuple(x.shape):
        v = da.broadcast_to(v, x.shape)
    return v if v.chunks == x.chunks else v.rechunk(x.chunks)


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array | None:
    import dask.array as da

    if not applies(z, x, *([] if isinstance(q, float) else [q])):
        return None
    return da.map_blocks(weighted_loss_block, _align(z, x), x, _align(q, x),
                         dtype=x.dtype, meta=np.empty((0,) * x.ndim, x.dtype))


def weighted_loss_block(z: Array, x: Array, q: Any) -> Array:
    """One block through the NumPy kernel (a named function: the graph layer's name)."""
    return _numpy.weighted_loss(z, x, q, threads=1)  # Dask runs the blocks


def _gh_block(z: Array, x: Array, q: Any) -> Array:
    g, h = _numpy.grad_hess(z, x, q, threads=1)
    return np.stack([g, h])


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array] | None:
    import dask.array as da

    if not applies(z, x, *([] if isinstance(q, float) else [q])):
        return None
    qa = _align(q, x)
    both = da.map_blocks(_gh_block, _align(z, x), x, qa, dtype=x.dtype, new_axis=0,
                         chunks=((2,), *x.chunks), meta=np.empty((0,) * (x.ndim + 1), x.dtype))
    return both[0], both[1]


def _state(arrays: list[Array], device: Any) -> tuple[bool, bool, bool]:
    return True, True, False  # reading a value would compute the graph


# Reductions are Dask's own tree reductions over the fast elementwise blocks.
BACKEND = Backend(
    name="dask",
    state=_state,
    counts_by_shape=True,
    loss=weighted_loss,
    grad_hess=grad_hess,
)
