"""The front door: classify every argument once, convert it, check values in one pass.

Nothing here computes a loss. :func:`prepare` makes one decision per call, recorded
in :class:`Inputs`, that every later step only reads:

* the namespace, the device and the compute dtype;
* whether values may be read (``may_read``): never under a trace (``jax.jit``,
  ``torch.compile``, ``torch.func`` transforms), never on lazy arrays (Dask), and on
  GPU arrays only when the caller asks for it (``validate="always"``), because each
  read there is a host-device synchronization;
* whether a native kernel may run (``native``): not under a trace, a functorch
  transform or forward-mode AD, which need the generic, differentiable code.

Arguments are classified by their exact type, through a cache: one dictionary
lookup per argument on the hot path. Value checks (labels in [0, 1], weights finite
and non-negative, no NaN) become one min/max pass per checked array and a single
read of all their verdicts. Every error names the argument and what was expected.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _compat, _dispatch
from ._compat import array_namespace, backend_name
from ._generic import _core

Array = Any

REDUCTIONS = ("none", "sum", "mean", "weighted_mean")

# Kinds of argument: an array library's name, SCALAR (Python or NumPy real scalar)
# or OTHER (lists, tuples, anything asarray may take).
SCALAR = "scalar"
OTHER = "other"

_KIND: dict[type, str] = {}  # exact type -> kind, filled on first sight of a type
_NS: dict[str, ModuleType] = {}  # library name -> its namespace


def _classify_type(value: Any) -> str:
    if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
        return SCALAR
    if _compat.is_tf_tensor(value):
        _compat.require_supported("tensorflow")
        from . import _tf  # array-api-compat has no TensorFlow namespace: ours

        _NS.setdefault("tensorflow", _tf)
        return "tensorflow"
    if not _compat.is_array(value):
        return OTHER
    try:
        ns = array_namespace(value)
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
    ``nonneg`` is True when ``q·z`` and ``1 - z`` are known to be non-negative (their
    values were checked), which lets native kernels take a shorter formula.
    ``deferred``: NumPy inputs for the chunked engine; ``z`` keeps its dtype (bool,
    integer or another float) and the mask is not applied yet (the engine does both
    per chunk). ``pending``: value checks left to the caller (``prepare``'s
    ``defer_checks``), to run with :func:`check_values` or inside its compiled call.
    """

    xp: ModuleType
    lib: str
    z: Array
    x: Array
    q: Array | float
    weight: Array | None
    mask: Array | None
    out_dtype: Any
    acc_dtype: Any
    native: bool
    nonneg: bool
    deferred: bool = False
    pending: list[tuple[str, str, Any, float, float]] | None = None


@dataclass
class Context:
    """Where the arrays live and what may be done with their values."""

    xp: ModuleType
    lib: str
    device: Any
    traced: bool  # no concrete values (a trace) or values that must not be computed (Dask)
    native: bool
    on_device: bool


def _check_devices(named: dict[str, Any], kinds: dict[str, str], lib: str, dev: Any) -> None:
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
        listed = ", ".join(f"{name} on {d}" for name, d in where.items())
        raise ValueError(f"arrays on different devices: {listed}; move them to one device")


