"""Bad input: a TypeError or ValueError naming the argument, never a silent wrong number."""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp

from ._helpers import make

wce = wce_xp.weighted_cross_entropy_with_logits


def _xz(xp, device):
    return make(xp, device, [[0.5, -1.0], [2.0, 0.0]], "float32"), make(
        xp, device, [[1.0, 0.0], [0.0, 1.0]], "float32")


def test_shapes_must_match(xp, device):
    x, _ = _xz(xp, device)
    with pytest.raises(ValueError, match=r"labels and logits must have the same shape"):
        wce(make(xp, device, [1.0, 0.0], "float32"), x, 1.0)


def test_pos_weight_must_broadcast(xp, device):
    x, z = _xz(xp, device)
    with pytest.raises(ValueError, match=r"pos_weight: shape \(3,\) does not broadcast"):
        wce(z, x, make(xp, device, [1.0, 2.0, 3.0], "float32"))
    with pytest.raises(ValueError, match=r"weight: shape"):
        wce(z, x, 1.0, weight=make(xp, device, [[[1.0, 2.0]]] * 2, "float32"))


@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_logits_must_be_floating(xp, device, dtype):
    x = make(xp, device, np.array([1, 0]).astype(dtype))
    with pytest.raises(TypeError, match=r"logits: expected a real floating array"):
        wce(make(xp, device, [1.0, 0.0], "float32"), x, 1.0)


def test_complex_logits_and_labels_are_rejected(xp, device, backend):
    if backend.value in ("array_api_strict",):
        cx = xp.asarray([1 + 0j, 0j])
    else:
        cx = make(xp, device, np.array([1 + 0j, 0j], np.complex64))
    with pytest.raises(TypeError, match=r"logits: expected a real floating array"):
        wce(make(xp, device, [1.0, 0.0], "float32"), cx, 1.0)
    with pytest.raises(TypeError, match=r"labels: expected bool, integer or real"):
        wce(cx, make(xp, device, [1.0, 0.0], "float32"), 1.0)


def test_arrays_from_two_libraries(xp, device, backend):
    if backend.value == "numpy":
        import array_api_strict as other

        x_other = other.asarray([0.5, 1.0])
    else:
        x_other = np.array([0.5, 1.0])
    with pytest.raises(TypeError, match=r"arrays from different libraries"):
        wce(make(xp, device, [1.0, 0.0], "float64"), x_other, 1.0)


@pytest.mark.parametrize("fn", ["wce", "bce"])
def test_unknown_reduction(fn):
    x = np.zeros(2)
    with pytest.raises(ValueError, match=r"reduction: expected one of"):
        if fn == "wce":
            wce(x, x, 1.0, reduction="average")
        else:
            wce_xp.binary_cross_entropy_with_logits(x, x, reduction="weighted_mean")


def test_negative_weights(xp, device, backend):
    x, z = _xz(xp, device)
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"pos_weight: expected a finite non-negative"):
            wce(z, x, bad)
    if backend.value == "dask":
        pytest.skip("array value checks are skipped on lazy Dask arrays (tested below)")
    for bad in ([1.0, -2.0], [1.0, np.inf], [np.nan, 1.0]):
        with pytest.raises(ValueError, match=r"pos_weight: values must be finite and non-neg"):
            wce(z, x, make(xp, device, bad, "float32"))
        with pytest.raises(ValueError, match=r"^weight: values must be finite and non-neg"):
            wce(z, x, 1.0, weight=make(xp, device, bad, "float32"))
        with pytest.raises(ValueError, match=r"^weight: values must be finite and non-neg"):
            wce_xp.binary_cross_entropy_with_logits(
                x, z, make(xp, device, bad, "float32"), validate=True)
    # PyTorch's function checks nothing: neither does ours by default
    wce_xp.binary_cross_entropy_with_logits(x, z, make(xp, device, [1.0, -2.0], "float32"))


def test_labels_outside_unit_interval(xp, device, backend):
    if backend.value == "dask":
        pytest.skip("array value checks are skipped on lazy Dask arrays (tested below)")
    x, _ = _xz(xp, device)
    bad = make(xp, device, [[1.0, 0.0], [0.0, 1.5]], "float32")
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce(bad, x, 1.0)
    with pytest.raises(ValueError, match=r"target: values must lie in \[0, 1\]"):
        wce_xp.binary_cross_entropy_with_logits(x, bad, validate=True)
    wce_xp.binary_cross_entropy_with_logits(x, bad)  # PyTorch's semantics: no check
    nan_label = make(xp, device, [[1.0, 0.0], [0.0, np.nan]], "float32")
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]"):
        wce(nan_label, x, 1.0)
    # validate=False switches the value checks off (and computes the formula)
    wce(bad, x, 1.0, validate=False)


