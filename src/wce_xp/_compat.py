"""The one import site of ``array-api-compat``.

Everything else in wce_xp imports the namespace helpers from here, so that a
change of how namespaces are found is made in one place.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import array_namespace as _array_namespace
from array_api_compat import (
    device,
    is_array_api_obj,
    is_array_api_strict_namespace,
    is_cupy_array,
    is_cupy_namespace,
    is_dask_array,
    is_dask_namespace,
    is_jax_array,
    is_jax_namespace,
    is_lazy_array,
    is_numpy_array,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
    size,
)

__all__ = [
    "array_namespace",
    "backend_name",
    "default_namespace",
    "device",
    "function_apply",
    "has_no_values",
    "is_array",
    "is_array_api_strict_namespace",
    "is_cupy_array",
    "is_cupy_namespace",
    "is_dask_array",
    "is_dask_namespace",
    "is_jax_array",
    "is_jax_namespace",
    "is_jax_tracer",
    "is_lazy_array",
    "is_numpy_array",
    "is_numpy_namespace",
    "is_tf_namespace",
    "is_tf_tensor",
    "is_torch_array",
    "is_torch_namespace",
    "layout_problem",
    "loaded_openmp_parallel",
    "name_scope",
    "namespace_of_module",
    "numpy_namespace",
    "require_supported",
    "size",
    "split_masked",
    "tensor_getters",
    "torch_probes",
    "torch_state",
]


# The oldest release of each backend that the test matrix runs (``nox -s oldest``): an
# older one is refused at its first call rather than risk a silent error (older
# PyTorch under torch.compile lost the gradient of a reduction without a word).
OLDEST = {"torch": (2, 13), "jax": (0, 4, 35), "tensorflow": (2, 17)}


@functools.cache
def _version_ok(lib: str) -> bool:
    floor = OLDEST.get(lib)
    module = sys.modules.get(lib)
    if floor is None or module is None:
        return True
    text = str(getattr(module, "__version__", "")).split("+")[0]
    got = tuple(int(p) for p in re.findall(r"\d+", text)[:len(floor)])
    return not got or got >= floor


def require_supported(lib: str) -> None:
    """Raise ImportError where the installed release of a backend is older than the
    oldest one wce_xp is tested with."""
    if not _version_ok(lib):
        floor = ".".join(map(str, OLDEST[lib]))
        found = getattr(sys.modules[lib], "__version__", "?")
        raise ImportError(
            f"wce_xp needs {lib} >= {floor}, the oldest release its tests run on; "
            f"found {lib} {found}: upgrade it (pip install '{lib}>={floor}')")


def is_tf_tensor(x: object) -> bool:
    """A TensorFlow tensor or variable (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.Tensor | tf.Variable)


def array_namespace(*arrays: Any) -> ModuleType:
    """array-api-compat's namespace of the arrays, and wce_xp's own for TensorFlow
    tensors (array-api-compat has none)."""
    if any(is_tf_tensor(a) for a in arrays):
        from . import _tf

        return _tf
    ns: ModuleType = _array_namespace(*arrays)
    return ns


def has_no_values(x: Any) -> bool:
    """An array whose values cannot be read now: a JAX tracer, or a lazy array of
    another library (array-api-compat calls every JAX array lazy; only tracers lack
    values)."""
    return is_jax_tracer(x) if is_jax_array(x) else bool(is_lazy_array(x))


def is_array(x: object) -> bool:
    """True for an array of some library; False for Python and NumPy scalars and lists."""
    # NumPy scalars (np.float32(2.0)) carry __array_namespace__ but are scalars to users.
    return (is_array_api_obj(x) and not isinstance(x, np.generic)) or is_tf_tensor(x)


def name_scope(name: str | None, *arrays: Any) -> Any:
    """TensorFlow's name scope for ``name=`` where the arrays are TensorFlow's (graphs
    built with it keep their names, as with ``tf.nn``'s own ops); elsewhere nothing."""
    import contextlib

    if name is not None and any(is_tf_tensor(a) for a in arrays):
        import tensorflow as tf

        return tf.name_scope(name)
    return contextlib.nullcontext()


def layout_problem(x: Any) -> str | None:
    """Why an array cannot be computed on as the dense array it stands for, with the
    fix; None where it can. (PyTorch's sparse, MKL-DNN and nested tensors have no
    elementwise view of their values.)"""
    if is_torch_array(x):
        import torch

        if getattr(x, "is_nested", False):
            return "a nested tensor; pass a dense tensor (e.g. x.to_padded_tensor(0.0))"
        if x.layout is not torch.strided:
            return f"a tensor of layout {x.layout}; pass a dense tensor (x.to_dense())"
    return None