def context(named: dict[str, Any], kinds: dict[str, str], xp: Any) -> Context:
    """The namespace, device and tracing state of one call's arguments."""
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
        parts = ", ".join(f"{name} is a {lib} array" for lib, name in seen.items())
        raise TypeError(
            f"arrays from different libraries: {parts}; convert them to one library "
            "(or pass xp= to convert everything to one namespace)"
        )
    elif libs:
        lib = next(iter(libs))
        ns = _NS[lib] if lib in _NS else array_namespace(arrays[0])
    else:
        lib = "numpy"
        ns = _NS.get("numpy") or array_namespace(np.empty(0))
        _NS["numpy"] = ns
    dev = None
    if arrays:
        x = named.get("logits", arrays[0])
        x = x if kind_of(x) == lib else arrays[0]
        dev = x.device if lib == "tensorflow" else _compat.device(x)
        if len(arrays) > 1 and lib != "tensorflow":  # (TensorFlow places ops itself)
            _check_devices(named, kinds, lib, dev)
    traced, native, on_device = False, True, False
    if lib == "torch":
        traced, native = _compat.torch_state(arrays)
        on_device = dev is not None and dev.type != "cpu"
    elif lib == "jax":
        traced = any(_compat.is_jax_tracer(a) for a in arrays)
        native = False
        on_device = not traced and dev is not None and getattr(dev, "platform", "cpu") != "cpu"
    elif lib == "dask":
        traced = True
    elif lib == "tensorflow":
        import tensorflow as tf

        # inside tf.function (also Keras's compiled train step) tensors are symbolic
        traced = not tf.executing_eagerly()
        native = not traced  # eager calls run the generic code compiled by XLA
        on_device = "GPU" in str(dev or "").upper()
    elif lib == "cupy":
        on_device = True
    elif lib not in ("numpy", "array_api_strict"):
        # a library wce_xp does not name: lazy arrays (an ONNX graph being built, say)
        # have no values to check yet, and are treated like traced ones
        traced = any(_compat.is_lazy_array(a) for a in arrays)
    if not traced:
        ns = _compat.ready(ns)
    # generic_only() (tests, benchmarks) switches every native path off, checks included
    native = native and not _dispatch._FORCE_GENERIC
    return Context(xp=ns, lib=lib, device=dev, traced=traced, native=native,
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


def _native_numpy(a: Array) -> Array:
    """NumPy arrays of non-native byte order or extended precision, as the native dtype
    of the same precision (longdouble: float64, documented)."""
    dt = a.dtype
    if dt.kind == "f" and dt.itemsize > 8:
        return a.astype(np.float64)
    if not dt.isnative:
        return a.astype(dt.newbyteorder("="))
    return a


def _as_array(name: str, value: Any, kind: str, ctx: Context) -> Array:
    xp = ctx.xp
    if kind not in (SCALAR, OTHER):
        problem = _compat.layout_problem(value)
        if problem is not None:
            raise TypeError(f"{name}: {problem}")
    if kind == ctx.lib:
        if kind == "numpy":
            return _native_numpy(value)
        if kind == "tensorflow":  # a Variable's value (a tape still watches the variable)
            return xp.asarray(value)
        return value
    if kind == SCALAR and isinstance(value, np.generic):
        value = value.item()
    try:
        out = xp.asarray(value, device=ctx.device)
    except Exception as exc:
        raise TypeError(f"{name}: cannot be converted to an array ({exc})") from None
    return _native_numpy(out) if ctx.lib == "numpy" else out


def _scalar(value: Any) -> float | None:
    """A Python float for Python and NumPy real scalars; None for anything else."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, numbers.Real) and not _compat.is_array(value):
        return float(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
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


def as_option(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf) -> Any:
    """A number option (``gamma``, ``alpha``, ``label_smoothing``): a Python float in
    [lo, hi], or a 0-d array as given where its value cannot be read (a tracer under
    ``jax.jit``, which traces such options as arrays, as optax does); concrete 0-d
    arrays are read and checked like numbers."""
    if _scalar(value) is not None or not _compat.is_array(value):
        return as_float(name, value, lo=lo, hi=hi)
    if tuple(value.shape) != ():
        raise TypeError(f"{name}: expected a real number or a 0-d array, got an array of "
                        f"shape {tuple(value.shape)}")
    # (array-api-compat calls every JAX array lazy; only tracers lack values)
    lazy = _compat.is_jax_tracer(value) if _compat.is_jax_array(value) else \
        _compat.is_lazy_array(value)
    if lazy:
        return value  # no value to check: used as it is, in the computation
    try:
        f = float(value)
    except Exception:  # a value that cannot be read here (traced by another library)
        return value
    return as_float(name, f, lo=lo, hi=hi)


def check_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        names = ", ".join(map(repr, allowed))
        raise ValueError(f"reduction: expected one of {names}; got {reduction!r}")
    return reduction


def check_validate(validate: Any) -> bool | str:
    if validate is True or validate is False or validate == "always":
        return validate  # type: ignore[no-any-return]
    raise ValueError(f"validate: expected True, False or 'always', got {validate!r}")


def _weight_like(
    name: str, value: Any, kind: str, ctx: Context, dtype: Any, shape: tuple[Any, ...],
    validate: bool,
) -> Array | float:
    if kind == SCALAR:
        f = _scalar(value)
        if f is not None:
            if validate and not 0.0 <= f < math.inf:
                raise ValueError(f"{name}: expected a finite non-negative number, got {f}")
            return f
    arr = _as_array(name, value, kind, ctx)
    if not _kind_ok(ctx.xp, arr.dtype):
        raise TypeError(
            f"{name}: expected a real (bool, integer or floating) array, got {arr.dtype}"
        )
    _check_broadcast(name, tuple(arr.shape), shape)
    return ctx.xp.astype(arr, dtype, copy=False)


def _autocast_float32(ctx: Context, dtype: Any) -> bool:
    """PyTorch's autocast runs binary_cross_entropy_with_logits in float32 (its "fp32"
    list): half-precision logits under an active autocast give a float32 result."""
    import torch

    if dtype not in (torch.float16, torch.bfloat16):
        return False
    dev_type = ctx.device.type if ctx.device is not None else "cpu"
    try:
        return bool(torch.is_autocast_enabled(dev_type))
    except TypeError:  # pragma: no cover - torch < 2.4 has no device argument
        return bool(torch.is_autocast_enabled())


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

    ``chunked``: the caller runs NumPy inputs through the chunked NumPy engine, which
    casts labels and applies the mask chunk by chunk; then neither is done here on
    NumPy's native path (no full-size copy), and ``Inputs.deferred`` says so.

    ``defer_checks``: the caller runs the value checks itself (``Inputs.pending``)
    where it can fold them into the compiled call of eager TensorFlow: one dispatch
    instead of two (half of a 1e3-element call). Elsewhere they run here.
    """
    if labels is None:
        raise TypeError(f"{labels_name}: required")
    if logits is None:
        raise TypeError(f"{logits_name}: required")
    validate = check_validate(validate)
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
    ctx = context(named, kinds, xp)
    ns = ctx.xp

    # logits: a real floating array; half precision is computed in float32.
    x = _as_array(logits_name, logits, kinds["logits"], ctx)
    if kinds["logits"] != ctx.lib or not _is_real_floating(ns, x.dtype):
        if kinds["logits"] == ctx.lib or ns.isdtype(x.dtype, "complex floating") or (
                kinds["logits"] not in (SCALAR, OTHER)):
            raise TypeError(
                f"{logits_name}: expected a real floating array (float16/32/64 or bfloat16), "
                f"got dtype {x.dtype}"
            )
        # Python numbers or lists: the floating dtype of the array arguments.
        ref = [named[n].dtype for n, k in kinds.items() if k == ctx.lib
               and _is_real_floating(ns, named[n].dtype)]
        if ref:
            x = ns.astype(x, _native_numpy(np.empty(0, ref[0])).dtype
                          if ctx.lib == "numpy" else ref[0])
        elif not _is_real_floating(ns, x.dtype):
            x = ns.astype(x, ns.asarray(0.0, device=ctx.device).dtype)
    out_dtype = x.dtype
    if out_dtype in (ns.float32, ns.float64):
        compute = out_dtype
    else:
        compute = ns.float32
        if ctx.lib == "torch" and _autocast_float32(ctx, out_dtype):
            out_dtype = compute
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
    deferred = chunked and ctx.native and ctx.lib == "numpy"
    if not deferred:
        z = ns.astype(z, compute, copy=False)

    q: Array | float = 1.0
    if pos_weight is not None:
        q = _weight_like("pos_weight", pos_weight, kinds["pos_weight"], ctx, compute, shape,
                         bool(validate))
    w: Array | None = None
    if weight is not None:
        wv = _weight_like("weight", weight, kinds["weight"], ctx, compute, shape, bool(validate))
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
            # Masked entries may hold NaN or inf (missing labels): replace them by 0
            # before any arithmetic or check, so that they reach neither the value nor
            # the gradient.
            z = _core.where(m, z, 0.0, xp=ns)
            x = _core.where(m, x, 0.0, xp=ns)

    may_read = bool(validate) and not ctx.traced and (not ctx.on_device or validate == "always")
    pending = None
    if may_read:
        label_msg = "values must lie in [0, 1] (found values outside, or NaN)"
        checks = []
        if deferred and m is not None:
            from ._native import _numpy as native_numpy

            if not native_numpy.check_masked_labels(z, m):
                raise ValueError(f"{labels_name}: {label_msg}")
        elif z.dtype != ns.bool:  # bool labels (kept by the NumPy engine) lie in [0, 1]
            checks.append((labels_name, label_msg, z, 0.0, 1.0))
        if not isinstance(q, float):
            checks.append(("pos_weight", "values must be finite and non-negative "
                           "(found negative, infinite or NaN values)", q, 0.0, math.inf))
        if w is not None and not (weight is not None and kinds["weight"] == SCALAR):
            checks.append(("weight", "values must be finite and non-negative "
                           "(found negative, infinite or NaN values)", w, 0.0, math.inf))
        if defer_checks and checks and ctx.lib == "tensorflow" and ctx.native:
            pending = checks
        else:
            check_values(ns, ctx.lib, checks, native=ctx.native)
    return Inputs(xp=ns, lib=ctx.lib, z=z, x=x, q=q, weight=w, mask=m, out_dtype=out_dtype,
                  acc_dtype=accumulation_dtype(ctx, compute), native=ctx.native,
                  nonneg=may_read, deferred=deferred, pending=pending)


