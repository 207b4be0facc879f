"""The private framework internals read in ``wce_xp._compat`` still mean what we use
them for. Each probe is checked where it must say yes and where it must say no: a
PyTorch release that moves or changes one fails here, loudly, rather than silently
sending traced or batched tensors to the native kernels."""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp
from wce_xp import _compat
from wce_xp._generic import _core

# Backend-independent tests here run in the torch session (tests/conftest.py).
pytestmark = pytest.mark.home("torch")

torch = pytest.importorskip("torch")


@pytest.fixture
def probes():
    p = _compat.torch_probes()
    # no probe may be the fallback that answers yes to everything here (the private
    # internal it stands for went missing)
    assert p.wrapped is not _compat._always
    assert p.transforms_active is not _compat._always
    assert p.forward_ad is not _compat._always
    return p


def test_eager_tensors_are_neither_traced_nor_wrapped(probes):
    t = torch.ones(3)
    assert not probes.compiling()
    assert not probes.jit_tracing()
    assert not probes.wrapped(t)
    assert not probes.transforms_active()
    assert not probes.forward_ad()
    assert _compat.torch_state([t]) == (False, True)


def test_vmap_wraps_tensors_and_is_active(probes):
    seen = {}

    def f(t):
        seen["wrapped"] = probes.wrapped(t)
        seen["active"] = probes.transforms_active()
        seen["state"] = _compat.torch_state([t])
        return t * 2

    torch.func.vmap(f)(torch.ones(2, 3))
    assert seen == {"wrapped": True, "active": True, "state": (True, False)}


def test_grad_transform_is_active_for_captured_tensors(probes):
    captured = torch.ones(3)
    seen = {}

    def f(t):
        seen["captured_wrapped"] = probes.wrapped(captured)
        seen["active"] = probes.transforms_active()
        seen["state"] = _compat.torch_state([captured])
        return (t * captured).sum()

    torch.func.grad(f)(torch.ones(3))
    assert seen == {"captured_wrapped": False, "active": True, "state": (False, False)}


def test_forward_ad_level(probes):
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        assert probes.forward_ad()
    assert not probes.forward_ad()


def test_jit_tracing(probes):
    seen = []

    def f(t):
        seen.append(probes.jit_tracing())
        return t + 1

    torch.jit.trace(f, (torch.ones(2),), check_trace=False)
    assert seen == [True]


def test_compiling(probes):
    seen = []

    def f(t):
        seen.append(probes.compiling())
        return t + 1

    try:
        torch.compile(f, backend="eager")(torch.ones(2))
    except Exception as exc:  # pragma: no cover - no compiler for this platform
        pytest.skip(f"torch.compile unavailable: {exc}")
    assert seen and all(seen)


def test_layout_problems_name_the_fix():
    assert _compat.layout_problem(torch.ones(2)) is None
    assert _compat.layout_problem(np.ones(2)) is None
    assert "to_dense" in _compat.layout_problem(torch.ones(2).to_sparse())


def test_where_takes_numbers_on_every_revision():
    xs = pytest.importorskip("array_api_strict")
    with xs.ArrayAPIStrictFlags(api_version="2023.12"):
        a = xs.asarray([1.0, 2.0], dtype=xs.float32)
        out = _core.where(a > 1.5, a, 0.0, xp=xs)
        assert out.dtype == xs.float32
        np.testing.assert_array_equal(np.asarray(out._array), [0.0, 2.0])
        out = _core.where(a > 1.5, -1.0, a, xp=xs)
        np.testing.assert_array_equal(np.asarray(out._array), [1.0, -1.0])


@pytest.mark.parametrize("call", ["express", "general"])
def test_backends_older_than_the_tested_floor_are_refused(call):
    import subprocess
    import sys

    options = "" if call == "express" else ", weight=torch.ones(2)"
    code = ("import torch\n"
            "torch.__version__ = '2.1.0'\n"
            "import wce_xp\n"
            "wce_xp.binary_cross_entropy_with_logits(torch.zeros(2), torch.zeros(2)"
            f"{options})\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert "ImportError: wce_xp needs torch >= 2.13" in run.stderr


def test_the_floors_match_the_package_metadata():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # (Python 3.11 and newer)

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    names = {"tensorflow": "tensorflow-cpu"}  # (the extra installs TensorFlow's CPU package)
    for lib, floor in _compat.OLDEST.items():
        assert f"{names.get(lib, lib)}>={'.'.join(map(str, floor))}" in extras[lib]


def test_view_base_is_the_viewed_tensor():
    base_of = _compat.tensor_getters()[1]
    assert base_of is not None
    one = torch.tensor(2.5)
    expanded = one.expand(3, 4)
    assert base_of(expanded) is one
    assert base_of(one) is None
    from wce_xp._native._torch import _one_value

    assert _one_value(expanded) == 2.5
    assert _one_value((torch.tensor(2 + 3j).expand(3, 4)).real) == 2.0


def test_version_counts_inplace_changes_shared_by_aliases():
    version_of = _compat.tensor_getters()[0]
    assert version_of is not None
    t = torch.zeros(3)
    alias = t.detach()
    v = version_of(alias)
    assert isinstance(v, int)
    t.add_(1.0)  # through the original: the alias's counter moves too
    assert version_of(alias) == v + 1
    assert version_of(t) == v + 1


def test_raw_function_apply_means_function_apply():
    # the fast lane calls autograd.Function.apply's C method without its Python
    # layer (torch._C._FunctionBase.apply, private): the same node, values and gradient
    from wce_xp._native import _torch

    fn = _torch._function()
    raw = wce_xp._compat.function_apply(fn)
    assert raw is not fn.apply, "the private method went missing: the fallback runs"
    x = torch.randn(4, 3, requires_grad=True)
    z = torch.rand(4, 3)
    a, b = raw(z, x, 2.0, "numpy"), fn.apply(z, x, 2.0, "numpy")
    assert type(a.grad_fn) is type(b.grad_fn)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    (ga,) = torch.autograd.grad(a.sum(), x)
    (gb,) = torch.autograd.grad(b.sum(), x)
    torch.testing.assert_close(ga, gb, rtol=0, atol=0)


def test_the_loaded_openmp_runtime_is_found_where_pytorch_uses_openmp():
    """The runtime PyTorch loaded is found, by path, with a GOMP_parallel entry point
    (a PyTorch built with another parallel backend has none to share: 0)."""
    address = _compat.loaded_openmp_parallel()
    if not getattr(torch._C, "has_openmp", False):
        pytest.skip("this PyTorch does not use OpenMP")
    assert address != 0, "PyTorch's OpenMP runtime was not found among the loaded files"
