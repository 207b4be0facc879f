"""Pick an implementation per backend: a measured-faster native path, else the generic one.

Every native path is tested against the generic one in tests/test_native.py.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._generic import _core

Array = Any


def elementwise_loss(z: Array, x: Array, q: Array | float, *, xp: ModuleType) -> Array:
    """The elementwise weighted loss."""
    return _core.weighted_loss(z, x, q, xp=xp)


def reduced_loss(
    z: Array,
    x: Array,
    q: Array | float,
    *,
    weight: Array | None,
    mask: Array | None,
    reduction: str,
    axes: tuple[int, ...],
    xp: ModuleType,
) -> Array | None:
    """A fused loss-and-reduction, or None where no native path applies."""
    return None


def grad_hess(z: Array, x: Array, q: Array | float, *, xp: ModuleType) -> tuple[Array, Array]:
    """Elementwise gradient and Hessian of the weighted loss."""
    return _core.grad_hess(z, x, q, xp=xp)
