"""Keras 3's own tests of ``BinaryCrossentropy`` and ``BinaryFocalCrossentropy`` with
``from_logits=True``, ported to wce_xp's functions on every backend.

Source: ``keras/src/losses/losses_test.py`` (``BinaryCrossentropyTest``,
``BinaryFocalCrossentropyTest``): the from-logits cases, with Keras's expected values
and tolerances (``assertAlmostEqual``: 3 decimals; ``assertAllClose``: as written).

Keras reduces a binary loss in two steps: the mean over the last axis per sample, then
``sum_over_batch_size``: the mean over samples of ``sample_weight`` times that. With
per-sample weights that is wce_xp's ``weight=w[:, None], reduction="mean"``; Keras's
``reduction=None`` is ``reduction="mean", axis=-1``. Keras's focal loss without class
balancing is ``(1 - p_t)^γ·BCE``: wce_xp's ``alpha=None``.
"""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp

from ._common import make, to_numpy

LOGITS = np.array([[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]])
Y_TRUE = np.array([[1, 0, 1], [0, 1, 1]])
FOCAL_Y = np.array([[1, 1, 0], [0, 1, 0]], dtype="float32")
FOCAL_LOGITS = np.array([[1.5, -2.7, 2.9], [-3.8, 1.2, -4.5]])


def _bce(xp, device, y_true, logits, sample_weight=None, **kw):
    kw.setdefault("reduction", "mean")
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float32)
        kw["weight"] = float(w) if w.ndim == 0 else make(
            xp, device, w.reshape(w.shape[0], 1) if w.ndim == 1 else w)
    return to_numpy(wce_xp.sigmoid_cross_entropy_with_logits(
        make(xp, device, np.asarray(y_true, np.float32)),
        make(xp, device, np.asarray(logits, np.float32)), **kw))


def _bfce(xp, device, y_true, logits, gamma, sample_weight=None):
    kw = {}
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float32)
        kw["weight"] = float(w) if w.ndim == 0 else make(xp, device, w)
    return to_numpy(wce_xp.sigmoid_focal_loss(
        make(xp, device, np.asarray(y_true, np.float32)),
        make(xp, device, np.asarray(logits, np.float32)), gamma=gamma, reduction="mean",
        **kw))


def test_bce_all_correct_unweighted(xp, device):
    y_true = np.eye(3, dtype="float32")
    logits = np.array([[10.0, -10.0, -10.0], [-10.0, 10.0, -10.0], [-10.0, -10.0, 10.0]])
    np.testing.assert_almost_equal(_bce(xp, device, y_true, logits), 0.0, 3)


def test_bce_unweighted(xp, device):
    np.testing.assert_almost_equal(_bce(xp, device, Y_TRUE, LOGITS), 3.3333, 3)


def test_bce_scalar_weighted(xp, device):
    np.testing.assert_almost_equal(_bce(xp, device, Y_TRUE, LOGITS, sample_weight=2.3),
                                   7.666, 3)


def test_bce_sample_weighted(xp, device):
    np.testing.assert_almost_equal(_bce(xp, device, Y_TRUE, LOGITS, sample_weight=[4, 3]),
                                   10.0, 3)


def test_bce_no_reduction(xp, device):
    out = _bce(xp, device, Y_TRUE, LOGITS, axis=-1)
    np.testing.assert_allclose(out, [0.0, 6.666], atol=1e-3)


def test_bce_label_smoothing(xp, device):
    s = 0.1
    out = _bce(xp, device, [[1, 0, 1]], [[10.0, -10.0, -10.0]], label_smoothing=s)
    np.testing.assert_almost_equal(out, (10.0 + 5.0 * s) / 3.0, 3)


def test_bce_shape_mismatch(xp, device):
    with pytest.raises(ValueError, match="must have the same shape"):
        wce_xp.sigmoid_cross_entropy_with_logits(
            make(xp, device, np.array([[0.0], [1.0], [1.0]])),
            make(xp, device, np.zeros((3, 3))))


def test_bfce_all_correct_unweighted(xp, device):
    logits = np.array([[100.0, -100.0, -100.0], [-100.0, 100.0, -100.0],
                       [-100.0, -100.0, 100.0]])
    np.testing.assert_almost_equal(_bfce(xp, device, np.eye(3), logits, 2.0), 0.0, 3)


def test_bfce_unweighted(xp, device):
    np.testing.assert_almost_equal(_bfce(xp, device, FOCAL_Y, FOCAL_LOGITS, 3.0), 0.799, 3)


def test_bfce_scalar_weighted(xp, device):
    np.testing.assert_almost_equal(
        _bfce(xp, device, FOCAL_Y, FOCAL_LOGITS, 3.0, sample_weight=3.21), 2.565, 3)


def test_bfce_sample_weighted(xp, device):
    w = np.array([1.2, 3.4]).reshape((2, 1))
    np.testing.assert_almost_equal(
        _bfce(xp, device, FOCAL_Y, FOCAL_LOGITS, 3.0, sample_weight=w), 0.95977, 3)
