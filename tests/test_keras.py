"""wce_xp.keras on each Keras backend (TensorFlow, JAX, PyTorch), each in its own process.

What tests/keras_check.py measures there: equality with Keras's own from-logits losses
at pos_weight 1 (with and without sample_weight and label smoothing, every reduction),
per-class pos_weight against a float64 reference, accuracy where Keras loses digits,
``model.compile``/``model.fit`` with decreasing loss, and ``model.save`` /
``keras.models.load_model`` without ``custom_objects``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LIBRARY = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}

if importlib.util.find_spec("keras") is None:
    pytest.skip("Keras 3 is not installed (nox -s keras installs it)", allow_module_level=True)


@pytest.fixture(scope="module", params=list(LIBRARY))
def report(request, tmp_path_factory):
    backend = request.param
    if importlib.util.find_spec(LIBRARY[backend]) is None:
        pytest.skip(f"Keras backend {backend}: {LIBRARY[backend]} is not installed")
    out = tmp_path_factory.mktemp(f"keras_{backend}")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONWARNINGS="ignore",
               TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, str(HERE / "keras_check.py"), str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["backend"] == backend
    return data


def test_equals_keras_binary_crossentropy_at_pos_weight_one(report):
    assert report["bce_vs_keras_rel"] <= 1e-6


def test_focal_equals_keras_binary_focal_crossentropy(report):
    assert report["focal_vs_keras_rel"] <= 1e-5


def test_per_class_pos_weight_and_sample_weight(report):
    assert report["pos_weight_rel"] <= 1e-6
    assert report["weighted_mean_rel"] <= 1e-6


def test_accurate_where_keras_loses_digits(report):
    """Ours is within a few float32 ulps of the float64 truth; Keras's figure on this
    backend is recorded in the report (README shows it)."""
    assert report["hard_case_rel_ours"] <= 4 * 2**-23
    print(report["backend"], "Keras relative error", report["hard_case_rel_keras"])


@pytest.mark.parametrize("loss", ["weighted", "focal"])
def test_fit_save_and_load_without_custom_objects(report, loss):
    hist = report[f"{loss}_history"]
    assert all(v == v and v < float("inf") for v in hist)
    assert hist[-1] < hist[0]
    assert report[f"{loss}_loaded_class"] == {"weighted": "WeightedBinaryCrossentropy",
                                              "focal": "SigmoidFocalCrossentropy"}[loss]
    assert report[f"{loss}_config_equal"]
    assert report[f"{loss}_evaluate_rel"] <= 1e-6
