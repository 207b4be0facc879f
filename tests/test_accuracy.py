"""Values against the mpmath reference: ≤ 4 ulp in float32 and float64 on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import wce_xp

from . import _reference as R
from ._helpers import DTYPES, make, to_numpy

MAX_ULP = 4.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_loss_within_4_ulp(xp, device, dtype):
    x, z, q = R.accuracy_grid(dtype)
    ref = R.loss_reference(dtype)
    got = wce_xp.weighted_cross_entropy_with_logits(
        make(xp, device, z), make(xp, device, x), make(xp, device, q)
    )
    err = R.ulp_error(to_numpy(got), ref, dtype)
    worst = int(np.argmax(err))
    assert err.max() <= MAX_ULP, (
        f"{err.max():.2f} ulp at x={x[worst]!r}, z={z[worst]!r}, q={q[worst]!r}: "
        f"got {to_numpy(got)[worst]!r}, want {ref[worst]}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_unweighted_is_weighted_with_q_1(xp, device, dtype):
    x, z, _ = R.accuracy_grid(dtype)
    xa, za = make(xp, device, x), make(xp, device, z)
    a = wce_xp.sigmoid_cross_entropy_with_logits(za, xa)
    b = wce_xp.weighted_cross_entropy_with_logits(za, xa, 1.0)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_logits_give_the_limit_and_nan_propagates(xp, device, dtype):
    x = np.array([np.inf, np.inf, np.inf, -np.inf, -np.inf, -np.inf, np.nan, np.nan], dtype)
    z = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 0.0], dtype)
    q = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 1.0], dtype)
    want = [math.inf, 0.0, math.inf, 0.0, math.inf, 0.0, math.nan, math.nan]
    got = to_numpy(wce_xp.weighted_cross_entropy_with_logits(
        make(xp, device, z), make(xp, device, x), make(xp, device, q)))
    np.testing.assert_array_equal(got, np.array(want, dtype))


def test_label_zero_very_negative_logit_keeps_its_digits(xp, device):
    # TensorFlow and PyTorch return exactly 0 here; the true value is 4.4e-28.
    got = to_numpy(wce_xp.sigmoid_cross_entropy_with_logits(
        make(xp, device, [0.0], "float32"), make(xp, device, [-63.0], "float32")))
    assert got[0] == pytest.approx(float(R.loss(-63.0, 0.0, 1.0)), rel=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(xp, device, backend, dtype):
    if dtype == "bfloat16" and backend.value not in ("torch", "torch_cuda", "jax", "tensorflow"):
        pytest.skip(f"{backend.value} has no bfloat16")
    if dtype == "float16" and backend.value == "array_api_strict":
        pytest.skip("array_api_strict has no float16")
    x32 = np.linspace(-30, 30, 101, dtype=np.float32)
    z32 = (np.arange(101) % 3 / 2).astype(np.float32)
    half = getattr(xp, dtype, None)
    if half is None:  # dask's namespace has no float16 name, its arrays have the dtype
        half = np.dtype(dtype)
    kw = {} if device is None else {"device": device}
    xh = xp.astype(xp.asarray(x32, **kw), half)
    got = wce_xp.weighted_cross_entropy_with_logits(make(xp, device, z32), xh, 3.0)
    assert got.dtype == half
    # the reference: the half logits' exact values, computed in float32, rounded once
    x_exact = to_numpy(xp.astype(xh, xp.float32))
    want32 = wce_xp.weighted_cross_entropy_with_logits(z32, x_exact, 3.0)
    want = xp.astype(xp.asarray(want32, **kw), half)
    np.testing.assert_array_equal(to_numpy(xp.astype(got, xp.float32)),
                                  to_numpy(xp.astype(want, xp.float32)))