def is_jax_tracer(x: object) -> bool:
    """True for a JAX tracer (inside ``jit``, ``grad``, ``vmap``...): no concrete values."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    return isinstance(x, jax.core.Tracer)


def is_tf_namespace(xp: object) -> bool:
    """wce_xp's TensorFlow namespace (array-api-compat has none for TensorFlow)."""
    return getattr(xp, "__name__", "") == "wce_xp._tf"


def split_masked(value: Any) -> tuple[Any, Any]:
    """``(data, keep)`` for a NumPy masked array with masked elements (``keep`` False
    there); ``(value, None)`` for anything else. A masked array's hidden data must
    never reach a loss: its mask becomes part of ``mask=``."""
    if isinstance(value, np.ma.MaskedArray):
        hidden = np.ma.getmaskarray(value)
        return np.asarray(value.data), (~hidden if hidden.any() else None)
    return value, None


@functools.cache
def numpy_namespace() -> ModuleType:
    """array-api-compat's NumPy namespace."""
    ns: ModuleType = _array_namespace(np.empty(0))
    return ns


def default_namespace() -> ModuleType:
    """The namespace of a call without any array argument: NumPy's."""
    return numpy_namespace()


def namespace_of_module(xp: Any) -> ModuleType:
    """The array-api-compat namespace for a user-given ``xp`` (a module or a namespace;
    ``tensorflow`` itself gives wce_xp's TensorFlow namespace)."""
    if is_tf_namespace(xp) or getattr(xp, "__name__", "") == "tensorflow":
        from . import _tf

        return _tf
    if hasattr(xp, "asarray"):
        try:
            probe = xp.asarray(0.0)
        except Exception as exc:  # pragma: no cover - exotic namespaces
            raise TypeError(f"xp: {xp!r} is not an array namespace ({exc})") from None
        if isinstance(probe, np.generic):  # pragma: no cover
            probe = np.asarray(probe)
        ns: ModuleType = array_namespace(probe)
        return ns
    raise TypeError(f"xp: expected an array namespace module such as numpy or torch, got {xp!r}")


def backend_name(xp: ModuleType) -> str:
    """A short, stable name for a namespace: numpy, cupy, torch, jax, dask,
    array_api_strict, tensorflow."""
    if is_numpy_namespace(xp):
        return "numpy"
    if is_cupy_namespace(xp):
        return "cupy"
    if is_torch_namespace(xp):
        return "torch"
    if is_jax_namespace(xp):
        return "jax"
    if is_dask_namespace(xp):
        return "dask"
    if is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if is_tf_namespace(xp):
        return "tensorflow"
    return getattr(xp, "__name__", "unknown")


class TorchProbes(NamedTuple):
    """PyTorch's tracing and transform state, as functions (loaded once).

    Each private internal is read here only, with the reason, and falls back to the
    answer that takes the generic, differentiable code where it is missing (slower,
    never wrong). tests/test_compat.py fails if any changes meaning.
    """

    #: inside ``torch.compile``'s trace (public from torch 2.3; dynamo's own before)
    compiling: Callable[[], bool]
    #: inside ``torch.jit.trace`` (public): values read there become constants
    jit_tracing: Callable[[], bool]
    #: a tensor wrapped by a ``torch.func`` transform (vmap, grad, jvp): private, no
    #: public equivalent; missing, every tensor counts as wrapped
    wrapped: Callable[[Any], bool]
    #: a ``torch.func`` transform active anywhere on this thread (private; missing:
    #: always active), where autograd Functions without a functorch rule are refused
    transforms_active: Callable[[], bool]
    #: forward-mode AD active (``torch.autograd.forward_ad``'s level, private; missing:
    #: always active): native kernels see raw memory and would lose the tangents
    forward_ad: Callable[[], bool]


def _always(*_: Any) -> bool:
    return True


@functools.cache
def torch_probes() -> TorchProbes:
    """The probes of :class:`TorchProbes` for the installed PyTorch."""
    import torch
    import torch.autograd.forward_ad as fwad

    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if compiling is None:  # pragma: no cover - torch < 2.3
        dynamo = importlib.import_module("torch._dynamo")
        compiling = getattr(dynamo, "is_compiling", None) or _always
    functorch = getattr(torch._C, "_functorch", None)
    wrapped = getattr(functorch, "is_functorch_wrapped_tensor", None) or _always
    active = getattr(torch._C, "_are_functorch_transforms_active", None) or _always
    if isinstance(getattr(fwad, "_current_level", None), int):
        def forward_ad() -> bool:
            return bool(fwad._current_level >= 0)
    else:  # pragma: no cover - the level moved
        forward_ad = _always
    # torch.jit.is_tracing's own C query, without its Python layer (scripting checks)
    tracing = getattr(torch._C, "_is_tracing", None) or torch.jit.is_tracing
    return TorchProbes(compiling=compiling, jit_tracing=tracing,
                       wrapped=wrapped, transforms_active=active, forward_ad=forward_ad)


