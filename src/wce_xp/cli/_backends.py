"""Import a backend by its short name, with a clear message when it is missing."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "dask", "tensorflow", "cupy")
CLI_BACKENDS = ("numpy", "torch", "cupy", "jax", "dask", "tensorflow")

# TensorFlow has no array-API namespace of its own: wce_xp's adapter is its module here.
MODULES = {"numpy": "numpy", "array_api_strict": "array_api_strict", "torch": "torch",
           "jax": "jax.numpy", "dask": "dask.array", "cupy": "cupy",
           "tensorflow": "wce_xp._tf"}
EXTRAS = {"torch": "torch", "jax": "jax", "dask": "dask", "cupy": "cupy",
          "array_api_strict": "test", "numpy": "", "tensorflow": "tensorflow"}


class BackendUnavailable(Exception):
    """The backend's library is not installed or cannot run here."""


@contextlib.contextmanager
def native_stderr_closed() -> Iterator[None]:
    """File descriptor 2 closed to C++ log lines for the block: TensorFlow's start-up
    notices (oneDNN, absl) at import and, in releases that log before absl is set up
    (2.16, 2.17), XLA's at its first compilation; they would break the command line's
    one-line output. Python errors still raise as usual."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_quietly(module: str) -> ModuleType:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_closed():
        return importlib.import_module(module)


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (its device node), without importing anything."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def install_hint(name: str) -> str:
    """The command that installs a backend here. A plain ``pip install torch`` (or the
    torch extra) pulls a multi-GB CUDA build; without an NVIDIA GPU, PyTorch's CPU
    wheel is the one to install, and TensorFlow's CPU package likewise."""
    if name == "torch" and not has_nvidia_gpu():
        return ("pip install torch --index-url https://download.pytorch.org/whl/cpu "
                "(PyTorch's CPU build: this machine has no NVIDIA GPU)")
    extra = EXTRAS.get(name, "")
    return f"pip install 'wce_xp[{extra}]'" if extra else ""


def load(name: str) -> ModuleType:
    """The library module for a backend name (``jax`` gives ``jax.numpy``,
    ``tensorflow`` wce_xp's TensorFlow namespace)."""
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    try:
        if name == "tensorflow" and "tensorflow" not in sys.modules:
            mod = _import_quietly(MODULES[name])
        else:
            mod = importlib.import_module(MODULES[name])
        if name == "cupy":
            mod.cuda.runtime.getDeviceCount()
    except Exception as exc:
        hint = install_hint(name)
        hint = f" ({hint})" if hint else ""
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