@pytest.mark.home("dask")
def test_value_checks_are_skipped_lazily_on_dask():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.array([0.5, 1.0]))
    bad = da.from_array(np.array([2.0, -1.0]))
    out = wce(bad, x, 1.0)  # no error and nothing computed: the checks would force the graph
    assert type(out).__module__.startswith("dask")


@pytest.mark.home("jax")
def test_value_checks_are_skipped_under_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f = jax.jit(lambda z, x: wce(z, x, 1.0))
    out = f(jnp.asarray([2.0, -1.0]), jnp.asarray([0.5, 1.0]))
    assert out.shape == (2,)
    with pytest.raises(ValueError, match="labels"):  # eager JAX arrays are checked
        wce(jnp.asarray([2.0, -1.0]), jnp.asarray([0.5, 1.0]), 1.0)


def test_missing_arguments():
    with pytest.raises(TypeError, match="pos_weight: required"):
        wce([1.0], np.zeros(1))
    with pytest.raises(TypeError, match="logits: required"):
        wce([1.0], pos_weight=1.0)
    with pytest.raises(TypeError, match=r"pos_weight: expected a real"):
        wce([1.0], np.zeros(1), "two")


# --- errors that teach (issue 20) ------------------------------------------------------


def test_swapped_arguments_are_named(xp, device, backend):
    """Labels outside [0, 1] beside logits that all lie inside it: the message says the
    two look swapped (optax and torchvision put logits first)."""
    if backend.value == "dask":
        pytest.skip("array value checks are skipped on lazy Dask arrays")
    logits = make(xp, device, [[2.5, -1.0], [0.3, -4.0]], "float32")
    labels = make(xp, device, [[1.0, 0.0], [0.0, 1.0]], "float32")
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\].*swapped"):
        wce(logits, labels, 2.0)  # optax's order, given to TensorFlow's signature
    with pytest.raises(ValueError, match=r"target: values must lie in \[0, 1\].*swapped"):
        wce_xp.binary_cross_entropy_with_logits(labels, logits, validate=True)
    with pytest.raises(ValueError, match=r"labels: values must lie in \[0, 1\]") as info:
        wce(make(xp, device, [[1.5, 0.0], [0.0, 1.0]], "float32"), logits, 2.0)
    assert "swapped" not in str(info.value)  # logits outside [0, 1]: no such hint


def test_nan_labels_suggest_a_mask(xp, device, backend):
    if backend.value == "dask":
        pytest.skip("array value checks are skipped on lazy Dask arrays")
    x, _ = _xz(xp, device)
    nan_label = make(xp, device, [[1.0, 0.0], [0.0, np.nan]], "float32")
    with pytest.raises(ValueError, match=r"mask=~isnan\(labels\).*--mask"):
        wce(nan_label, x, 1.0)
    with pytest.raises(ValueError, match=r"mask=~isnan\(labels\)"):
        wce_xp.sigmoid_focal_loss(nan_label, x, reduction="mean")
    # what the hint says works
    keep = make(xp, device, [[True, True], [True, False]])
    out = wce(nan_label, x, 1.0, mask=keep, reduction="sum")
    assert np.isfinite(float(np.asarray(out)))


@pytest.mark.home("torch")
def test_xp_converts_arrays_of_another_library():
    torch = pytest.importorskip("torch")
    z = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    ref = wce(z, x, 2.0)
    got = wce(z, x, 2.0, xp=torch)  # NumPy inputs, computed and returned by PyTorch
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-15)
    back = wce(torch.from_numpy(z), torch.from_numpy(x), 2.0, xp=np)
    assert isinstance(back, np.ndarray) and back.dtype == np.float64
    np.testing.assert_allclose(back, ref, rtol=1e-15)
    mixed = wce_xp.binary_cross_entropy_with_logits(torch.from_numpy(x), z, xp=torch)
    assert isinstance(mixed, torch.Tensor)
    f32 = wce(z, x.astype(np.float32), 2.0, xp=torch)
    assert f32.dtype == torch.float32


@pytest.mark.home("torch")
def test_tensors_on_two_devices_name_the_arguments():
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 3, device="meta")
    with pytest.raises(ValueError, match="labels on cpu, logits on meta"):
        wce(torch.zeros(2, 3), x, 2.0)
    with pytest.raises(ValueError, match="target on cpu, input on meta, pos_weight on cpu"):
        wce_xp.binary_cross_entropy_with_logits(x, torch.zeros(2, 3), pos_weight=torch.ones(3))


@pytest.mark.home("torch")
def test_pytorchs_names_in_the_mixed_library_message():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="target is a numpy array, input is a torch array"):
        wce_xp.binary_cross_entropy_with_logits(torch.zeros(2), np.zeros(2))


def test_keras_missing_gives_the_install_hint():
    import subprocess
    import sys

    code = ("import sys; sys.modules['keras'] = None\n"
            "try:\n    import wce_xp.keras\n"
            "except ModuleNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install 'wce_xp[keras]'" in out