@functools.cache
def tensor_getters() -> tuple[Callable[[Any], int] | None, Callable[[Any], Any] | None]:
    """``(version_of, base_of)``: C-level getters of two private PyTorch tensor
    attributes without a public equivalent, or None where PyTorch lacks one.

    * ``Tensor._version``, the in-place modification counter autograd checks (shared
      by views and aliases): the native backward passes make autograd's in-place check
      with it instead of unpacking saved tensors; missing, they unpack them.
    * ``Tensor._base``, the tensor a view was made from: the backward passes read an
      incoming gradient of one value broadcast through it, without making a view;
      missing, they make the view.
    """
    import operator

    import torch

    probe = torch.zeros(2)
    version_of = operator.attrgetter("_version") \
        if isinstance(getattr(probe, "_version", None), int) else None
    base_of = operator.attrgetter("_base") \
        if getattr(probe.expand(2, 2), "_base", None) is probe else None
    return version_of, base_of


def torch_state(tensors: list[Any]) -> tuple[bool, bool]:
    """``(traced, native_ok)`` for a call on PyTorch tensors.

    Traced: inside ``torch.compile`` or ``torch.jit.trace`` (no values; only torch ops
    may be recorded) or a ``torch.func`` transform (``vmap``/``grad``/``jvp`` wrap
    tensors; data-dependent Python control flow is an error there). Native kernels
    also need plain tensors and no active forward-mode AD level: the NumPy and CuPy
    kernels see raw memory, so tangents would be lost; and no active ``torch.func``
    transform even where these tensors are not its (the native autograd Functions
    have no functorch rule, which PyTorch requires there).
    """
    import torch

    p = torch_probes()
    if p.compiling() or p.jit_tracing():
        return True, False
    if any(p.wrapped(t) for t in tensors):
        return True, False
    # (plain tensors under an active transform, captured by the function it maps: the
    # values are there, but autograd Functions without a functorch rule are refused)
    native = (not p.forward_ad() and all(type(t) is torch.Tensor for t in tensors)
              and not p.transforms_active())
    return False, native


# Private internals kept for their measured gain (BENCHMARKS.md, "Private internals"):
# each falls back to the public path where it is missing, and tests/test_compat.py
# fails if it changes meaning.

def function_apply(function: Any) -> Callable[..., Any]:
    """``function.apply`` of a ``torch.autograd.Function`` without its Python layer, for
    callers that have ruled out ``torch.func`` transforms and functorch-wrapped tensors
    (the layer only routes those to functorch): the C method it ends in,
    ``torch._C._FunctionBase.apply`` (private), bound to the Function;
    ``function.apply`` where PyTorch has no such method."""
    import torch

    base = getattr(torch._C, "_FunctionBase", None)
    descriptor = getattr(base, "__dict__", {}).get("apply")
    if descriptor is None or not hasattr(descriptor, "__get__"):
        return function.apply  # type: ignore[no-any-return]
    return descriptor.__get__(None, function)  # type: ignore[no-any-return]


def loaded_openmp_parallel() -> int:
    """The address of ``GOMP_parallel`` in the OpenMP runtime already loaded into this
    process (PyTorch's), found by path in ``/proc/self/maps`` (Linux); 0 where there is
    none. The C kernels then run their threads on that runtime's, which PyTorch's
    operations keep spinning, instead of a second set sharing the cores with them."""
    import ctypes
    import os

    try:
        with open("/proc/self/maps") as maps:  # Linux: the libraries loaded, by path
            paths = sorted({line.split(None, 5)[-1].strip() for line in maps if "omp" in line})
    except OSError:
        return 0
    for path in paths:
        if not os.path.basename(path).startswith(("libgomp", "libiomp5", "libomp")):
            continue
        try:  # the library already loaded: the same runtime, the same threads
            address = ctypes.cast(ctypes.CDLL(path).GOMP_parallel, ctypes.c_void_p).value
        except (OSError, AttributeError):
            continue
        if address:
            return int(address)
    return 0
