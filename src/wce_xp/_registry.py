"""The registry of backends: each library's traits and optional fast implementations.

The front door (:mod:`wce_xp._validation`) classifies a call's arrays once, asks
:func:`lookup` for the :class:`Backend` of their library and uses only what it
declares; it never names a library. A library without an entry gets :data:`GENERIC`:
the array-API code of :mod:`wce_xp._generic` for every rule, which works for any
library implementing the standard. A fast implementation may decline any call
(returning None), and the generic code then runs.

Entries live in the backend modules of :mod:`wce_xp._native`, one ``BACKEND`` each,
loaded on the first call with that library's arrays (:data:`MODULES` is the table; a
test registers a toy backend with :func:`register`). Loading one adds its fast lanes:
exact array types whose commonest calls it answers before the front door runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

Array = Any


@dataclasses.dataclass(frozen=True)
class Check:
    """One value check: every element of ``array`` (where ``mask`` is True, if given)
    lies in ``[lo, hi]`` (``hi = inf``: finite), else ``ValueError(f"{name}: {message}")``."""

    name: str
    message: str
    array: Array
    lo: float
    hi: float
    mask: Array | None = None


@dataclasses.dataclass(frozen=True)
class Backend:
    """What one array library declares: traits (data and small functions the front
    door asks) and fast implementations (``loss`` to ``fast_lanes``; each may return
    None to decline, and the generic code runs).

    Attributes
    ----------
    name : str
        The library's name, as :func:`wce_xp._compat.backend_name` gives it.
    state : callable, optional
        ``state(arrays, device) -> (traced, native, on_device)``. ``traced``: no values
        may be read (a trace, a lazy graph); ``native``: the fast implementations may
        run (not under autodiff transforms they cannot follow); ``on_device``: the
        values live on an accelerator (a read is a synchronization). Default: arrays
        that array-api-compat calls lazy are traced.
    device_of : callable, optional
        ``device_of(array)``: the device the checks compare and new arrays are made on
        (default: array-api-compat's ``device``).
    check_devices : bool
        Whether arrays on two devices are refused by the front door (False where the
        library places operations itself).
    counts_by_shape : bool
        Every element an array's shape names is present, with known extents, so a
        mean's count is the product of extents (default False: a sum of ones, which
        respects what masked and lazy arrays leave out).
    zero_form : {"select", "additive"}
        Which of the generic code's two equal forms of ``|x|`` the library's compiler
        fuses (:func:`wce_xp._generic._core.weighted_loss`).
    sum_block : int
        Elements summed in the loss's dtype before the float64 accumulator
        (:func:`wce_xp._generic._core.reduce_loss`).
    float64_sums : callable, optional
        ``float64_sums(device)``: whether float32 sums may accumulate in float64
        (default: where the namespace has float64).
    own : callable, optional
        ``own(array)``: the library's array as the generic code computes on it (NumPy:
        native byte order; TensorFlow: a variable's value).
    output_dtype : callable, optional
        ``output_dtype(dtype, device)``: the result's dtype for half-precision logits
        (PyTorch under autocast).
    warm_up : callable, optional
        One-time work before the library's first computation.
    loss, grad_hess : callable, optional
        ``loss(z, x, q)``, ``grad_hess(z, x, q)`` on inputs as the front door prepared
        them: one namespace, device and compute dtype, masked elements zeroed.
    reduced : callable, optional
        ``reduced(z, x, q, weight, mask, reduction, axes, acc_dtype)``, asked only for a
        reduction.
    whole : callable, optional
        ``whole(z, x, q, weight, mask, smoothing, focal, reduction, axes)``: every option
        at once, given the labels in their own dtype and the mask not yet applied (the
        front door then casts and masks nothing).
    in_range : callable, optional
        ``in_range(checks) -> list of bool``: the verdicts of :class:`Check` s, in one
        pass each and one read.
    checked_loss : callable, optional
        ``checked_loss(z, x, q, weight, mask, reduction, axes, acc_dtype, checks)``: the
        loss and the value checks in one call (the front door leaves the checks to it).
    fast_lanes : tuple of (type, callable)
        ``hook(labels, logits, pos_weight, validate, reduction)`` answers a call without
        options whose logits are exactly of that type, or returns None (the front door
        then decides).
    describe : callable, optional
        ``describe() -> dict of str``: what runs for this library, for
        :func:`wce_xp.show_config` (compiled kernels, threads).
    """

    name: str
    state: Callable[[list[Array], Any], tuple[bool, bool, bool]] | None = None
    device_of: Callable[[Array], Any] | None = None
    check_devices: bool = True
    counts_by_shape: bool = False
    zero_form: str = "select"
    sum_block: int = 1
    float64_sums: Callable[[Any], bool] | None = None
    own: Callable[[Array], Array] | None = None
    output_dtype: Callable[[Any, Any], Any] | None = None
    warm_up: Callable[[], None] | None = None
    loss: Callable[..., Array | None] | None = None
    reduced: Callable[..., Array | None] | None = None
    grad_hess: Callable[..., tuple[Array, Array] | None] | None = None
    whole: Callable[..., Array | None] | None = None
    in_range: Callable[[list[Check]], list[bool]] | None = None
    checked_loss: Callable[..., Array] | None = None
    fast_lanes: tuple[tuple[type, Callable[..., Array | None]], ...] = ()
    describe: Callable[[], dict[str, str]] | None = None


#: the fast implementations, which :func:`generic_only` switches off (traits stay)
FAST_FIELDS = ("loss", "reduced", "grad_hess", "whole", "in_range", "checked_loss")

#: a library without an entry: the generic code for everything
GENERIC = Backend(name="generic")

#: the libraries with an entry, by the name :func:`wce_xp._compat.backend_name` gives,
#: and the module that declares it (as ``BACKEND``)
MODULES = {
    "numpy": "wce_xp._native._numpy",
    "torch": "wce_xp._native._torch",
    "cupy": "wce_xp._native._cupy",
    "dask": "wce_xp._native._dask",
    "tensorflow": "wce_xp._native._tf",
    "jax": "wce_xp._native._jax",
}

_ENTRIES: dict[str, Backend] = {}
_IN_USE: dict[str, Backend] = {}  # what lookup answers (fast paths off: traits only)
#: exact array type -> fast-lane hook, for the public functions' first look
FAST: dict[type, Callable[..., Array | None]] = {}
_generic_only = False


def register(backend: Backend) -> None:
    """Add (or replace) a library's entry and its fast lanes."""
    _ENTRIES[backend.name] = backend
    _IN_USE[backend.name] = _traits_only(backend) if _generic_only else backend
    if not _generic_only:
        FAST.update(backend.fast_lanes)


