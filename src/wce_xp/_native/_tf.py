"""TensorFlow fast path for eager calls: the generic code, compiled once per signature
by XLA (``tf.function(jit_compile=True)``).

Why it exists: eagerly, the generic code runs about twenty TensorFlow ops, each a
separate kernel with a full-size temporary, slower than
``tf.nn.weighted_cross_entropy_with_logits``; XLA fuses the same code into one loop,
faster than TensorFlow's own eager function at every size measured (BENCHMARKS.md).
The arithmetic is the generic code itself, so values and gradients (GradientTape
differentiates through the compiled function) are the generic ones; tested against
the generic path in tests/test_native.py. Inside ``tf.function`` the caller's own
trace is used instead (the front door never takes this path when tracing).

XLA compiles each new input shape once (a fraction of a second for this small
graph), as ``jax.jit`` does.
"""

from __future__ import annotations

import functools
from typing import Any

import tensorflow as tf

from .. import _tf
from .._generic import _core
from .._registry import Backend, Check

Array = Any


@functools.cache
def _compiled(function: str, reduction: str, axes: tuple[int, ...], acc: Any, weighted: bool,
              masked: bool) -> Any:
    """One XLA function per static signature (``function``: "loss" or "grad_hess")."""

    def loss(z: Array, x: Array, q: Array, *rest: Array) -> Any:
        if function == "grad_hess":
            return _core.grad_hess(z, x, q, xp=_tf)
        it = iter(rest)
        weight = next(it) if weighted else None
        mask = next(it) if masked else None
        return _loss(z, x, q, weight, mask, reduction, axes, acc)

    return tf.function(loss, jit_compile=True)


def _loss(z: Array, x: Array, q: Array, weight: Array | None, mask: Array | None,
          reduction: str, axes: tuple[int, ...], acc: Any) -> Any:
    """Inside a compiled function: the loss, masked, weighted and reduced."""
    out = _core.weighted_loss(z, x, q, xp=_tf)
    if mask is not None:
        out = tf.where(mask, out, tf.zeros_like(out))
    return _core.reduce_loss(out, weight=weight, mask=mask, reduction=reduction, axes=axes,
                             xp=_tf, acc_dtype=acc, block=8)


_CONCRETE: dict[tuple[Any, ...], Any] = {}


def _call(build: Any, signature: tuple[Any, ...], *args: Array) -> Any:
    """Call the compiled function's concrete graph for these input shapes and dtypes.

    Looking the concrete function up by (builder, signature, shapes, dtypes) here,
    instead of letting ``tf.function`` match its arguments, saves most of its per-call
    cost (BENCHMARKS.md)."""
    key = (build, signature, *((tuple(a.shape), a.dtype) for a in args))
    fn = _CONCRETE.get(key)
    if fn is None:
        specs = [tf.TensorSpec(a.shape, a.dtype) for a in args]
        fn = _CONCRETE[key] = build(*signature).get_concrete_function(*specs)
    return fn(*args)


@functools.cache
def _checker(*bounds: tuple[float, float]) -> Any:
    def check(*arrays: Array) -> Any:
        return _flags(arrays, bounds)

    return tf.function(check, jit_compile=True)


def in_range(arrays: list[Array], bounds: list[tuple[float, float]]) -> list[bool]:
    """For each array, whether all its values lie in ``[lo, hi]`` (``hi = inf``: finite;
    NaN fails): one compiled pass over all of them and, when they pass, one read."""
    ok, flags = _call(_checker, tuple(bounds), *arrays)
    if bool(ok):
        return [True] * len(arrays)
    return [bool(f) for f in tf.unstack(flags)]


def _flags(arrays: Any, bounds: tuple[tuple[float, float], ...]) -> tuple[Any, Any]:
    """Inside a compiled function: whether every array lies in its bounds, and each
    one's verdict (as :func:`in_range` reads them)."""
    flags = []
    for a, (lo, hi) in zip(arrays, bounds, strict=True):
        if a.shape.num_elements() == 0:
            flags.append(tf.constant(True))
            continue
        in_range = _core.bounds_hold(tf.reduce_min(a), tf.reduce_max(a), lo, hi)
        # XLA's min/max on CPU skip NaN (eager TensorFlow's propagate it): ask
        flags.append(in_range & tf.reduce_all(a == a))
    stacked = tf.stack(flags)
    return tf.reduce_all(stacked), stacked


