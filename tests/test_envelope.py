"""The usage envelope: every public function, over every shape, layout, dtype, option
and reduction, on every backend, against a float64 NumPy reference.

Shapes ``()``, ``(N,)``, ``(N, C)``, ``(N, C, H, W)``, empty, one element, and sizes
that span several chunks of the NumPy kernel; layouts contiguous, transposed, strided
(every other row) and channels-last; dtypes float16, bfloat16 (where the backend has
it), float32 and float64. Each result is checked for namespace, dtype, shape and device
as well as values. Accuracy at extreme logits is tests/test_accuracy.py's subject;
here the logits are moderate so that a float64 formula is an exact-enough reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import wce_xp
from wce_xp._native import _numpy as native_numpy

from ._helpers import assert_like, device_of, make, reference_loss, sigmoid, to_numpy

BIG = 2 * native_numpy.CHUNK + 1234  # three chunks of the NumPy kernel

SHAPES = {
    "0d": (),
    "one": (1,),
    "1d": (7,),
    "2d": (6, 3),
    "4d": (2, 3, 4, 5),
    "empty": (0, 3),
    "chunks1d": (BIG,),
    "chunks2d": (BIG // 5, 5),
}
LAYOUTS = ("contiguous", "transposed", "strided", "channels_last")
DTYPES = ("float16", "bfloat16", "float32", "float64")
RTOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-5, "float64": 1e-12}


def _cases():
    for sname, shape in SHAPES.items():
        for layout in LAYOUTS:
            if layout == "channels_last" and len(shape) != 4:
                continue
            if layout != "contiguous" and len(shape) < 2 and layout != "strided":
                continue
            if layout == "strided" and len(shape) == 0:
                continue
            for dtype in DTYPES:
                if sname.startswith("chunks") and dtype in ("float16", "bfloat16"):
                    continue
                yield pytest.param(shape, layout, dtype, id=f"{sname}-{layout}-{dtype}")


def _dtype_ok(backend, dtype):
    if dtype == "bfloat16" and backend.value not in ("torch", "torch_cuda", "jax", "tensorflow"):
        pytest.skip(f"{backend.value} has no bfloat16")
    if dtype == "float16" and backend.value == "array_api_strict":
        pytest.skip("array_api_strict has no float16")


def _xdtype(xp, dtype):
    # array-api-compat's Dask namespace names only the standard's dtypes
    return getattr(xp, dtype) if hasattr(xp, dtype) else np.dtype(dtype)


def _cast(xp, a, dtype):
    return xp.astype(a, _xdtype(xp, dtype))


def _laid_out(xp, device, backend, base: np.ndarray, layout: str, dtype: str):
    """``base``'s values as an array of ``xp`` in ``dtype`` with the given memory layout."""
    if layout == "contiguous":
        return _cast(xp, make(xp, device, base), dtype)
    if layout == "transposed":  # a transposed view of the reversed-axes array
        axes = tuple(reversed(range(base.ndim)))
        a = _cast(xp, make(xp, device, np.ascontiguousarray(np.transpose(base, axes))), dtype)
        return xp.permute_dims(a, axes)
    if layout == "strided":  # every other row of an array twice as long
        doubled = np.repeat(base, 2, axis=0)
        return _cast(xp, make(xp, device, doubled), dtype)[::2, ...]
    # channels_last: (N, C, H, W) values stored as (N, H, W, C)
    if backend.value in ("torch", "torch_cuda"):
        import torch

        a = _cast(xp, make(xp, device, base), dtype)
        return a.contiguous(memory_format=torch.channels_last)
    nhwc = _cast(xp, make(xp, device, np.ascontiguousarray(np.moveaxis(base, 1, -1))), dtype)
    return xp.permute_dims(nhwc, (0, 3, 1, 2))


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 4, shape)
    z = rng.uniform(0, 1, shape)
    if z.size:
        z.flat[::3] = np.round(z.flat[::3])
        x.flat[0] = 0.0
    return x, z


