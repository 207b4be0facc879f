"""The one compiled part: ``wce_xp._fused``, the NumPy engine's loss kernels in C.

Everything else is in pyproject.toml. The extension is optional: where it cannot be
built (no C compiler), the package installs without it and the NumPy engine uses its
ufunc kernels instead (same results within the accuracy bounds; slower).
"""

import os
import platform
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The stable ABI (Py_LIMITED_API) from Python 3.11, where the buffer protocol the kernels
# read arrays through joined it: one abi3 wheel serves 3.11 and every later CPython;
# 3.10 (and free-threaded builds, which have no stable ABI) get a wheel of their own.
LIMITED = (sys.version_info >= (3, 11) and platform.python_implementation() == "CPython"
           and not sysconfig.get_config_var("Py_GIL_DISABLED"))
# WCE_XP_PURE=1: the pure-Python wheel (py3-none-any) that every platform can install
# without a compiler; the NumPy engine then runs its ufunc kernel.
PURE = os.environ.get("WCE_XP_PURE", "") not in ("", "0")


class BuildExt(build_ext):  # type: ignore[misc]
    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            flags = ["/O2"]
        else:
            # -fno-trapping-math: FP operations may be evaluated on both sides of a
            # selection, which lets the loops vectorize; nothing here enables FP traps,
            # and NaN/infinity semantics are untouched (no -ffast-math). Fused
            # multiply-adds stay allowed: every element runs through the same
            # fixed-length vector block (see _fused.c), so its bits do not depend on
            # where a chunk or a Dask block ends.
            flags = ["-O3", "-fno-trapping-math"]
        for ext in self.extensions:
            ext.extra_compile_args = flags
        super().build_extensions()


setup(
    ext_modules=[] if PURE else [Extension(
        "wce_xp._fused", ["src/wce_xp/_fused.c"], optional=True, py_limited_api=LIMITED,
        define_macros=[("Py_LIMITED_API", "0x030B0000")] if LIMITED else [])],
    cmdclass={"build_ext": BuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if LIMITED else {},
)
