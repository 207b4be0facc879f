"""optax's own tests of ``sigmoid_binary_cross_entropy`` and ``sigmoid_focal_loss``,
ported to wce_xp on every backend, through both entry points: wce_xp's functions
(labels first) and ``wce_xp.optax`` (optax's signatures, logits first).

Source: ``optax/losses/_classification_test.py`` (``SigmoidCrossEntropyTest``,
``SigmoidFocalLossTest``). optax takes ``(logits, labels)``; wce_xp takes labels first.
optax's ``alpha=None`` and ours mean the same (no alpha term). Tolerances are optax's
CPU ones (rtol 2e-5 for the focal loss, 1e-6 for the cross-entropy).
"""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp
from wce_xp import optax as wox

from ._common import gradient, make, to_numpy, with_grad

# Backend-independent tests here run in the jax session (tests/conftest.py).
pytestmark = pytest.mark.home("jax")

RTOL = 2e-5
ENTRY = "wce_xp"


@pytest.fixture(params=["wce_xp", "wce_xp.optax"], autouse=True)
def entry(request):
    """Every test through both entry points."""
    global ENTRY
    ENTRY = request.param
    yield request.param
    ENTRY = "wce_xp"


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _logit(p):
    p = np.asarray(p, np.float64)
    return np.log(p / (1.0 - p))


@pytest.mark.parametrize(
    ("preds", "labels", "expected"),
    [
        ([-1e09, -1e-09], [1.0, 0.0], 5e08),
        ([-1e09, -1e-09], [0.0, 1.0], 0.3465736),
        ([1e09, 1e-09], [1.0, 0.0], 0.3465736),
        ([1e09, 1e-09], [0.0, 1.0], 5e08),
        ([-1e09, 1e-09], [1.0, 0.0], 5e08),
        ([-1e09, 1e-09], [0.0, 1.0], 0.3465736),
        ([1e09, -1e-09], [1.0, 0.0], 0.3465736),
        ([1e09, -1e-09], [0.0, 1.0], 5e08),
        ([0.0, 0.0], [1.0, 0.0], 0.6931472),
        ([0.0, 0.0], [0.0, 1.0], 0.6931472),
    ],
)
def test_sigmoid_cross_entropy(xp, device, preds, labels, expected):
    """SigmoidCrossEntropyTest.test_sigmoid_cross_entropy (mean of the elementwise loss)."""
    z, x = make(xp, device, labels, "float64"), make(xp, device, preds, "float64")
    if ENTRY == "wce_xp.optax":
        out = np.mean(to_numpy(wox.sigmoid_binary_cross_entropy(x, z)))
    else:
        out = to_numpy(wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction="mean"))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


YS = np.array([[2.0, 0.1, -2.0], [0.3, -0.1, 1.2]], dtype=np.float32)
TS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
LARGE_YS = _logit([0.9, 0.98, 0.3, 0.99])
SMALL_YS = _logit([0.1, 0.02, 0.09, 0.15])
ONES_TS = np.ones(4)


def _focal(xp, device, logits, labels, **kw):
    z = make(xp, device, np.asarray(labels, np.float32))
    x = make(xp, device, np.asarray(logits, np.float32))
    if ENTRY == "wce_xp.optax":
        return to_numpy(wox.sigmoid_focal_loss(x, z, **kw))
    return to_numpy(wce_xp.sigmoid_focal_loss(z, x, **kw))


def _ce(xp, device, logits, labels):
    z = make(xp, device, np.asarray(labels, np.float32))
    x = make(xp, device, np.asarray(logits, np.float32))
    if ENTRY == "wce_xp.optax":
        return to_numpy(wox.sigmoid_binary_cross_entropy(x, z))
    return to_numpy(wce_xp.sigmoid_cross_entropy_with_logits(z, x))


def test_focal_equals_ce(xp, device):
    """If gamma == 0 (and no alpha) we expect the cross-entropy."""
    np.testing.assert_allclose(_focal(xp, device, YS, TS, gamma=0.0), _ce(xp, device, YS, TS),
                               rtol=RTOL)


def test_focal_gamma_zero_matches_binary_cross_entropy(xp, device):
    logits = np.array([[-1.0, 0.0, 1.0], [2.0, -2.0, 0.5]])
    labels = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(_focal(xp, device, logits, labels, gamma=0.0),
                               _ce(xp, device, logits, labels), rtol=RTOL)


def test_scale(xp, device):
    """This test should catch problems with p_t."""
    gamma = 2
    focal = _focal(xp, device, YS, TS, gamma=gamma)
    ce = _ce(xp, device, YS, TS)
    p = _sigmoid(YS)
    p_t = p * TS + (1 - p) * (1 - TS)
    np.testing.assert_allclose(focal / ce, (1 - p_t) ** gamma, rtol=RTOL)


def test_large_logit_fl_less_than_ce(xp, device):
    """gamma 2, alpha 0.5: the impact of large logits is reduced."""
    focal = _focal(xp, device, LARGE_YS, ONES_TS, gamma=2, alpha=0.5)
    ce = _ce(xp, device, LARGE_YS, ONES_TS)
    expected = 2.0 / ((1.0 - _sigmoid(LARGE_YS.astype(np.float32))) ** 2)
    np.testing.assert_allclose(ce / focal, expected, rtol=RTOL)


