"""Properties checked with hypothesis on every backend."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import wce_xp

from ._helpers import make, to_numpy

wce = wce_xp.weighted_cross_entropy_with_logits

finite_logits = st.floats(-1e30, 1e30, allow_nan=False, width=64)
label = st.floats(0.0, 1.0, width=64)
posw = st.floats(0.0, 1e3, width=64)
SETTINGS = settings(max_examples=60, deadline=None)


def _vec(elements, n=16):
    return hnp.arrays(np.float64, n, elements=elements)


@SETTINGS
@given(x=_vec(finite_logits), z=_vec(label), q=_vec(posw))
def test_non_negative(xp, device, x, z, q):
    out = to_numpy(wce(make(xp, device, z), make(xp, device, x), make(xp, device, q)))
    assert np.all(out >= 0)


@SETTINGS
@given(x=_vec(finite_logits), z=_vec(label))
def test_symmetry_of_the_unweighted_loss(xp, device, x, z):
    """L(x, z, q=1) = L(-x, 1-z), to rounding.

    z is first replaced by 1 - (1 - z): for that value 1 - z is exact (Sterbenz), so
    both sides are asked the same question.
    """
    z = 1.0 - (1.0 - z)
    a = to_numpy(wce(make(xp, device, z), make(xp, device, x), 1.0))
    b = to_numpy(wce(make(xp, device, 1.0 - z), make(xp, device, -x), 1.0))
    np.testing.assert_allclose(a, b, rtol=4e-16 * 8, atol=1e-300)


@SETTINGS
@given(x=_vec(finite_logits, 32), zl=st.sampled_from([0.0, 1.0]), q=posw)
def test_monotone_in_logits_for_hard_labels(xp, device, x, zl, q):
    xs = np.sort(x)
    out = to_numpy(wce(make(xp, device, np.full_like(xs, zl)), make(xp, device, xs), q))
    d = np.diff(out)
    assert np.all(d >= 0) if zl == 0.0 else np.all(d <= 0), (xs, out)


@SETTINGS
@given(x=_vec(st.floats(-800, 800, width=64)), z=_vec(label), q=_vec(posw))
def test_same_answer_as_numpy(xp, device, x, z, q):
    """Every backend agrees with NumPy to a few ulps (both are within 4 ulp of the truth)."""
    got = to_numpy(wce(make(xp, device, z), make(xp, device, x), make(xp, device, q)))
    want = wce(z, x, q)
    np.testing.assert_allclose(got, want, rtol=8 * 2.2e-16, atol=1e-300)
