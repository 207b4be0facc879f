"""torchvision's own tests of ``torchvision.ops.sigmoid_focal_loss``, ported to wce_xp.

Source: ``test/test_ops.py``, ``TestFocalLoss`` (``test_correct_ratio``,
``test_equal_ce_loss``; ``test_jit`` is TorchScript, out of scope). torchvision's
``alpha=-1`` means no alpha term: wce_xp spells it ``alpha=None``. Inputs are
torchvision's "diverse" pairs: logits of probabilities in small (0, 0.2), big
(0.8, 1) and random ranges against all-zero, all-one and random binary targets.
torchvision runs float32 (and half on GPUs) with tolerance 1e-5 (1e-3 for half);
here half runs where the backend has it, with the half tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp

from ._common import gradient, make, to_numpy, with_grad


def _diverse_pair(seed, shape=(5, 2)):
    rng = np.random.default_rng(seed)
    ranges = {"small": (0.0, 0.2), "big": (0.8, 1.0), "zeros": (0.0, 0.0),
              "ones": (1.0, 1.0), "random": (0.0, 1.0)}

    def tensor(kind):
        if kind == "random_binary":
            return rng.integers(0, 2, shape).astype(np.float64)
        lo, hi = ranges[kind]
        return rng.uniform(lo, hi, shape) if hi > lo else np.full(shape, lo)

    inputs, targets = [], []
    for i_kind, t_kind in [("small", "zeros"), ("small", "ones"), ("small", "random_binary"),
                           ("big", "zeros"), ("big", "ones"), ("big", "random_binary"),
                           ("random", "zeros"), ("random", "ones"),
                           ("random", "random_binary")]:
        p = tensor(i_kind)
        inputs.append(np.log(p / (1 - p)))
        targets.append(tensor(t_kind))
    return np.concatenate(inputs), np.concatenate(targets)


def _dtypes(backend):
    return ["float32"] if backend.value == "array_api_strict" else ["float32", "float16"]


@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.58, 1.0])
@pytest.mark.parametrize("gamma", [0, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_correct_ratio(xp, device, backend, alpha, gamma, seed):
    x, z = _diverse_pair(seed)
    for dtype in _dtypes(backend):
        xa, za = make(xp, device, x, dtype), make(xp, device, z, dtype)
        a = None if alpha < 0 else alpha
        focal = to_numpy(wce_xp.sigmoid_focal_loss(za, xa, gamma=gamma, alpha=a))
        ce = to_numpy(wce_xp.binary_cross_entropy_with_logits(xa, za, reduction="none"))
        assert np.all(focal <= ce), "focal loss must be less or equal to cross entropy loss"
        xv = to_numpy(xa).astype(np.float64)
        zv = to_numpy(za).astype(np.float64)
        prob = 1.0 / (1.0 + np.exp(-xv))
        p_t = prob * zv + (1 - prob) * (1 - zv)
        correct = (1.0 - p_t) ** gamma
        if alpha >= 0:
            correct = correct * (alpha * zv + (1 - alpha) * (1 - zv))
        tol = 1e-3 if dtype == "float16" else 1e-5
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = focal.astype(np.float64) / ce.astype(np.float64)
        # torchvision compares the ratio; where the cross-entropy rounds to 0 the ratio
        # is 0/0 there as well as here, so those elements are compared as values
        ok = ce != 0
        np.testing.assert_allclose(ratio[ok], correct[ok], rtol=tol, atol=tol)
        assert np.all(focal[~ok] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", [2, 3])
def test_equal_ce_loss(xp, device, backend, reduction, seed):
    """alpha=-1 (None) and gamma=0: the focal loss is the cross-entropy, value and grad."""
    x, z = _diverse_pair(seed)
    for dtype in _dtypes(backend):
        za = make(xp, device, z, dtype)
        fl = wce_xp.sigmoid_focal_loss(za, make(xp, device, x, dtype), gamma=0.0,
                                       reduction=reduction)
        ce = wce_xp.binary_cross_entropy_with_logits(make(xp, device, x, dtype), za,
                                                     reduction=reduction)
        tol = 1e-3 if dtype == "float16" else 1e-5
        np.testing.assert_allclose(to_numpy(fl).astype(float), to_numpy(ce).astype(float),
                                   rtol=tol, atol=tol)
        n = 1.0 if reduction == "sum" else float(x.size)

        def gh(v, za=za, n=n):
            return wce_xp.weighted_cross_entropy_grad_hess(za, v)[0] / n

        g_fl = gradient(backend, xp, device, with_grad(
            lambda v, za=za: wce_xp.sigmoid_focal_loss(za, v, gamma=0.0, reduction=reduction),
            gh), x, dtype)
        g_ce = gradient(backend, xp, device, with_grad(
            lambda v, za=za: wce_xp.binary_cross_entropy_with_logits(v, za,
                                                                     reduction=reduction),
            gh), x, dtype)
        np.testing.assert_allclose(g_fl.astype(float), g_ce.astype(float), rtol=tol, atol=tol)
