"""High-precision references computed with mpmath (60 significant digits).

Inputs are taken as the exact binary values of the test dtype, so the reference is
the correctly rounded answer to the question the library is asked.
"""

from __future__ import annotations

import functools
import math

import mpmath as mp
import numpy as np

mp.mp.dps = 60

# Below these the allowed error is absolute (some backends flush subnormal intermediates).
TINY = {"float32": 1e-30, "float64": 1e-300}


def _sp(t: mp.mpf) -> mp.mpf:
    """softplus(t) = log(1 + exp(t)), accurate for any t."""
    if t > 0:
        return t + mp.log1p(mp.exp(-t))
    return mp.log1p(mp.exp(t))


def _sig(t: mp.mpf) -> mp.mpf:
    return 1 / (1 + mp.exp(-t))


def _mp(v: float) -> mp.mpf:
    return mp.mpf(float(v))


def loss(x: float, z: float, q: float) -> mp.mpf:
    xm, zm, qm = _mp(x), _mp(z), _mp(q)
    if mp.isnan(xm) or mp.isnan(zm) or mp.isnan(qm):
        return mp.nan
    if mp.isinf(xm):
        pos = qm * zm if xm < 0 else 1 - zm  # the diverging term's coefficient
        return mp.inf if pos > 0 else mp.mpf(0)
    return qm * zm * _sp(-xm) + (1 - zm) * _sp(xm)


def grad(x: float, z: float, q: float) -> tuple[mp.mpf, mp.mpf]:
    """(dL/dx, the scale (1-z)σ(x) + qzσ(-x) the gradient's error is measured in)."""
    xm, zm, qm = _mp(x), _mp(z), _mp(q)
    if mp.isinf(xm):
        s, sn = (mp.mpf(1), mp.mpf(0)) if xm > 0 else (mp.mpf(0), mp.mpf(1))
    else:
        s, sn = _sig(xm), _sig(-xm)
    return (1 - zm) * s - qm * zm * sn, (1 - zm) * s + qm * zm * sn


def hess(x: float, z: float, q: float) -> mp.mpf:
    xm, zm, qm = _mp(x), _mp(z), _mp(q)
    if mp.isinf(xm):
        return mp.mpf(0)
    return (1 + (qm - 1) * zm) * _sig(xm) * _sig(-xm)


def focal(x: float, z: float, q: float, gamma: float, alpha: float | None) -> mp.mpf:
    xm, zm = _mp(x), _mp(z)
    ce = loss(x, z, q)
    if mp.isinf(xm):
        one_m_pt = (1 - zm) if xm > 0 else zm
    else:
        one_m_pt = zm * _sig(-xm) + (1 - zm) * _sig(xm)
    g = _mp(gamma)
    mod = mp.mpf(1) if g == 0 else (mp.mpf(0) if one_m_pt == 0 else one_m_pt**g)
    out = mod * ce if not (mp.isinf(ce) and mod == 0) else mp.mpf(0)
    if alpha is not None:
        am = _mp(alpha)
        out = (am * zm + (1 - am) * (1 - zm)) * out
    return out


def vectorize(fn, *arrays, **kw):
    """Apply a scalar mpmath function elementwise over broadcast NumPy arrays."""
    b = np.broadcast_arrays(*arrays)
    out = np.empty(b[0].shape, dtype=object)
    for idx in np.ndindex(b[0].shape):
        out[idx] = fn(*(float(a[idx]) for a in b), **kw)
    return out


def ulp_error(got: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    """|got - ref| in units of the spacing of ref in ``dtype``; 0 where within TINY.

    An infinite reference must be matched exactly (inf error otherwise); a NaN
    reference must give NaN.
    """
    got = np.asarray(got, dtype=np.float64)
    err = np.zeros(got.shape)
    tiny = TINY[dtype]
    for idx in np.ndindex(got.shape):
        r, g = ref[idx], got[idx]
        if mp.isnan(r):
            err[idx] = 0.0 if math.isnan(g) else math.inf
        elif mp.isinf(r):
            err[idx] = 0.0 if g == float(r) else math.inf
        elif math.isnan(g) or math.isinf(g):
            err[idx] = math.inf
        else:
            diff = abs(mp.mpf(g) - r)
            if abs(r) < tiny and diff <= tiny:
                err[idx] = 0.0
            else:
                sp = float(np.spacing(np.array(float(r), dtype=dtype)).astype(np.float64))
                err[idx] = float(diff / abs(mp.mpf(sp)))
    return err


@functools.cache
def accuracy_grid(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, z, q) over logits 0, ±1e-30 … ±1e30 and the region near 0, hard and soft labels,
    pos_weight 0 … 1e3; every combination, flattened, in ``dtype``."""
    rng = np.random.default_rng(0)
    mags = np.concatenate([10.0 ** np.arange(-30, 31), rng.uniform(0, 120, 40),
                           [0.5, 1, 2, 17, 37, 88.7, 89, 103, 104, 709, 710, 745, 746]])
    x = np.concatenate([[0.0], mags, -mags]).astype(dtype)
    z = np.array([0, 1, 0.5, 0.1, 0.25, 0.9, 1e-3, 0.999, 1e-6, 0.3], dtype=dtype)
    q = np.array([0, 0.5, 1, 2, 10, 1e3, 0.123], dtype=dtype)
    X, Z, Q = np.meshgrid(x, z, q, indexing="ij")
    return X.ravel(), Z.ravel(), Q.ravel()


@functools.cache
def loss_reference(dtype: str) -> np.ndarray:
    x, z, q = accuracy_grid(dtype)
    return vectorize(loss, x, z, q)
