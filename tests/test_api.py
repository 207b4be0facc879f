"""Signatures, conversions and preservation of namespace, dtype, shape and device."""

from __future__ import annotations

import numpy as np
import pytest

import wce_xp
from wce_xp._compat import backend_name

from ._helpers import DTYPES, assert_like, backend_of, device_of, make, to_numpy

TF_LABELS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def test_tensorflow_documented_example_runs_as_written():
    logits = np.random.rand(3, 3).astype(np.float32)  # noqa: NPY002 (TF's example as written)
    out = wce_xp.weighted_cross_entropy_with_logits(
        logits=logits, targets=TF_LABELS, pos_weight=2.0
    )
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (3, 3)
    z = np.asarray(TF_LABELS)
    x = logits.astype(np.float64)
    want = 2.0 * z * np.log1p(np.exp(-x)) + (1 - z) * np.log1p(np.exp(x))
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_no_array_argument_means_numpy():
    out = wce_xp.sigmoid_cross_entropy_with_logits([1.0, 0.0], [0.0, 0.0])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, [np.log(2.0)] * 2)


def test_labels_and_targets_are_exclusive():
    with pytest.raises(TypeError, match="labels and targets"):
        wce_xp.weighted_cross_entropy_with_logits(
            labels=[1.0], targets=[1.0], logits=np.zeros(1), pos_weight=1.0)


def test_positional_tensorflow_2_order():
    x = np.array([0.5, -2.0])
    z = np.array([1.0, 0.0])
    a = wce_xp.weighted_cross_entropy_with_logits(z, x, 3.0)
    b = wce_xp.weighted_cross_entropy_with_logits(labels=z, logits=x, pos_weight=3.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_namespace_dtype_shape_device_are_preserved(xp, device, dtype):
    x = make(xp, device, np.linspace(-5, 5, 12).reshape(3, 4), dtype)
    z = make(xp, device, (np.arange(12).reshape(3, 4) % 2), dtype)
    q = make(xp, device, [1.0, 2.0, 3.0, 4.0], dtype)
    dev = device_of(x)
    for out in (
        wce_xp.weighted_cross_entropy_with_logits(z, x, q),
        wce_xp.sigmoid_cross_entropy_with_logits(z, x),
        wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=q, reduction="none"),
    ):
        assert_like(out, xp, x.dtype, (3, 4), dev)
    out = wce_xp.binary_cross_entropy_with_logits(x, z, pos_weight=q)
    assert_like(out, xp, x.dtype, (), dev)


def test_non_default_device(xp, backend):
    """Results stay on a device other than the default one."""
    if backend.value == "array_api_strict":
        import array_api_strict as xs

        dev = xs.Device("device1")
    elif backend.value == "jax":
        import jax

        if len(jax.devices()) < 2:
            pytest.skip("jax: only one device")
        dev = jax.devices()[1]
    elif backend.value == "torch_cuda":
        import torch

        dev = torch.device("cuda", torch.cuda.device_count() - 1)
    else:
        pytest.skip(f"{backend.value}: one device only on this machine")
    x = xp.asarray([0.5, -1.0, 3.0], device=dev)
    z = xp.asarray([1.0, 0.0, 1.0], device=dev)
    q = xp.asarray([2.0], device=dev)
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, q)
    assert device_of(out) == dev
    mean = wce_xp.weighted_cross_entropy_with_logits(z, x, [2.0], reduction="mean")
    assert device_of(mean) == dev


def test_python_scalars_lists_and_numpy_scalars_are_converted(xp, device):
    x = make(xp, device, [0.5, -1.0, 3.0], "float32")
    dev = device_of(x)
    a = wce_xp.weighted_cross_entropy_with_logits([1, 0, 1], x, np.float32(2.0))
    b = wce_xp.weighted_cross_entropy_with_logits(
        make(xp, device, [1.0, 0.0, 1.0], "float32"), x, [2.0, 2.0, 2.0])
    assert_like(a, xp, x.dtype, (3,), dev)
    assert_like(b, xp, x.dtype, (3,), dev)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # logits given as a list take the floating dtype of the array arguments
    c = wce_xp.weighted_cross_entropy_with_logits(
        make(xp, device, [1.0, 0.0, 1.0], "float32"), [0.5, -1.0, 3.0], 2.0)
    assert_like(c, xp, x.dtype, (3,), dev)


