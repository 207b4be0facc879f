"""Dask path: the NumPy chunked kernel on every block (``map_blocks``).

Why it exists: the generic code builds about twenty tasks per block, each making a
full-block temporary; one task per block running the cache-sized NumPy kernel is
faster and keeps worker memory near one block. It stays lazy, keeps the chunk
structure, and reductions are Dask's own tree reductions over it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _numpy

Array = Any


def applies(*arrays: Any) -> bool:
    """Only for Dask arrays with NumPy blocks (CuPy-backed Dask takes the generic path)."""
    return all(isinstance(getattr(a, "_meta", None), np.ndarray) for a in arrays)


def _align(q: Any, x: Array) -> Any:
    import dask.array as da

    if isinstance(q, float):
        return q
    return da.broadcast_to(q, x.shape, chunks=x.chunks)


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array:
    import dask.array as da

    return da.map_blocks(_numpy.weighted_loss, z, x, _align(q, x), dtype=x.dtype,
                         meta=np.empty((0,) * x.ndim, x.dtype))


def _gh_block(z: Array, x: Array, q: Any) -> Array:
    g, h = _numpy.grad_hess(z, x, q)
    return np.stack([g, h])


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array]:
    import dask.array as da

    qa = _align(q, x)
    both = da.map_blocks(_gh_block, z, x, qa, dtype=x.dtype, new_axis=0,
                         chunks=((2,), *x.chunks), meta=np.empty((0,) * (x.ndim + 1), x.dtype))
    return both[0], both[1]