def test_small_logit_fl_less_than_ce(xp, device):
    """gamma 2: small logits retain their weight."""
    focal = _focal(xp, device, SMALL_YS, ONES_TS, gamma=2)
    ce = _ce(xp, device, SMALL_YS, ONES_TS)
    expected = 1.0 / ((1.0 - _sigmoid(SMALL_YS.astype(np.float32))) ** 2)
    np.testing.assert_allclose(ce / focal, expected, rtol=RTOL)


def test_alpha_one(xp, device):
    """Re-weighting with alpha = 1."""
    np.testing.assert_allclose(_focal(xp, device, YS, TS, gamma=0.0, alpha=1.0),
                               _ce(xp, device, YS, TS) * TS, rtol=RTOL)


def test_ignore_positive(xp, device):
    """alpha == 0: positive examples do not matter."""
    focal = _focal(xp, device, YS, TS, alpha=0.0)
    ce = _ce(xp, device, YS, TS)
    assert np.all(ce[TS == 1] > 0)
    assert np.all(focal[TS == 1] == 0)


def test_ignore_negative(xp, device):
    """alpha == 1: negative examples do not matter."""
    focal = _focal(xp, device, YS, TS, alpha=1.0)
    ce = _ce(xp, device, YS, TS)
    assert np.all(ce[TS == 0] > 0)
    assert np.all(focal[TS == 0] == 0)


def test_extreme_logits_finite_gradients(xp, device, backend):
    """gamma 0.5 at logits +-100, +-75, +-50 with soft labels: finite loss, gradient
    (and Hessian, under JAX as in optax)."""
    logits = np.array([100.0, -100.0, 75.0, -75.0, 50.0, -50.0])
    labels = make(xp, device, np.array([0.9, 0.1, 0.8, 0.2, 1.0, 0.0]))

    def loss(v):
        return wce_xp.sigmoid_focal_loss(labels, v, gamma=0.5)

    def fd_grad(v):  # backends without autodiff: a central difference of our loss
        h = 1e-6
        return (loss(v + h) - loss(v - h)) / (2 * h)

    assert np.isfinite(to_numpy(loss(make(xp, device, logits)))).all()
    g = gradient(backend, xp, device, with_grad(loss, fd_grad), logits)
    assert np.isfinite(g).all()
    if backend.value == "jax":
        import jax

        hess = jax.hessian(lambda v: loss(v).sum())(make(xp, device, logits))
        assert np.isfinite(to_numpy(hess)).all()
    if backend.value in ("torch", "torch_cuda"):
        import torch

        hess = torch.autograd.functional.hessian(lambda v: loss(v).sum(),
                                                 make(xp, device, logits))
        assert np.isfinite(to_numpy(hess)).all()


def test_jit_traces_gamma_alpha_and_smoothing():
    """optax's tests call ``jax.jit(sigmoid_focal_loss)``, which traces ``gamma`` and
    ``alpha`` as arrays: they are taken as such (and checked where concrete)."""
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    logits = jnp.asarray(YS, jnp.float32)
    labels = jnp.asarray(TS, jnp.float32)
    for gamma, alpha in ((2.0, 0.25), (0.0, None), (1.5, 0.9)):
        got = jax.jit(wce_xp.sigmoid_focal_loss)(labels, logits, gamma=gamma, alpha=alpha)
        want = wce_xp.sigmoid_focal_loss(labels, logits, gamma=gamma, alpha=alpha)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL)
    smooth = jax.jit(lambda z, x, s: wce_xp.sigmoid_cross_entropy_with_logits(
        z, x, label_smoothing=s))(labels, logits, 0.1)
    np.testing.assert_allclose(
        np.asarray(smooth),
        np.asarray(wce_xp.sigmoid_cross_entropy_with_logits(labels, logits,
                                                             label_smoothing=0.1)),
        rtol=RTOL)
    # a derivative in gamma, through the traced option
    dg = jax.grad(lambda g: wce_xp.sigmoid_focal_loss(labels, logits, gamma=g,
                                                      reduction="sum"))(2.0)
    assert np.isfinite(float(dg))
    with pytest.raises(ValueError, match=r"gamma: expected a number in \[0.0, inf\]"):
        wce_xp.sigmoid_focal_loss(labels, logits, gamma=jnp.asarray(-1.0))


def test_the_same_values_as_optax_itself():
    """wce_xp.optax against optax's own functions, same arguments (where optax is
    installed): the drop-in claim."""
    optax = pytest.importorskip("optax")
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(0, 3, (40, 4)).astype(np.float32))
    z = jnp.asarray((rng.uniform(size=(40, 4)) > 0.6).astype(np.float32))
    np.testing.assert_allclose(wox.sigmoid_binary_cross_entropy(x, z),
                               optax.losses.sigmoid_binary_cross_entropy(x, z), rtol=1e-5,
                               atol=1e-6)
    for kw in ({}, {"alpha": 0.25}, {"gamma": 0.5}, {"alpha": 0.75, "gamma": 3.0}):
        np.testing.assert_allclose(wox.sigmoid_focal_loss(x, z, **kw),
                                   optax.losses.sigmoid_focal_loss(x, z, **kw), rtol=2e-5,
                                   atol=1e-6, err_msg=str(kw))