@pytest.mark.parametrize("label_dtype", ["bool", "int32", "int64", "float64"])
def test_integer_and_boolean_labels_are_cast(xp, device, backend, label_dtype):
    x = make(xp, device, [0.5, -1.0, 3.0, 0.0], "float32")
    zl = np.array([1, 0, 1, 0]).astype(label_dtype)
    z = make(xp, device, zl)
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, 2.0)
    assert out.dtype == x.dtype
    want = wce_xp.weighted_cross_entropy_with_logits(
        make(xp, device, zl.astype(np.float32)), x, 2.0)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(want))


def test_inputs_are_never_modified(xp, device):
    xn = np.array([[np.nan, -np.inf, 3.0], [0.0, 1e30, -2.0]], np.float32)
    zn = np.array([[np.nan, 1.0, 0.5], [0.0, 1.0, 0.2]], np.float32)
    wn = np.array([1.0, 0.0, 2.0], np.float32)
    x, z, w = make(xp, device, xn), make(xp, device, zn), make(xp, device, wn)
    mask = make(xp, device, ~np.isnan(zn))
    for red in ("none", "mean", "weighted_mean", "sum"):
        wce_xp.weighted_cross_entropy_with_logits(
            z, x, w, weight=w, mask=mask, label_smoothing=0.1, reduction=red)
    wce_xp.sigmoid_focal_loss(z, x, mask=mask, gamma=0.5, alpha=0.3)
    np.testing.assert_array_equal(to_numpy(x), xn)
    np.testing.assert_array_equal(to_numpy(z), zn)
    np.testing.assert_array_equal(to_numpy(w), wn)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_agrees_with_pytorch_native_function(xp, device, dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(0, 4, (64, 5)).astype(dtype)
    z = rng.uniform(0, 1, (64, 5)).astype(dtype)
    z[::2] = np.round(z[::2])
    w = rng.uniform(0, 2, (64, 1)).astype(dtype)
    q = rng.uniform(0, 5, (5,)).astype(dtype)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.asarray(x), torch.asarray(z), weight=torch.asarray(w),
        pos_weight=torch.asarray(q), reduction=reduction).numpy()
    got = wce_xp.binary_cross_entropy_with_logits(
        make(xp, device, x), make(xp, device, z), make(xp, device, w),
        make(xp, device, q), reduction=reduction)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(to_numpy(got), want, rtol=rtol, atol=rtol)


def test_forced_namespace(xp, device, backend):
    if backend.value in ("torch_cuda",):
        pytest.skip("xp= converts host lists onto the default device only")
    out = wce_xp.sigmoid_cross_entropy_with_logits([1.0, 0.0], [0.5, -0.5], xp=xp)
    assert backend_of(out) == backend_name(xp)


def test_show_config_says_which_engine_runs():
    import io

    buf = io.StringIO()
    wce_xp.show_config(buf)
    text = buf.getvalue()
    assert text.startswith(f"wce_xp {wce_xp.__version__}")
    assert "compiled kernels" in text and "threads" in text and "numpy " in text
    c = wce_xp._config.config()
    assert c["numpy engine"]["threads"] == str(wce_xp.get_num_threads())
    from wce_xp._native import _numpy

    if _numpy._fused_module is not None:
        assert c["numpy engine"]["compiled kernels"].startswith("present")


def test_without_compiled_kernels_every_entry_point_says_so():
    """An install without a C compiler: show_config, `wce-xp --version --verbose` and
    `wce-xp demo` say the kernels are missing and how to get them."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['wce_xp._fused'] = None\n"
            "from wce_xp.cli import main\n"
            "raise SystemExit(main(sys.argv[1:]))")
    for args in (["--version", "--verbose"], ["demo"]):
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "missing: the ufunc kernel runs" in res.stdout, res.stdout
        assert "--no-binary wce_xp" in res.stdout