def _option_sets(shape):
    """(name, kwargs with NumPy values) covering every option, alone and together."""
    nd = len(shape)
    rng = np.random.default_rng(1)
    cls = shape[-1:] if nd else ()
    per_sample = (shape[0], *([1] * (nd - 1))) if nd else ()
    q_cls = rng.uniform(0.2, 4.0, cls)
    q_full = rng.uniform(0.2, 4.0, shape)
    w = rng.uniform(0.0, 2.0, per_sample)
    m = rng.uniform(size=shape) > 0.25
    axis0 = 0 if nd else None
    last = -1 if nd else None
    return [
        ("defaults", dict(pos_weight=2.5)),
        ("q_class_mean", dict(pos_weight=q_cls, reduction="mean")),
        ("weight_weighted_mean", dict(pos_weight=1.5, weight=w, reduction="weighted_mean")),
        ("mask_mean_axis0", dict(pos_weight=2.0, mask=m, reduction="mean", axis=axis0)),
        ("smooth_sum_last_qfull", dict(pos_weight=q_full, label_smoothing=0.1,
                                       reduction="sum", axis=last)),
        ("everything", dict(pos_weight=q_cls, weight=w, mask=m, label_smoothing=0.2,
                            reduction="weighted_mean", axis=axis0)),
        ("scalar_weight_sum", dict(pos_weight=0.5, weight=3.0, reduction="sum")),
    ]


def _reduced_shape(shape, reduction, axis):
    if reduction == "none":
        return shape
    if axis is None:
        return ()
    ax = axis % len(shape)
    return tuple(d for i, d in enumerate(shape) if i != ax)


class _Checker:
    def __init__(self, xp, device, dtype):
        self.xp, self.dtype = xp, dtype
        self.xdtype = _xdtype(xp, dtype)
        self.dev = None

    def __call__(self, got, want, shape, what):
        assert_like(got, self.xp, self.xdtype, shape, self.dev)
        g = to_numpy(self.xp.astype(got, self.xp.float64) if self.dtype == "bfloat16" else got)
        rtol = RTOL[self.dtype]
        # absolute floor: a result rounded to the output dtype, or a sum of such terms
        finite = np.abs(np.asarray(want)[np.isfinite(want)])
        atol = rtol * max(1.0, float(finite.max()) if finite.size else 1.0)
        np.testing.assert_allclose(g.astype(np.float64), want, rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=what)


@pytest.mark.parametrize(("shape", "layout", "dtype"), list(_cases()))
def test_every_function_every_option(xp, device, backend, shape, layout, dtype):
    _dtype_ok(backend, dtype)
    if layout != "contiguous" and backend.value in ("jax", "tensorflow"):
        # their arrays have no memory layout: a transposed or sliced array is a new
        # array like any other, so the case would repeat the contiguous one
        pytest.skip(f"{backend.value} arrays have no strides")
    if layout == "strided" and backend.value == "array_api_strict" and len(shape) < 1:
        pytest.skip("no rows")
    xb, zb = _data(shape)
    x = _laid_out(xp, device, backend, xb, layout, dtype)
    z = _laid_out(xp, device, backend, zb, layout, dtype)
    # the reference sees exactly the values the backend holds (rounded to dtype)
    xv = to_numpy(xp.astype(x, xp.float64))
    zv = to_numpy(xp.astype(z, xp.float64))
    check = _Checker(xp, device, dtype)
    check.dev = device_of(x)

    def conv(v):
        return make(xp, device, v) if isinstance(v, np.ndarray) else v

    for name, opts in _option_sets(shape):
        kw = {k: conv(v) for k, v in opts.items()}
        red, axis = opts.get("reduction", "none"), opts.get("axis")
        out_shape = _reduced_shape(shape, red, axis)
        ref_kw = dict(q=opts["pos_weight"], w=opts.get("weight"), m=opts.get("mask"),
                      s=opts.get("label_smoothing", 0.0), reduction=red, axis=axis)
        want = reference_loss(zv, xv, **ref_kw)
        got = wce_xp.weighted_cross_entropy_with_logits(z, x, **kw)
        check(got, want, out_shape, f"weighted {name}")
        # the focal loss with the same options (gamma 2, alpha 0.25; and gamma 0)
        fkw = dict(kw)
        fl = wce_xp.sigmoid_focal_loss(z, x, gamma=2.0, alpha=0.25, **fkw)
        check(fl, reference_loss(zv, xv, gamma=2.0, alpha=0.25, **ref_kw), out_shape,
              f"focal {name}")
        fl0 = wce_xp.sigmoid_focal_loss(z, x, gamma=0.0, **fkw)
        check(fl0, want, out_shape, f"focal0 {name}")
        # the unweighted sibling: the same options but pos_weight
        skw = {k: v for k, v in kw.items() if k != "pos_weight"}
        sref = {k: v for k, v in ref_kw.items() if k != "q"}
        got = wce_xp.sigmoid_cross_entropy_with_logits(z, x, **skw)
        check(got, reference_loss(zv, xv, **sref), out_shape, f"sigmoid {name}")

    # PyTorch's function: its reductions and broadcasting
    opts = dict(_option_sets(shape))
    q_cls = opts["q_class_mean"]["pos_weight"]
    w = opts["weight_weighted_mean"]["weight"]
    for red in ("none", "mean", "sum"):
        got = wce_xp.binary_cross_entropy_with_logits(x, z, conv(w), conv(q_cls), red)
        want = reference_loss(zv, xv, q=q_cls, w=w, reduction=red)
        check(got, want, shape if red == "none" else (), f"bce {red}")

    # grad/hess, with weight and smoothing
    for kw in ({}, dict(weight=conv(w), label_smoothing=0.1)):
        g, h = wce_xp.weighted_cross_entropy_grad_hess(z, x, 2.0, **kw)
        s = kw.get("label_smoothing", 0.0)
        zz = zv * (1 - s) + 0.5 * s
        sig = sigmoid(xv)
        wv = 1.0 if not kw else w
        g_ref = wv * ((1 - zz) * sig - 2.0 * zz * sigmoid(-xv))
        h_ref = wv * (1 + zz) * sig * sigmoid(-xv)
        check(g, g_ref, shape, f"grad {kw}")
        check(h, h_ref, shape, f"hess {kw}")


