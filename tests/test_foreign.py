"""Array libraries wce_xp never names, used as a new user would (issue 18).

array-api-strict pinned to the oldest revision of the standard we claim (2023.12) and
to its newest, ndonnx (eager values and lazy ONNX graphs with unknown extents),
marray (masked arrays), pydata sparse, and NumPy's own masked arrays. Nothing in
``src/wce_xp`` names any of them: what works here works through the standard alone.
The expected values come from an independent float64 formula (``np.logaddexp``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import wce_xp

from ._helpers import reference_loss

# Backend-independent tests here run in the foreign session (tests/conftest.py).
pytestmark = pytest.mark.home("foreign")

RNG = np.random.default_rng(18)
X = RNG.standard_normal((6, 3)) * 3
Z = (RNG.random((6, 3)) > 0.5).astype(np.float64)
Z[0] = [0.25, 0.5, 1.0]  # soft labels too
Q = np.array([2.0, 0.5, 1.0])
W = np.array([1.0, 0.0, 3.0])
M = RNG.random((6, 3)) > 0.3


CASES = [
    ({}, {}),
    ({"reduction": "sum"}, {"reduction": "sum"}),
    ({"reduction": "mean", "mask": M}, {"reduction": "mean", "m": M}),
    ({"reduction": "weighted_mean", "weight": W}, {"reduction": "weighted_mean", "w": W}),
    ({"reduction": "mean", "axis": 0, "weight": W, "mask": M},
     {"reduction": "mean", "axis": 0, "w": W, "m": M}),
    ({"label_smoothing": 0.1}, {"s": 0.1}),
]


# --- array-api-strict at the oldest revision we claim, and at its newest ----------


@pytest.fixture(params=["2023.12", None], ids=["2023.12", "newest"])
def strict(request):
    xs = pytest.importorskip("array_api_strict")
    with xs.ArrayAPIStrictFlags(api_version=request.param):
        yield xs


def _strict_np(a):
    import array_api_strict as xs

    return np.asarray(xs.asarray(a, device=xs.Device("CPU_DEVICE"))._array)


@pytest.mark.parametrize(("kwargs", "ref"), CASES)
def test_strict_weighted_loss(strict, kwargs, ref):
    xs = strict
    conv = {k: xs.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    for q in (2.0, xs.asarray(Q)):
        out = wce_xp.weighted_cross_entropy_with_logits(xs.asarray(Z), xs.asarray(X), q, **conv)
        assert out.dtype == xs.float64
        qn = q if isinstance(q, float) else Q
        np.testing.assert_allclose(_strict_np(out), reference_loss(Z, X, qn, **ref), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_strict_every_public_function(strict, reduction):
    xs = strict
    z, x = xs.asarray(Z), xs.asarray(X)
    np.testing.assert_allclose(
        _strict_np(wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction=reduction)),
        reference_loss(Z, X, reduction=reduction), rtol=1e-13)
    np.testing.assert_allclose(
        _strict_np(wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=xs.asarray(Q),
                                                           reduction=reduction)),
        reference_loss(Z, X, Q, reduction=reduction), rtol=1e-13)
    # gamma = 0 without alpha is the cross-entropy itself; the focal factor runs too
    np.testing.assert_allclose(
        _strict_np(wce_xp.sigmoid_focal_loss(z, x, gamma=0.0, reduction=reduction)),
        reference_loss(Z, X, reduction=reduction), rtol=1e-13)
    focal = wce_xp.sigmoid_focal_loss(z, x, gamma=2.0, alpha=0.25, reduction=reduction,
                                      mask=xs.asarray(M))
    assert focal.dtype == xs.float64


def test_strict_grad_hess_and_pos_weight(strict):
    xs = strict
    g, h = wce_xp.weighted_cross_entropy_grad_hess(xs.asarray(Z), xs.asarray(X), 2.0)
    s = 1 / (1 + np.exp(-X))
    np.testing.assert_allclose(_strict_np(g), (1 - Z) * s - 2.0 * Z * (1 - s), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(_strict_np(h), (1 + Z) * s * (1 - s), rtol=1e-12)
    labels = (RNG.random((20, 3)) > 0.5).astype(np.float64)
    labels[0] = 1.0
    got = wce_xp.pos_weight_from_labels(xs.asarray(labels), mask=xs.asarray(M[:1] | True))
    np.testing.assert_allclose(_strict_np(got), (1 - labels).sum(0) / labels.sum(0))


def test_strict_without_data_dependent_shapes():
    xs = pytest.importorskip("array_api_strict")
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    with xs.ArrayAPIStrictFlags(data_dependent_shapes=False):
        got = wce_xp.pos_weight_from_labels(xs.asarray(labels))
        np.testing.assert_allclose(_strict_np(got), [2.0, 0.5])
        with pytest.raises(ValueError, match=r"labels: class\(es\) \[1\] have no positive"):
            wce_xp.pos_weight_from_labels(xs.asarray(labels[:1]))


def test_strict_arrays_on_two_devices_name_the_arguments(strict):
    xs = strict
    other = xs.Device("device1")
    with pytest.raises(ValueError, match=r"different devices: labels on .*device1.*logits on"):
        wce_xp.sigmoid_cross_entropy_with_logits(xs.asarray(Z, device=other), xs.asarray(X))
    with pytest.raises(ValueError, match=r"weight on .*device1.*move them to one device"):
        wce_xp.sigmoid_cross_entropy_with_logits(xs.asarray(Z), xs.asarray(X),
                                                 weight=xs.asarray(W, device=other))


# --- ndonnx: eager values, and a lazy graph with an unknown extent -----------------


@pytest.fixture
def ndx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (no onnxruntime: its reference propagation)
        return pytest.importorskip("ndonnx")


@pytest.mark.parametrize(("kwargs", "ref"), CASES[:4])
def test_ndonnx_eager(ndx, kwargs, ref):
    conv = {k: ndx.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = wce_xp.weighted_cross_entropy_with_logits(ndx.asarray(Z), ndx.asarray(X), 2.0, **conv)
    np.testing.assert_allclose(out.unwrap_numpy(), reference_loss(Z, X, 2.0, **ref), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "weighted_mean"])
@pytest.mark.parametrize("validate", [True, False])
def test_ndonnx_lazy_graph_with_unknown_extent(ndx, reduction, validate):
    x = ndx.argument(shape=("N", 3), dtype=ndx.float64)
    z = ndx.argument(shape=("N", 3), dtype=ndx.float64)
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction=reduction,
                                                    validate=validate)
    assert tuple(out.shape) == ((None, 3) if reduction == "none" else ())
    per_class = wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction=reduction
                                                         if reduction != "none" else "mean",
                                                         axis=0)
    assert tuple(per_class.shape) == (3,)
    model = ndx.build({"z": z, "x": x}, {"loss": out, "per_class": per_class})
    assert len(model.graph.node) > 0


# --- marray: masked arrays, whose masked elements count nowhere ---------------------


@pytest.fixture
def mxp():
    marray = pytest.importorskip("marray")
    return marray.masked_namespace(np)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "weighted_mean"])
def test_marray_masked_elements_count_nowhere(mxp, reduction):
    hidden = ~M
    x = mxp.asarray(np.where(hidden, np.nan, X), mask=hidden)
    z = mxp.asarray(np.where(hidden, 7.0, Z), mask=hidden)
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction=reduction)
    want = reference_loss(Z, X, 2.0, m=M, reduction=reduction)
    if reduction == "none":
        np.testing.assert_allclose(np.asarray(out.data)[M], want[M], rtol=1e-13)
        assert (np.asarray(out.mask) == hidden).all()
    else:
        np.testing.assert_allclose(float(out.data), want, rtol=1e-13)
    if reduction == "mean":  # marray's own mean of the elementwise loss agrees
        own = mxp.mean(wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0))
        np.testing.assert_allclose(float(out.data), float(own.data), rtol=1e-13)


# --- NumPy's masked arrays: the mask is honoured, never dropped ---------------------


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_numpy_masked_arrays_honour_their_masks(reduction):
    hidden_z, hidden_x = ~M, np.zeros_like(M)
    hidden_x[2, 1] = True
    z = np.ma.array(np.where(hidden_z, np.nan, Z), mask=hidden_z)
    x = np.ma.array(np.where(hidden_x, 1e6, X), mask=hidden_x)
    keep = ~hidden_z & ~hidden_x
    got = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction=reduction)
    want = wce_xp.weighted_cross_entropy_with_logits(Z, X, 2.0, reduction=reduction, mask=keep)
    np.testing.assert_array_equal(np.asarray(got), want)
    extra = np.ones_like(M)
    extra[0] = False
    got = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0, reduction=reduction, mask=extra)
    want = wce_xp.weighted_cross_entropy_with_logits(Z, X, 2.0, reduction=reduction,
                                                     mask=keep & extra)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_numpy_masked_weights_are_refused_with_the_fix():
    w = np.ma.array(W, mask=[True, False, False])
    with pytest.raises(TypeError, match=r"weight: a masked array .*weight\.filled"):
        wce_xp.weighted_cross_entropy_with_logits(Z, X, 2.0, weight=w)
    # no masked element: its data, as any array
    np.testing.assert_array_equal(
        wce_xp.weighted_cross_entropy_with_logits(Z, X, np.ma.array(Q), reduction="sum"),
        wce_xp.weighted_cross_entropy_with_logits(Z, X, Q, reduction="sum"))


# --- pydata sparse -----------------------------------------------------------------


def test_sparse_pos_weight_from_labels():
    sparse = pytest.importorskip("sparse")
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    got = wce_xp.pos_weight_from_labels(sparse.COO.from_numpy(labels))
    np.testing.assert_allclose(np.asarray(got.todense()), [3.0, 1.0])
    with pytest.raises(ValueError, match=r"class\(es\) \[0\]"):
        wce_xp.pos_weight_from_labels(sparse.COO.from_numpy(labels[1:]))
