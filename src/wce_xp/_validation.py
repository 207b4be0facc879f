"""Find the namespace, convert the arguments, check them. Nothing here computes a loss.

Every error names the argument and what was expected. Value checks (ranges and
signs) read the data, so they run only on eager arrays and only when asked
(``validate=True``); on Dask arrays and JAX tracers they are skipped, because
reading a value there would compute the graph or fail.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _compat
from ._compat import array_namespace, backend_name, is_array

Array = Any

REDUCTIONS = ("none", "sum", "mean", "weighted_mean")


@dataclass
class Inputs:
    """Validated inputs in one namespace, one device and one compute dtype."""

    xp: ModuleType
    z: Array
    x: Array
    q: Array | float
    weight: Array | None
    mask: Array | None
    out_dtype: Any
    lazy: bool


def _namespace(named: dict[str, Any], xp: Any) -> ModuleType:
    if xp is not None:
        return _compat.ready(_compat.namespace_of_module(xp))
    found: dict[str, tuple[ModuleType, str]] = {}
    for name, value in named.items():
        if is_array(value):
            try:
                ns = array_namespace(value)
            except TypeError as exc:
                raise TypeError(f"{name}: not a supported array type ({exc})") from None
            found[name] = (ns, backend_name(ns))
    spaces = {id(ns): (name, lib) for name, (ns, lib) in found.items()}
    if len(spaces) > 1:
        parts = ", ".join(f"{name} is a {lib} array" for name, lib in spaces.values())
        raise TypeError(
            f"arrays from different libraries: {parts}; convert them to one library "
            "(or pass xp= to convert everything to one namespace)"
        )
    if found:
        return _compat.ready(next(iter(found.values()))[0])
    default: ModuleType = array_namespace(np.empty(0))
    return default


def _is_real_floating(xp: ModuleType, dtype: Any) -> bool:
    try:
        return bool(xp.isdtype(dtype, "real floating"))
    except Exception:  # exotic dtypes such as bfloat16 in old releases
        return False


def _kind_ok(xp: ModuleType, dtype: Any) -> bool:
    """bool, integer or real floating: what labels and weights may be."""
    try:
        return bool(xp.isdtype(dtype, ("bool", "integral", "real floating")))
    except Exception:
        return False


def _shape_known(shape: tuple[Any, ...]) -> bool:
    return all(isinstance(d, int) for d in shape)


def _check_broadcast(name: str, shape: tuple[Any, ...], target: tuple[Any, ...]) -> None:
    ok = len(shape) <= len(target)
    if ok:
        for s, t in zip(reversed(shape), reversed(target), strict=False):
            unknown = not isinstance(s, int) or not isinstance(t, int)
            if not (unknown or s == t or s == 1):
                ok = False
                break
    if not ok:
        raise ValueError(
            f"{name}: shape {tuple(shape)} does not broadcast to the logits' shape {tuple(target)}"
        )


def _as_array(name: str, value: Any, xp: ModuleType, device: Any) -> Array:
    if is_array(value):
        try:
            same = array_namespace(value) is xp
        except TypeError:
            same = False
        if same:
            return value
    if isinstance(value, np.generic):
        value = value.item()
    try:
        return xp.asarray(value, device=device)
    except Exception as exc:
        raise TypeError(f"{name}: cannot be converted to an array ({exc})") from None


def _scalar(value: Any) -> float | None:
    """A Python float for Python and NumPy real scalars; None for anything else."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, numbers.Real) and not is_array(value):
        return float(value)
    if isinstance(value, np.generic) and np.isrealobj(value) and value.dtype.kind in "biuf":
        return float(value.item())
    return None


def as_float(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf) -> float:
    """A Python float option in [lo, hi] (NaN is rejected)."""
    f = _scalar(value)
    if f is None:
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not lo <= f <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {f}")
    return f


def check_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        names = ", ".join(map(repr, allowed))
        raise ValueError(f"reduction: expected one of {names}; got {reduction!r}")
    return reduction


def _weight_like(
    name: str, value: Any, xp: ModuleType, device: Any, dtype: Any, shape: tuple[Any, ...]
) -> Array | float:
    f = _scalar(value)
    if f is not None:
        if not f >= 0:
            raise ValueError(f"{name}: expected a non-negative number, got {f}")
        return f
    arr = _as_array(name, value, xp, device)
    if not _kind_ok(xp, arr.dtype):
        raise TypeError(
            f"{name}: expected a real (bool, integer or floating) array, got {arr.dtype}"
        )
    _check_broadcast(name, tuple(arr.shape), shape)
    return xp.astype(arr, dtype, copy=False)


