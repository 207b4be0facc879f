"""The front door: classify every argument once, convert it, check values in one pass.

Nothing here computes a loss, and no library is named here. :func:`prepare` makes one
decision per call, recorded in :class:`Inputs`, that every later step only reads:

* the namespace, the device, the compute dtype, and the library's entry in the
  registry of backends (:mod:`wce_xp._registry`), whose traits answer everything
  below that differs between libraries and whose fast implementations may run;
* whether values may be read (``may_read``): never under a trace (``jax.jit``,
  ``torch.compile``, ``torch.func`` transforms), never on lazy arrays (Dask), and on
  GPU arrays only when the caller asks for it (``validate="always"``), because each
  read there is a host-device synchronization;
* whether the fast implementations may run (``native``): not under a trace, a
  functorch transform or forward-mode AD, which need the generic, differentiable code.

Arguments are classified by their exact type, through a cache: one dictionary
lookup per argument on the hot path. Value checks (labels in [0, 1], weights finite
and non-negative, no NaN) become one min/max pass per checked array and a single
read of all their verdicts. Every error names the argument and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _args, _compat, _registry
from ._args import REDUCTIONS
from ._compat import array_namespace, backend_name
from ._generic import _core
from ._registry import Backend, Check

Array = Any

__all__ = ["REDUCTIONS", "Inputs", "as_float", "as_option", "check_reduction", "check_values",
           "computable", "context", "finish", "kind_of", "prepare", "with_label_hint"]

# Kinds of argument: an array library's name, SCALAR (Python or NumPy real scalar)
# or OTHER (lists, tuples, anything asarray may take).
SCALAR = "scalar"
OTHER = "other"

_KIND: dict[type, str] = {}  # exact type -> kind, filled on first sight of a type
_NS: dict[str, ModuleType] = {}  # library name -> its namespace


def _classify_type(value: Any) -> str:
    if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
        return SCALAR
    if not _compat.is_array(value):
        return OTHER
    try:
        ns = array_namespace(value)  # (TensorFlow's: wce_xp's own namespace)
    except TypeError:
        return OTHER
    lib = backend_name(ns)
    _compat.require_supported(lib)
    _NS.setdefault(lib, ns)
    return lib


def kind_of(value: Any) -> str:
    """The kind of one argument: a library name, ``"scalar"`` or ``"other"``."""
    t = type(value)
    kind = _KIND.get(t)
    if kind is None:
        kind = _classify_type(value)
        _KIND[t] = kind
    return kind


@dataclass
class Inputs:
    """Converted inputs and the call's one decision about them.

    ``z``, ``x`` (and ``q``, ``weight``, ``mask`` where arrays) are in ``xp``, on one
    device, in the compute dtype; masked elements of ``z`` and ``x`` are already 0.
    ``backend``: the library's registry entry. ``deferred``: the inputs go to the
    backend's ``whole`` implementation; ``z`` keeps its dtype (bool, integer or
    another float) and the mask is not applied yet (it does both). ``pending``: value
    checks left to the caller (``prepare``'s ``defer_checks``), for the backend's
    ``checked_loss`` or :func:`check_values`.
    """

    xp: ModuleType
    lib: str
    backend: Backend
    z: Array
    x: Array
    q: Array | float
    weight: Array | None
    mask: Array | None
    out_dtype: Any
    acc_dtype: Any
    native: bool
    deferred: bool = False
    pending: list[Check] | None = None
    names: tuple[str, str] = ("labels", "logits")


@dataclass
class Context:
    """Where the arrays live and what may be done with their values."""

    xp: ModuleType
    lib: str
    backend: Backend
    device: Any
    traced: bool  # no concrete values (a trace) or values that must not be computed (Dask)
    native: bool
    on_device: bool


def _check_devices(named: dict[str, Any], kinds: dict[str, str], lib: str, dev: Any,
                   shown: dict[str, str]) -> None:
    """Every array argument on the logits' device, or an error naming each argument
    and its device (the libraries' own errors name neither)."""
    where = {}
    for name, k in kinds.items():
        if k == lib:
            try:
                where[name] = _compat.device(named[name])
            except Exception:  # no device to read (a tracer): nothing to compare
                return
    # (a tracer may report no device: None compares with nothing)
    if dev is not None and any(d is not None and d != dev for d in where.values()):
        listed = ", ".join(f"{shown.get(name, name)} on {d}" for name, d in where.items())
        raise ValueError(f"arrays on different devices: {listed}; move them to one device")


def context(named: dict[str, Any], kinds: dict[str, str], xp: Any,
            shown: dict[str, str] | None = None) -> Context:
    """The namespace, device and tracing state of one call's arguments (``shown``: the
    names the caller's signature gives them, for messages)."""
    shown = shown or {}
    libs = {k for k in kinds.values() if k not in (SCALAR, OTHER)}
    arrays = [named[n] for n, k in kinds.items() if k not in (SCALAR, OTHER)]
    if xp is not None:
        ns = _compat.namespace_of_module(xp)
        lib = backend_name(ns)
        arrays = [a for a in arrays if kind_of(a) == lib]
    elif len(libs) > 1:
        seen: dict[str, str] = {}
        for name, k in kinds.items():
            if k not in (SCALAR, OTHER):
                seen.setdefault(k, name)
        parts = ", ".join(f"{shown.get(name, name)} is a {lib} array"
                          for lib, name in seen.items())
        raise TypeError(
            f"arrays from different libraries: {parts}; convert them to one library "
            "(or pass xp= to convert everything to one namespace)"
        )
    elif libs:
        lib = next(iter(libs))
        ns = _NS[lib] if lib in _NS else array_namespace(arrays[0])
    else:
        ns = _compat.default_namespace()  # no array among the arguments
        lib = backend_name(ns)
    b = _registry.lookup(lib)
    dev = None
    if arrays:
        x = named.get("logits", arrays[0])
        x = x if kind_of(x) == lib else arrays[0]
        dev = (b.device_of or _compat.device)(x)
        if len(arrays) > 1 and b.check_devices:
            _check_devices(named, kinds, lib, dev, shown)
    if b.state is not None:
        traced, native, on_device = b.state(arrays, dev)
    else:
        # a library without an entry: lazy arrays (an ONNX graph being built, say) have
        # no values to check yet, and are treated like traced ones
        traced, native, on_device = any(_compat.is_lazy_array(a) for a in arrays), True, False
    if not traced and b.warm_up is not None:
        b.warm_up()
    return Context(xp=ns, lib=lib, backend=b, device=dev, traced=traced, native=native,
                   on_device=on_device)


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


def _as_array(name: str, value: Any, kind: str, ctx: Context) -> Array:
    xp = ctx.xp
    if kind not in (SCALAR, OTHER):
        problem = _compat.layout_problem(value)
        if problem is not None:
            raise TypeError(f"{name}: {problem}")
    if kind != ctx.lib:
        if kind == SCALAR and isinstance(value, np.generic):
            value = value.item()
        try:
            value = xp.asarray(value, device=ctx.device)
        except Exception as exc:
            raise TypeError(f"{name}: cannot be converted to an array ({exc})") from None
    own = ctx.backend.own
    return value if own is None else own(value)


def as_float(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf) -> float:
    """A Python float option in [lo, hi] (NaN is rejected)."""
    f = _args.number(value)
    if f is None:
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not lo <= f <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {f}")
    return f


def as_option(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf) -> Any:
    """A number option (``gamma``, ``alpha``, ``label_smoothing``): a Python float in
    [lo, hi], or a 0-d array as given where its value cannot be read (a tracer under
    ``jax.jit``, which traces such options as arrays, as optax does); concrete 0-d
    arrays are read and checked like numbers."""
    if _args.number(value) is not None or not _compat.is_array(value):
        return as_float(name, value, lo=lo, hi=hi)
    if tuple(value.shape) != ():
        raise TypeError(f"{name}: expected a real number or a 0-d array, got an array of "
                        f"shape {tuple(value.shape)}")
    if _compat.has_no_values(value):
        return value  # no value to check: used as it is, in the computation
    try:
        f = float(value)
    except Exception:  # a value that cannot be read here (traced by another library)
        return value
    return as_float(name, f, lo=lo, hi=hi)


def check_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> Any:
    if not isinstance(reduction, str) or reduction not in allowed:
        names = ", ".join(map(repr, allowed))
        raise ValueError(f"reduction: expected one of {names}; got {reduction!r}")
    return reduction


def check_validate(validate: Any) -> bool:
    """Whether values are checked; a ValueError for anything but True, False and
    ``"always"``."""
    checked = _args.validate_mode(validate)
    if checked is None:
        raise ValueError(f"validate: expected True, False or 'always', got {validate!r}")
    return checked


def _weight_like(
    name: str, value: Any, kind: str, ctx: Context, dtype: Any, shape: tuple[Any, ...],
    validate: bool,
) -> Array | float:
    if kind == SCALAR:
        f = _args.number(value)
        if f is not None:
            if validate and not _args.weight_ok(f):
                raise ValueError(f"{name}: expected a finite non-negative number, got {f}")
            return f
    arr = _as_array(name, value, kind, ctx)
    if not _kind_ok(ctx.xp, arr.dtype):
        raise TypeError(
            f"{name}: expected a real (bool, integer or floating) array, got {arr.dtype}"
        )
    _check_broadcast(name, tuple(arr.shape), shape)
    return ctx.xp.astype(arr, dtype, copy=False)


def _honour_masked(labels: Any, logits: Any, mask: Any, labels_name: str,
                   logits_name: str) -> tuple[Any, Any, Any]:
    """Labels or logits given as masked arrays: their data, and their masked elements
    left out through ``mask`` (combined with any given), never computed from the
    hidden data."""
    labels, keep_z = _compat.split_masked(labels)
    logits, keep_x = _compat.split_masked(logits)
    keep = keep_z if keep_x is None else keep_x if keep_z is None else keep_z & keep_x
    if keep is None:
        return labels, logits, mask
    if mask is None:
        return labels, logits, keep
    given = np.asarray(mask) if isinstance(mask, list | tuple) else mask
    if not isinstance(given, np.ndarray) or given.dtype != np.bool_:
        raise TypeError(
            f"mask: expected a NumPy boolean array to combine with the masks of the "
            f"masked {labels_name}/{logits_name}, got {type(mask).__name__}")
    return labels, logits, given & keep


def prepare(
    *,
    labels: Any,
    logits: Any,
    pos_weight: Any = None,
    weight: Any = None,
    mask: Any = None,
    xp: Any = None,
    validate: bool | str = True,
    labels_name: str = "labels",
    logits_name: str = "logits",
    chunked: bool = False,
    defer_checks: bool = False,
) -> Inputs:
    """Convert and check the arguments of every loss function.

    Python scalars stay Python floats (every backend combines them with arrays
    without a copy or a device transfer); lists and NumPy scalars go into the
    namespace, device and floating dtype of the array arguments.

    ``chunked``: the caller gives the inputs to the backend's ``whole``
    implementation where it has one, which casts labels and applies the mask itself
    (chunk by chunk: no full-size copy); then neither is done here, and
    ``Inputs.deferred`` says so.

    ``defer_checks``: the caller leaves the value checks (``Inputs.pending``) to the
    backend's ``checked_loss`` where it has one (one compiled call instead of two).
    Elsewhere they run here.
    """
    if labels is None:
        raise TypeError(f"{labels_name}: required")
    if logits is None:
        raise TypeError(f"{logits_name}: required")
    checked = check_validate(validate)
    always = checked and type(validate) is str  # "always": device arrays are checked too
    labels, logits, mask = _honour_masked(labels, logits, mask, labels_name, logits_name)
    for name, value in (("pos_weight", pos_weight), ("weight", weight)):
        if _compat.split_masked(value)[1] is not None:
            raise TypeError(
                f"{name}: a masked array with masked elements, which have no weight to "
                f"give; fill them ({name}.filled(...)) or leave those elements out "
                "with mask=")
    named = {"labels": labels, "logits": logits}
    if pos_weight is not None:
        named["pos_weight"] = pos_weight
    if weight is not None:
        named["weight"] = weight
    if mask is not None:
        named["mask"] = mask
    kinds = {name: kind_of(v) for name, v in named.items()}
    shown = {"labels": labels_name, "logits": logits_name}
    ctx = context(named, kinds, xp, shown)
    ns, b = ctx.xp, ctx.backend

    # logits: a real floating array; half precision is computed in float32.
    x = _as_array(logits_name, logits, kinds["logits"], ctx)
    given = kinds["logits"] not in (SCALAR, OTHER)  # an array (of another library: xp=)
    if (not _is_real_floating(ns, x.dtype)
            and (given or ns.isdtype(x.dtype, "complex floating"))):
        raise TypeError(
            f"{logits_name}: expected a real floating array (float16/32/64 or bfloat16), "
            f"got dtype {x.dtype}"
        )
    if not given and kinds["logits"] != ctx.lib:
        # Python numbers or lists: the floating dtype of the array arguments.
        ref = [named[n].dtype for n, k in kinds.items() if k == ctx.lib
               and _is_real_floating(ns, named[n].dtype)]
        if ref:
            x = ns.astype(x, ref[0])
            x = x if b.own is None else b.own(x)
        elif not _is_real_floating(ns, x.dtype):
            x = ns.astype(x, ns.asarray(0.0, device=ctx.device).dtype)
    out_dtype = x.dtype
    if out_dtype in (ns.float32, ns.float64):
        compute = out_dtype
    else:
        compute = ns.float32
        if b.output_dtype is not None:
            out_dtype = b.output_dtype(out_dtype, ctx.device)
    x = ns.astype(x, compute, copy=False)
    shape = tuple(x.shape)

    z = _as_array(labels_name, labels, kinds["labels"], ctx)
    if not _kind_ok(ns, z.dtype):
        raise TypeError(
            f"{labels_name}: expected bool, integer or real floating labels, got dtype {z.dtype}"
        )
    zshape = tuple(z.shape)
    if zshape != shape and all(isinstance(d, int) for d in (*zshape, *shape)):
        raise ValueError(
            f"{labels_name} and {logits_name} must have the same shape, got {zshape} and {shape}"
        )
    deferred = chunked and ctx.native and b.whole is not None

    q: Array | float = 1.0
    if pos_weight is not None:
        q = _weight_like("pos_weight", pos_weight, kinds["pos_weight"], ctx, compute, shape,
                         checked)
    w: Array | None = None
    if weight is not None:
        wv = _weight_like("weight", weight, kinds["weight"], ctx, compute, shape, checked)
        # A scalar weight becomes a 0-d array: the reductions broadcast it like any other.
        w = wv if not isinstance(wv, float) else ns.asarray(wv, dtype=compute,
                                                             device=ctx.device)

    m: Array | None = None
    if mask is not None:
        m = _as_array("mask", mask, kinds["mask"], ctx)
        if m.dtype != ns.bool:
            raise TypeError(f"mask: expected a boolean array (True = keep), got dtype {m.dtype}")
        _check_broadcast("mask", tuple(m.shape), shape)
    if not deferred:
        z, x = computable(z, x, m, compute, ns)

    may_read = checked and not ctx.traced and (not ctx.on_device or always)
    pending = None
    if may_read:
        finite = "values must be finite and non-negative (found negative, infinite or NaN values)"
        checks = []
        if z.dtype != ns.bool:  # bool labels (kept by a backend's whole path) lie in [0, 1]
            checks.append(Check(labels_name, "values must lie in [0, 1] (found values outside, "
                                "or NaN)", z, 0.0, 1.0, m if deferred else None))
        if not isinstance(q, float):
            checks.append(Check("pos_weight", finite, q, 0.0, math.inf))
        if w is not None and not (weight is not None and kinds["weight"] == SCALAR):
            checks.append(Check("weight", finite, w, 0.0, math.inf))
        if defer_checks and checks and ctx.native and b.checked_loss is not None:
            pending = checks
        elif checks:
            try:
                check_values(ns, b, ctx.native, checks)
            except ValueError as exc:
                raise with_label_hint(exc, ns, z, x, m, labels_name, logits_name) from None
    return Inputs(xp=ns, lib=ctx.lib, backend=b, z=z, x=x, q=q, weight=w, mask=m,
                  out_dtype=out_dtype, acc_dtype=accumulation_dtype(ctx, compute),
                  native=ctx.native, deferred=deferred, pending=pending,
                  names=(labels_name, logits_name))


def computable(z: Array, x: Array, m: Array | None, dtype: Any,
               xp: ModuleType) -> tuple[Array, Array]:
    """Labels in the compute dtype and, under a mask, masked entries of labels and logits
    replaced by 0 before any arithmetic or check: they may hold NaN or inf (missing
    labels), which must reach neither the value nor the gradient. What :func:`prepare`
    does unless a backend's ``whole`` implementation takes both over."""
    z = xp.astype(z, dtype, copy=False)
    if m is not None:
        z, x = _core.where(m, z, 0.0, xp=xp), _core.where(m, x, 0.0, xp=xp)
    return z, x


def with_label_hint(exc: ValueError, xp: ModuleType, z: Array, x: Array, m: Array | None,
                     labels_name: str, logits_name: str) -> ValueError:
    """A failed label check with what the values suggest (read on this error path only):
    NaN labels are usually missing ones, for a mask; labels outside [0, 1] beside
    logits that all lie inside it are usually the two arguments swapped."""
    msg = str(exc)
    if not msg.startswith(f"{labels_name}: values must lie in [0, 1]"):
        return exc
    try:
        zf = z if _is_real_floating(xp, z.dtype) else xp.astype(z, x.dtype)
        if m is not None:
            zf = _core.where(m, zf, 0.0, xp=xp)
        nan = not bool(xp.all(zf == zf))  # (NaN is the one value unequal to itself)
        swapped = not nan and math.prod(tuple(x.shape)) > 0 and bool(
            _core.bounds_hold(xp.min(x), xp.max(x), 0.0, 1.0))
    except Exception:  # no hint is better than a second error
        return exc
    if nan:
        msg += (f"; NaN {labels_name} are usually missing ones: leave them out with "
                f"mask=~isnan({labels_name}) (on the command line: --mask)")
    elif swapped:
        msg += (f"; the {logits_name} all lie in [0, 1] and the {labels_name} do not: are "
                "the two swapped? (TensorFlow's functions take labels first, PyTorch's "
                "input first; optax's and torchvision's take logits first, as "
                "wce_xp.optax and wce_xp.torch do)")
    return ValueError(msg)


def finish(inp: Inputs, out: Array) -> Array:
    """The result in the output dtype; 0-d arithmetic that gives a scalar (NumPy's)
    goes back into a 0-d array (every backend returns an array)."""
    out = inp.xp.astype(out, inp.out_dtype, copy=False)
    return np.asarray(out) if isinstance(out, np.generic) else out


def accumulation_dtype(ctx: Context, compute: Any) -> Any:
    """float64 for sums of float32 values, where the backend has float64: a float32
    accumulator drifts by 1e-3 over millions of rows."""
    ns = ctx.xp
    if compute != ns.float32:
        return compute
    f64 = getattr(ns, "float64", None)
    sums = ctx.backend.float64_sums
    if f64 is None or (sums is not None and not sums(ctx.device)):
        return compute
    return f64


def check_values(xp: ModuleType, backend: Backend, native: bool, checks: list[Check]) -> None:
    """Raise for the first array whose values leave ``[lo, hi]`` (``hi = inf``: finite),
    naming it: the backend's ``in_range`` where it has one and may run (``native``),
    else :func:`verdicts`."""
    hook = backend.in_range
    flags = hook(checks) if hook is not None and native else verdicts(xp, checks)
    for ok, c in zip(flags, checks, strict=True):
        if not ok:
            raise ValueError(f"{c.name}: {c.message}")


def verdicts(xp: ModuleType, checks: list[Check]) -> list[bool]:
    """The value checks in the array API: each array's min and max on its device
    (:func:`wce_xp._generic._core.bounds_hold`; NaN fails, empty arrays pass), then one
    read of every verdict."""
    out = []
    for c in checks:
        a = c.array if c.mask is None else _core.where(c.mask, c.array, c.lo, xp=xp)
        if math.prod(tuple(a.shape)) == 0:
            out.append(xp.asarray(True))
            continue
        out.append(_core.bounds_hold(xp.min(a), xp.max(a), c.lo, c.hi))
    if bool(xp.all(xp.stack(out))):  # the one read on success
        return [True] * len(out)
    return [bool(v) for v in out]
