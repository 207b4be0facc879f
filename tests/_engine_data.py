"""Data for the engine tests of the NumPy and PyTorch backends: logits with the edge
values (0, ±inf, ±1e30), half-hard labels, a pos_weight per class, weights with zeros,
a mask; enough rows for several chunks of the NumPy engine."""

from __future__ import annotations

import numpy as np

from wce_xp._native import _numpy

N = 3 * _numpy.CHUNK // 7 + 5  # rows: with 7 classes, four chunks, the last partial


def _data(dtype="float32", shape=(N, 7), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_cauchy(shape) * 4).astype(dtype)
    x.flat[:5] = [0.0, np.inf, -np.inf, 1e30, -1e30]
    z = rng.uniform(size=shape).astype(dtype)
    z[::2] = np.round(z[::2])
    q = rng.uniform(0, 4, shape[-1:]).astype(dtype)
    w = rng.uniform(0, 2, (shape[0], 1)).astype(dtype)
    w[::9] = 0.0
    m = rng.uniform(size=shape) > 0.15
    return x, z, q, w, m
