"""The registry of backends: one parity test over every entry (each backend's fast
implementations and fast lane against the generic code, every option of every public
function), the entries' declarations, and a toy backend registered the way the
"adding a backend" guide says, which gets the generic results through the registry.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

import wce_xp
from wce_xp import _registry
from wce_xp._generic import _core

from . import _reference as R
from ._helpers import make, to_numpy

wce = wce_xp.weighted_cross_entropy_with_logits

# every option of the loss family, one set per case (arrays as NumPy; made per backend)
CASES = {
    "plain": {},
    "pos_weight per class": {"pos_weight": "q"},
    "weight": {"pos_weight": "q", "weight": "w"},
    "mask": {"pos_weight": 2.0, "mask": "m"},
    "weight and mask": {"pos_weight": "q", "weight": "w", "mask": "m"},
    "smoothing": {"pos_weight": 2.0, "label_smoothing": 0.1},
    "axis 0": {"pos_weight": "q", "axis": 0},
}
REDUCTIONS = ["none", "sum", "mean", "weighted_mean"]


def _data(dtype, shape=(257, 5)):
    rng = np.random.default_rng(7)
    x = (rng.standard_cauchy(shape) * 4).astype(dtype)
    x.flat[:4] = [0.0, 1e30, -1e30, 3.0]
    z = rng.uniform(size=shape).astype(dtype)
    z[::2] = np.round(z[::2])
    arrays = {"q": rng.uniform(0, 4, shape[-1:]).astype(dtype),
              "w": rng.uniform(0, 2, (shape[0], 1)).astype(dtype),
              "m": rng.uniform(size=shape) > 0.25}
    return x, z, arrays


def _kw(case, arrays, xp, device):
    return {k: make(xp, device, arrays[v]) if isinstance(v, str) else v
            for k, v in CASES[case].items()}


def _calls(z, x, kw, reduction):
    """Every public function on one set of inputs and options."""
    out = {}
    if reduction == "none" and "axis" in kw:
        return out
    out["weighted"] = wce(z, x, kw.get("pos_weight", 1.0), reduction=reduction,
                          **{k: v for k, v in kw.items() if k != "pos_weight"})
    rest = {k: v for k, v in kw.items() if k != "pos_weight"}
    if "pos_weight" not in kw:
        out["sigmoid"] = wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction=reduction,
                                                                  **rest)
    out["focal"] = wce_xp.sigmoid_focal_loss(z, x, gamma=1.5, alpha=0.25, reduction=reduction,
                                             **kw)
    if reduction in ("none", "sum", "mean") and set(kw) <= {"pos_weight", "weight"}:
        out["bce"] = wce_xp.binary_cross_entropy_with_logits(
            x, z, kw.get("weight"), kw.get("pos_weight"), reduction=reduction)
    if reduction == "none" and set(kw) <= {"pos_weight", "weight", "label_smoothing"}:
        g, h = wce_xp.weighted_cross_entropy_grad_hess(z, x, **kw)
        out["grad"], out["hess"] = g, h
    return out


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_entry_equals_the_generic_code(xp, device, backend, dtype, case, reduction):
    """The parity test over the registry: for the inputs' library, its entry's fast
    implementations and fast lane (whatever they take of the call) give the generic
    code's values, for every option and every public function."""
    x, z, arrays = _data(dtype)
    xa, za = make(xp, device, x), make(xp, device, z)
    kw = _kw(case, arrays, xp, device)
    fast = _calls(za, xa, kw, reduction)
    with _registry.generic_only():
        ref = _calls(za, xa, kw, reduction)
    assert fast.keys() == ref.keys()
    # elementwise within 8 eps; sums in another order within a sum's rounding; the
    # gradient's two terms cancel near its zero, so its error is a few eps of the
    # scale of those terms, (1 - z)σ(x) + qzσ(-x) ≤ max(1, q)·w ≤ 8 here
    eps = float(np.finfo(dtype).eps)
    rtol = 8 * eps if reduction == "none" else (2e-6 if dtype == "float32" else 1e-12)
    for name in fast:
        atol = 8 * eps * 8 if name == "grad" else R.TINY[dtype]
        np.testing.assert_allclose(to_numpy(fast[name]), to_numpy(ref[name]), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=name)


def test_each_entry_declares_a_backend_of_its_name():
    """Every library the registry names has a module declaring a Backend of that name,
    and what it declares is of the registry's kinds (traits, hooks, fast lanes)."""
    for name, path in _registry.MODULES.items():
        try:
            module = importlib.import_module(path)
        except ImportError:  # the library itself is not installed: nothing to declare
            continue
        b = module.BACKEND
        assert isinstance(b, _registry.Backend) and b.name == name
        assert b.zero_form in ("select", "additive") and b.sum_block >= 1
        for field in _registry.FAST_FIELDS:
            hook = getattr(b, field)
            assert hook is None or callable(hook), (name, field)
        for t, hook in b.fast_lanes:
            assert isinstance(t, type) and callable(hook)


def test_generic_only_switches_fast_paths_off_and_keeps_traits():
    np_entry = _registry.lookup("numpy")
    assert np_entry.loss is not None and _registry.FAST
    with _registry.generic_only():
        off = _registry.lookup("numpy")
        assert all(getattr(off, f) is None for f in _registry.FAST_FIELDS)
        assert off.counts_by_shape == np_entry.counts_by_shape and off.own is np_entry.own
        assert not _registry.FAST
    assert _registry.lookup("numpy") is np_entry and np.ndarray in _registry.FAST


def test_a_library_without_an_entry_gets_the_generic_code():
    assert _registry.lookup("some_library_nobody_named") is _registry.GENERIC
    strict = pytest.importorskip("array_api_strict")
    x = strict.asarray([-2.0, 0.0, 3.0])
    z = strict.asarray([1.0, 0.5, 0.0])
    got = wce(z, x, 2.0)
    ref = _core.weighted_loss(z, x, 2.0, xp=strict)
    assert type(got) is type(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_a_toy_backend_registered_as_the_guide_says():
    """CONTRIBUTING.md's "Adding a backend": a library gets an entry (here array-api-strict, which
    has none) whose fast implementation declines what it cannot take; the front door
    calls it, and the results are the generic code's either way."""
    strict = pytest.importorskip("array_api_strict")
    seen = []

    def loss(z, x, q):
        seen.append(type(q).__name__)
        if not isinstance(q, float):
            return None  # declined: the generic code runs
        return _core.weighted_loss(z, x, q, xp=strict)

    def fast_lane(labels, logits, pos_weight, validate, reduction):
        seen.append("lane")
        return None  # a lane may decline any call

    toy = _registry.Backend(name="array_api_strict", counts_by_shape=True, loss=loss,
                            fast_lanes=((type(strict.asarray(0.0)), fast_lane),))
    x = strict.asarray([[-2.0, 0.0, 3.0], [1e3, -1e3, 0.5]])
    z = strict.asarray([[1.0, 0.5, 0.0], [0.0, 1.0, 1.0]])
    q = strict.asarray([1.0, 2.0, 3.0])
    before = [wce(z, x, 2.0), wce(z, x, q, reduction="mean")]
    _registry.register(toy)
    try:
        assert _registry.lookup("array_api_strict") is toy
        after = [wce(z, x, 2.0), wce(z, x, q, reduction="mean")]
    finally:
        _registry.unregister("array_api_strict")
    assert seen == ["lane", "float", "lane", "Array"]  # the lane, then the hook, each call
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _registry.lookup("array_api_strict") is _registry.GENERIC
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.loss = None  # type: ignore[misc]  # (entries are declarations)
