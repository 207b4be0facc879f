"""JAX: traits only. The generic code is JAX's fast path: XLA fuses it under ``jit`` as
well as a hand-written kernel would (BENCHMARKS.md), so no fast implementation is
registered; the entry says how to read JAX's arrays.
"""

from __future__ import annotations

from typing import Any

from .._compat import is_jax_tracer
from .._registry import Backend


def _state(arrays: list[Any], device: Any) -> tuple[bool, bool, bool]:
    # (array-api-compat calls every JAX array lazy: only tracers lack values)
    traced = any(is_jax_tracer(a) for a in arrays)
    on_device = not traced and device is not None and \
        getattr(device, "platform", "cpu") != "cpu"
    return traced, False, on_device


def _float64_sums(device: Any) -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)  # float64 exists only with x64 enabled


BACKEND = Backend(name="jax", state=_state, counts_by_shape=True, float64_sums=_float64_sums)