@functools.cache
def _checked_compiled(reduction: str, axes: tuple[int, ...], acc: Any, weighted: bool,
                      masked: bool, bounds: tuple[tuple[float, float], ...]) -> Any:
    """The loss (mask, weights, reduction) and the value checks in one XLA function."""

    def loss(z: Array, x: Array, q: Array, *rest: Array) -> Any:
        it = iter(rest)
        weight = next(it) if weighted else None
        mask = next(it) if masked else None
        out = _loss(z, x, q, weight, mask, reduction, axes, acc)
        ok, flags = _flags(list(it), bounds)
        return out, ok, flags

    return tf.function(loss, jit_compile=True)


def checked_loss(
    z: Array, x: Array, q: Array | float, *, weight: Array | None, mask: Array | None,
    reduction: str, axes: tuple[int, ...], acc_dtype: Any, checks: list[Check],
) -> Array:
    """The loss with every option but the focal factor, and the value checks that
    the front door left to it, in one compiled call and one read
    of the verdicts; raises ``ValueError`` for the first array out of its bounds."""
    rest = [v for v in (weight, mask) if v is not None] + [c.array for c in checks]
    signature = (reduction, axes, acc_dtype, weight is not None, mask is not None,
                 tuple((c.lo, c.hi) for c in checks))
    out, ok, flags = _call(_checked_compiled, signature, z, x, _q(q, x), *rest)
    if not bool(ok):
        for c, good in zip(checks, tf.unstack(flags), strict=True):
            if not bool(good):
                raise ValueError(f"{c.name}: {c.message}")
    return out


def _q(q: Array | float, x: Array) -> Array:
    # a Python float as a tensor: a constant would retrace for every new value
    return tf.constant(q, dtype=x.dtype) if isinstance(q, float) else q


def weighted_loss(z: Array, x: Array, q: Array | float) -> Array:
    return _call(_compiled, ("loss", "none", (), None, False, False), z, x, _q(q, x))


def grad_hess(z: Array, x: Array, q: Array | float) -> tuple[Array, Array]:
    g, h = _call(_compiled, ("grad_hess", "none", (), None, False, False), z, x, _q(q, x))
    return g, h


def reduced_loss(
    z: Array, x: Array, q: Array | float, *, weight: Array | None, mask: Array | None,
    reduction: str, axes: tuple[int, ...], acc_dtype: Any,
) -> Array:
    """Loss, mask, weights and the reduction in one compiled function (the front door
    calls this only with a reduction)."""
    rest = [v for v in (weight, mask) if v is not None]
    signature = ("loss", reduction, axes, acc_dtype, weight is not None, mask is not None)
    return _call(_compiled, signature, z, x, _q(q, x), *rest)


def verdicts(checks: list[Check]) -> list[bool]:
    """The registry's ``in_range``: one compiled pass over every array, one read."""
    return in_range([c.array for c in checks], [(c.lo, c.hi) for c in checks])


def _state(arrays: list[Array], device: Any) -> tuple[bool, bool, bool]:
    # inside tf.function (also Keras's compiled train step) tensors are symbolic, and
    # the caller's own trace takes the generic code
    traced = not tf.executing_eagerly()
    return traced, not traced, "GPU" in str(device or "").upper()


def _device_of(x: Array) -> Any:
    return x.device


def _own(x: Array) -> Array:
    return _tf.asarray(x)  # a Variable's value (a tape still watches the variable)


# Eager calls run the generic code compiled by XLA, checks included; XLA converts and
# sums float64 at half the speed of its float32 row sums, hence blocks of 8.
BACKEND = Backend(
    name="tensorflow",
    state=_state,
    device_of=_device_of,
    check_devices=False,  # TensorFlow places operations itself
    counts_by_shape=True,
    sum_block=8,
    own=_own,
    loss=weighted_loss,
    reduced=reduced_loss,
    grad_hess=grad_hess,
    in_range=verdicts,
    checked_loss=checked_loss,
)