@pytest.mark.parametrize("shape", [(1,), (7,), (6, 3), (2, 3, 4, 5), (BIG // 5, 5)],
                         ids=lambda s: "x".join(map(str, s)))
def test_pos_weight_from_labels_envelope(xp, device, backend, shape):
    rng = np.random.default_rng(4)
    z = (rng.uniform(size=shape) < 0.4).astype(np.float64)
    z[0] = 1.0  # every class has a positive (and a negative, where there are two rows)
    if shape[0] > 1:
        z[-1] = 0.0
    m = rng.uniform(size=shape) > 0.2
    m[0] = True
    za = make(xp, device, z)
    for axis in (None, 0):
        out = wce_xp.pos_weight_from_labels(za, axis=axis)
        want = (1 - z).sum(axis=axis) / z.sum(axis=axis)
        assert_like(out, xp, za.dtype, np.shape(want), device_of(za))
        np.testing.assert_allclose(to_numpy(out), want, rtol=1e-12)
    out = wce_xp.pos_weight_from_labels(za, mask=make(xp, device, m))
    want = ((1 - z) * m).sum(0) / (z * m).sum(0)
    np.testing.assert_allclose(to_numpy(out), want, rtol=1e-12)
    for lab_dtype in ("bool", "int32"):
        out = wce_xp.pos_weight_from_labels(make(xp, device, z.astype(lab_dtype)))
        assert tuple(out.shape) == shape[1:]
        default = xp.asarray(0.0, device=device_of(za)).dtype
        assert out.dtype == default  # the default floating dtype (float32 in torch)
        rtol = 1e-12 if default == xp.float64 else 1e-6
        np.testing.assert_allclose(to_numpy(out), (1 - z).sum(0) / z.sum(0), rtol=rtol)


def test_empty_reductions_are_nan_and_empty_elementwise_is_empty(xp, device):
    x = make(xp, device, np.zeros((0, 3), np.float32))
    for red in ("mean", "weighted_mean"):
        out = to_numpy(wce_xp.weighted_cross_entropy_with_logits(x, x, 2.0, reduction=red))
        assert out.shape == () and math.isnan(float(out))
        per_class = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
            x, x, 2.0, reduction=red, axis=0))
        assert per_class.shape == (3,) and np.isnan(per_class).all()
    assert float(to_numpy(wce_xp.weighted_cross_entropy_with_logits(
        x, x, 2.0, reduction="sum"))) == 0.0
    assert to_numpy(wce_xp.weighted_cross_entropy_with_logits(x, x, 2.0)).shape == (0, 3)


@pytest.mark.parametrize("label_dtype", ["bool", "int8", "uint8", "int32", "int64"])
@pytest.mark.parametrize("shape", [(), (5,), (4, 3)], ids=["0d", "1d", "2d"])
def test_integer_and_bool_labels_every_function(xp, device, backend, label_dtype, shape):
    x, z = _data(shape, seed=2)
    z = np.round(z)
    za = make(xp, device, z.astype(label_dtype))
    zf = make(xp, device, z.astype(np.float32))
    xa = make(xp, device, x.astype(np.float32))
    for fn in (lambda zz: wce_xp.weighted_cross_entropy_with_logits(zz, xa, 2.0),
               lambda zz: wce_xp.sigmoid_cross_entropy_with_logits(zz, xa, reduction="mean"),
               lambda zz: wce_xp.binary_cross_entropy_with_logits(xa, zz),
               lambda zz: wce_xp.sigmoid_focal_loss(zz, xa),
               lambda zz: wce_xp.weighted_cross_entropy_grad_hess(zz, xa)[0]):
        got, want = fn(za), fn(zf)
        assert got.dtype == xa.dtype
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
