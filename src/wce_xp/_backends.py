"""Import a backend by its short name, with a clear message when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "dask", "cupy")
CLI_BACKENDS = ("numpy", "torch", "cupy", "jax", "dask")

MODULES = {"numpy": "numpy", "array_api_strict": "array_api_strict", "torch": "torch",
           "jax": "jax.numpy", "dask": "dask.array", "cupy": "cupy"}
EXTRAS = {"torch": "torch", "jax": "jax", "dask": "dask", "cupy": "cupy",
          "array_api_strict": "test", "numpy": ""}


class BackendUnavailable(Exception):
    """The backend's library is not installed or cannot run here."""


def load(name: str) -> ModuleType:
    """The library module for a backend name (``jax`` gives ``jax.numpy``)."""
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    try:
        mod = importlib.import_module(MODULES[name])
        if name == "cupy":
            mod.cuda.runtime.getDeviceCount()
    except Exception as exc:
        extra = EXTRAS[name]
        hint = f" (pip install 'wce_xp[{extra}]')" if extra else ""
        raise BackendUnavailable(f"backend {name!r} is not available: {exc}{hint}") from None
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    return mod


def installed() -> list[str]:
    """The backends that import and run here, in a fixed order."""
    out = []
    for name in BACKENDS:
        try:
            load(name)
        except BackendUnavailable:
            continue
        out.append(name)
    return out