def unregister(name: str) -> None:
    """Remove a library's entry (its calls then get the generic code)."""
    backend = _ENTRIES.pop(name, None)
    _IN_USE.pop(name, None)
    for t, _ in backend.fast_lanes if backend is not None else ():
        FAST.pop(t, None)


def lookup(name: str) -> Backend:
    """The entry of a library (loading its module the first time), else :data:`GENERIC`."""
    backend = _IN_USE.get(name)
    if backend is not None:
        return backend
    path = MODULES.get(name)
    if path is None:
        return GENERIC
    declared: Backend = importlib.import_module(path).BACKEND
    register(declared)
    return _IN_USE[name]


def _traits_only(backend: Backend) -> Backend:
    off: dict[str, Any] = dict.fromkeys(FAST_FIELDS)
    return dataclasses.replace(backend, fast_lanes=(), **off)


@contextlib.contextmanager
def generic_only() -> Iterator[None]:
    """Within this block every call takes the generic code: no fast lane and no fast
    implementation (value checks included); traits still apply. For tests comparing
    the two, and for benchmarks."""
    global _generic_only
    old = _generic_only
    _set_generic(True)
    try:
        yield
    finally:
        _set_generic(old)


@contextlib.contextmanager
def without_fast_lanes() -> Iterator[None]:
    """Within this block no fast lane answers: every call goes through the front door
    (the fast implementations still run). For tests comparing the two lanes."""
    saved = dict(FAST)
    FAST.clear()
    try:
        yield
    finally:
        FAST.update(saved)


def _set_generic(on: bool) -> None:
    global _generic_only
    _generic_only = on
    FAST.clear()
    for name, backend in _ENTRIES.items():
        _IN_USE[name] = _traits_only(backend) if on else backend
        if not on:
            FAST.update(backend.fast_lanes)


def entries() -> dict[str, Backend]:
    """The entries loaded so far, by library name (what the parity tests iterate)."""
    return dict(_ENTRIES)


# WCE_XP_GENERIC=1: the generic code everywhere, for a whole process (a test run)
if os.environ.get("WCE_XP_GENERIC", "") not in ("", "0"):
    _set_generic(True)
