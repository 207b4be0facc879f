"""The one compiled part: ``wce_xp._fused``, the NumPy engine's loss kernels in C.

Everything else is in pyproject.toml. The extension is optional: where it cannot be
built (no C compiler), the package installs without it and the NumPy engine uses its
ufunc kernels instead (same results within the accuracy bounds; slower).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


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
    ext_modules=[Extension("wce_xp._fused", ["src/wce_xp/_fused.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