def finish(inp: Inputs, out: Array) -> Array:
    """The result in the output dtype; NumPy's 0-d arithmetic returns scalars, which
    go back into 0-d arrays (every backend returns an array)."""
    out = inp.xp.astype(out, inp.out_dtype, copy=False)
    if inp.lib == "numpy" and not isinstance(out, np.ndarray):
        out = np.asarray(out)
    return out


def accumulation_dtype(ctx: Context, compute: Any) -> Any:
    """float64 for sums of float32 values, where the backend has float64 (JAX only with
    x64 enabled): a float32 accumulator drifts by 1e-3 over millions of rows."""
    ns = ctx.xp
    if compute != ns.float32:
        return compute
    if ctx.lib == "jax":
        import jax

        return ns.float64 if jax.config.jax_enable_x64 else compute
    if ctx.lib == "torch" and ctx.device is not None and ctx.device.type == "mps":
        return compute  # pragma: no cover - no float64 on Apple GPUs
    return ns.float64


def check_values(
    xp: ModuleType, lib: str, checks: list[tuple[str, str, Array, float, float]],
    native: bool = False,
) -> None:
    """Raise for the first array whose values leave ``[lo, hi]`` (``hi = inf``: finite).

    One min/max pass per array and one read of all verdicts together. NaN fails every
    comparison, so it is refused too. Empty arrays pass.
    """
    if lib == "numpy":
        flags = [numpy_in_range(a, lo, hi) for _, _, a, lo, hi in checks]
    elif lib == "tensorflow" and native:
        from ._native import _tf as native_tf

        flags = native_tf.in_range([c[2] for c in checks], [(c[3], c[4]) for c in checks])
    else:
        flags = _read_verdicts(xp, lib, checks)
    for ok, (name, msg, *_) in zip(flags, checks, strict=True):
        if not ok:
            raise ValueError(f"{name}: {msg}")


