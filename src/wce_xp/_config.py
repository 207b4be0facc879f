"""What runs here: the version, the compiled kernels, the threads and the array libraries
installed (:func:`show_config`, as ``numpy.show_config()``)."""

from __future__ import annotations

import sys
from typing import IO, Any

from . import _registry
from ._version import __version__

# the array libraries wce_xp runs on, by their distributions' names
_LIBRARIES = (("numpy", "numpy"), ("array-api-compat", "array_api_compat"),
              ("array-api-strict", "array_api_strict"), ("torch", "torch"),
              ("jax", "jax"), ("dask", "dask"), ("tensorflow", "tensorflow"),
              ("tensorflow-cpu", "tensorflow"), ("cupy-cuda12x", "cupy"),
              ("keras", "keras"), ("triton", "triton"))


def config() -> dict[str, Any]:
    """The facts :func:`show_config` prints, as a dictionary."""
    import importlib.metadata as md
    import platform

    libraries: dict[str, str] = {}
    for dist, module in _LIBRARIES:
        try:
            libraries.setdefault(module, md.version(dist))
        except md.PackageNotFoundError:
            continue
    numpy_engine = _registry.lookup("numpy").describe
    return {
        "wce_xp": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.machine()}",
        "numpy engine": {} if numpy_engine is None else numpy_engine(),
        "array libraries": libraries,
    }


def show_config(file: IO[str] | None = None) -> None:
    """Print which engine runs here, its threads, and the array libraries installed.

    The version, whether the compiled kernels are present and with which vector
    instructions their loops run, the NumPy engine's threads, and the array libraries
    installed with their versions (as ``numpy.show_config()``).

    Parameters
    ----------
    file : file object, optional
        Where to print (default: standard output).

    Examples
    --------
    >>> import wce_xp
    >>> wce_xp.show_config()  # doctest: +ELLIPSIS
    wce_xp ...
    """
    out = sys.stdout if file is None else file
    c = config()
    print(f"wce_xp {c['wce_xp']}", file=out)
    print(f"  python            {c['python']}", file=out)
    print(f"  platform          {c['platform']}", file=out)
    for key, value in c["numpy engine"].items():
        print(f"  {key:<17} {value}", file=out)
    libs = ", ".join(f"{k} {v}" for k, v in c["array libraries"].items())
    print(f"  array libraries   {libs}", file=out)
