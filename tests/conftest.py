"""Backends, the ``xp``/``device`` fixtures and markers for the whole suite."""

from __future__ import annotations

import enum
import importlib
import os

import pytest

# Two host devices for JAX, so that a non-default device can be tested on a CPU.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")


class Backend(enum.Enum):
    NUMPY = "numpy"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH = "torch"
    JAX = "jax"
    DASK = "dask"
    TENSORFLOW = "tensorflow"
    CUPY = "cupy"
    TORCH_CUDA = "torch_cuda"

    @property
    def module_name(self) -> str:
        return {"dask": "dask.array", "jax": "jax.numpy", "torch_cuda": "torch"}.get(
            self.value, self.value
        )


DEFAULT = [b for b in Backend if b not in (Backend.CUPY, Backend.TORCH_CUDA)]


def _selected(config) -> list[Backend]:
    names = config.getoption("--backend")
    if names:
        return [Backend(n) for n in names]
    out = list(DEFAULT)
    # GPU backends join the default set only where a GPU is present.
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            out.append(Backend.CUPY)
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            out.append(Backend.TORCH_CUDA)
    except Exception:
        pass
    return out


def pytest_generate_tests(metafunc):
    if {"xp", "backend", "device"} & set(metafunc.fixturenames):
        backends = _selected(metafunc.config)
        metafunc.parametrize(
            "backend", backends, ids=[b.value for b in backends], indirect=True, scope="session"
        )


def pytest_collection_modifyitems(config, items):
    """With ``--backend``, a test that does not take the backend fixture runs only in
    its home session, so that nox's per-backend sessions do not each run the
    backend-independent tests again. Home: its ``pytest.mark.home(...)`` (the library
    it exercises; "foreign" for tests/test_foreign.py, which its own session runs),
    else numpy. Without ``--backend``, or with a GPU backend (the GPU check is one run,
    and tests such as the PyTorch modules' take CUDA devices when there are some), every
    test runs. Left-out tests are reported as deselected."""
    names = config.getoption("--backend")
    if not names or {"cupy", "torch_cuda"} & set(names):
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            keep.append(item)
            continue
        mark = item.get_closest_marker("home")
        home = mark.args[0] if mark else "numpy"
        (keep if home in names else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _import_backend(backend: Backend):
    try:
        mod = importlib.import_module(backend.module_name)
    except Exception as exc:  # ImportError, or CuPy without CUDA
        pytest.skip(f"{backend.value} is not installed or cannot load: {exc}")
    if backend is Backend.JAX:
        import jax

        jax.config.update("jax_enable_x64", True)
    if backend is Backend.CUPY:
        try:
            mod.cuda.runtime.getDeviceCount()
        except Exception as exc:
            pytest.skip(f"cupy: no usable CUDA device ({exc})")
    if backend is Backend.TORCH_CUDA and not mod.cuda.is_available():
        pytest.skip("torch_cuda: torch has no CUDA device here")
    return mod


@pytest.fixture(scope="session")
def backend(request) -> Backend:
    """The backend under test."""
    return request.param


@pytest.fixture(scope="session")
def xp(backend):
    """The array-api-compat namespace of the backend under test (skips if not installed)."""
    from array_api_compat import array_namespace

    mod = _import_backend(backend)
    if backend is Backend.TENSORFLOW:
        from ._helpers import tf_test_namespace

        return tf_test_namespace()
    if backend is Backend.TORCH_CUDA:
        probe = mod.zeros(1, device="cuda")
    elif backend is Backend.DASK:
        probe = mod.zeros(1)
    else:
        probe = mod.asarray([0.0])
    return array_namespace(probe)


@pytest.fixture(scope="session")
def device(xp, backend):
    """The device tests create arrays on (CUDA for torch_cuda, else the default)."""
    if backend is Backend.TORCH_CUDA:
        import torch

        return torch.device("cuda")
    return None