def prepare(
    *,
    labels: Any,
    logits: Any,
    pos_weight: Any = None,
    weight: Any = None,
    mask: Any = None,
    xp: Any = None,
    validate: bool = True,
    labels_name: str = "labels",
    logits_name: str = "logits",
) -> Inputs:
    """Convert and check the arguments of every loss function.

    Python scalars stay Python floats (every backend combines them with arrays
    without a copy or a device transfer); lists and NumPy scalars go into the
    namespace, device and floating dtype of the array arguments.
    """
    if labels is None:
        raise TypeError(f"{labels_name}: required")
    if logits is None:
        raise TypeError(f"{logits_name}: required")
    named = {labels_name: labels, logits_name: logits, "pos_weight": pos_weight,
             "weight": weight, "mask": mask}
    named = {k: v for k, v in named.items() if v is not None}
    ns = _namespace(named, xp)
    arrays = [v for v in named.values() if is_array(v)]
    dev = _compat.device(arrays[0]) if arrays else None
    if is_array(logits) and _compat.array_namespace(logits) is ns:
        dev = _compat.device(logits)

    # logits: a real floating array; half precision is computed in float32.
    x = _as_array(logits_name, logits, ns, dev)
    if not is_array(logits) or not _is_real_floating(ns, x.dtype):
        if is_array(logits) or ns.isdtype(x.dtype, "complex floating"):
            raise TypeError(
                f"{logits_name}: expected a real floating array (float16/32/64 or bfloat16), "
                f"got dtype {x.dtype}"
            )
        # Python numbers or lists: the floating dtype of the array arguments.
        ref = [a.dtype for a in arrays if _is_real_floating(ns, getattr(a, "dtype", None))]
        if ref:
            x = ns.astype(x, ref[0])
        elif not _is_real_floating(ns, x.dtype):
            x = ns.astype(x, ns.asarray(0.0, device=dev).dtype)
    out_dtype = x.dtype
    compute = out_dtype if out_dtype in (ns.float32, ns.float64) else ns.float32
    x = ns.astype(x, compute, copy=False)
    shape = tuple(x.shape)

    z = _as_array(labels_name, labels, ns, dev)
    if not _kind_ok(ns, z.dtype):
        raise TypeError(
            f"{labels_name}: expected bool, integer or real floating labels, got dtype {z.dtype}"
        )
    zshape = tuple(z.shape)
    if zshape != shape and _shape_known(zshape) and _shape_known(shape):
        raise ValueError(
            f"{labels_name} and {logits_name} must have the same shape, got {zshape} and {shape}"
        )
    z = ns.astype(z, compute, copy=False)

    q: Array | float = 1.0
    if pos_weight is not None:
        q = _weight_like("pos_weight", pos_weight, ns, dev, compute, shape)
    w: Array | None = None
    if weight is not None:
        wv = _weight_like("weight", weight, ns, dev, compute, shape)
        # A scalar weight becomes a 0-d array: the reductions broadcast it like any other.
        w = wv if is_array(wv) else ns.asarray(wv, dtype=compute, device=dev)

    m: Array | None = None
    if mask is not None:
        m = _as_array("mask", mask, ns, dev)
        if m.dtype != ns.bool:
            raise TypeError(f"mask: expected a boolean array (True = keep), got dtype {m.dtype}")
        _check_broadcast("mask", tuple(m.shape), shape)

    lazy = _compat.is_lazy(*(v for v in (x, z, q, w, m) if is_array(v)))
    if validate and not lazy:
        _check_values(ns, z, q, w, m, labels_name)
    return Inputs(xp=ns, z=z, x=x, q=q, weight=w, mask=m, out_dtype=out_dtype, lazy=lazy)


def _any(xp: ModuleType, cond: Array) -> bool:
    return bool(xp.any(cond))


def _min_below(xp: ModuleType, a: Array, lo: float) -> bool:
    """min(a) < lo through a reduction: no full-size temporary (NaN passes)."""
    return bool(a.shape and _compat.size(a) and xp.min(a) < lo) or (
        not a.shape and bool(a < lo))


def _max_above(xp: ModuleType, a: Array, hi: float) -> bool:
    return bool(a.shape and _compat.size(a) and xp.max(a) > hi) or (
        not a.shape and bool(a > hi))


def _check_values(
    xp: ModuleType, z: Array, q: Array | float, w: Array | None, m: Array | None, labels_name: str
) -> None:
    if m is None:
        # min/max reductions instead of elementwise comparisons: no label-sized temporary
        bad = _min_below(xp, z, 0.0) or _max_above(xp, z, 1.0)
    else:
        bad = _any(xp, ((z < 0) | (z > 1)) & m)
    if bad:
        raise ValueError(f"{labels_name}: values must lie in [0, 1] (found values outside)")
    if is_array(q) and _min_below(xp, q, 0.0):
        raise ValueError("pos_weight: values must be non-negative (found negative values)")
    if w is not None and is_array(w) and _min_below(xp, w, 0.0):
        raise ValueError("weight: values must be non-negative (found negative values)")