_C_CHECKED = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.bool_))
# the largest finite double: "finite" as a closed upper bound, for the C kernels' check
FINITE_MAX = float(np.finfo(np.float64).max)


def numpy_in_range(a: np.ndarray, lo: float, hi: float) -> bool:
    """Whether every value of a NumPy array lies in ``[lo, hi]`` (``hi = inf``: finite;
    NaN fails): one C pass for contiguous float32, float64 and bool arrays, where the
    C kernels are built; else a min and a max."""
    if not a.size:
        return True
    from ._native import _numpy as engine

    f = engine._fused_module
    if f is not None and a.dtype in _C_CHECKED and engine.c_ready(a):
        return bool(f.within(a, lo, FINITE_MAX if hi == math.inf else hi))
    return bool(bounds_hold(np.min(a), np.max(a), lo, hi))


def bounds_hold(mn: Any, mx: Any, lo: float, hi: float) -> Any:
    """``lo ≤ mn`` and ``mx ≤ hi`` (``mx < hi`` when ``hi`` is inf: finite values only),
    elementwise on any backend's scalars or 0-d arrays; NaN fails both."""
    return (mn >= lo) & ((mx < hi) if hi == math.inf else (mx <= hi))


def _read_verdicts(
    xp: ModuleType, lib: str, checks: list[tuple[str, str, Array, float, float]]
) -> list[bool]:
    """Every check's verdict on the device, then one read of them all."""
    verdicts = []
    for _, _, a, lo, hi in checks:
        if lib == "torch":
            import torch

            if a.numel() == 0:
                verdicts.append(torch.ones((), dtype=torch.bool, device=a.device))
                continue
            mn, mx = torch.aminmax(a.detach())
        else:
            if math.prod(tuple(a.shape)) == 0:
                verdicts.append(xp.asarray(True))
                continue
            mn, mx = xp.min(a), xp.max(a)
        verdicts.append(bounds_hold(mn, mx, lo, hi))
    if lib == "torch":
        import torch

        flags: list[bool] = torch.stack(verdicts).tolist()  # the one read
        return flags
    if bool(xp.all(xp.stack(verdicts))):  # the one read on success
        return [True] * len(verdicts)
    return [bool(v) for v in verdicts]
