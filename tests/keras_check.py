"""Checks of wce_xp.keras on one Keras backend, run as ``KERAS_BACKEND=... python
tests/keras_check.py OUTDIR`` (Keras fixes its backend at import, so each backend needs
its own process). Prints one JSON object; tests/test_keras.py asserts on it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from wce_xp.keras import SigmoidFocalCrossentropy, WeightedBinaryCrossentropy


def value(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float64)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def main(out_dir: Path) -> dict:
    rng = np.random.default_rng(0)
    y_true = (rng.uniform(size=(32, 5)) > 0.6).astype("float32")
    y_pred = rng.normal(0, 3, (32, 5)).astype("float32")
    sw = rng.uniform(0.1, 2.0, 32).astype("float32")
    res: dict = {"backend": keras.backend.backend()}

    # pos_weight 1 against Keras's own from-logits loss
    worst = 0.0
    for s in (0.0, 0.1):
        for red in ("sum_over_batch_size", "sum", None):
            ours = WeightedBinaryCrossentropy(label_smoothing=s, reduction=red)
            peer = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=s,
                                                   reduction=red)
            for w in (None, sw, sw[:, None]):
                worst = max(worst, rel(value(ours(y_true, y_pred, sample_weight=w)),
                                       value(peer(y_true, y_pred, sample_weight=w))))
    res["bce_vs_keras_rel"] = worst
    worst = 0.0
    for g in (0.5, 2.0):
        ours = SigmoidFocalCrossentropy(gamma=g)
        peer = keras.losses.BinaryFocalCrossentropy(gamma=g, from_logits=True,
                                                    apply_class_balancing=False)
        for w in (None, sw):
            worst = max(worst, rel(value(ours(y_true, y_pred, sample_weight=w)),
                                   value(peer(y_true, y_pred, sample_weight=w))))
    res["focal_vs_keras_rel"] = worst

    # per-class pos_weight against a float64 reference
    q = np.array([1.0, 2.0, 3.0, 0.5, 4.0])
    x64, z64 = y_pred.astype(np.float64), y_true.astype(np.float64)
    ref = (q * z64 * np.logaddexp(0, -x64) + (1 - z64) * np.logaddexp(0, x64)).mean(-1)
    ours = WeightedBinaryCrossentropy(pos_weight=q.tolist(), reduction=None)
    res["pos_weight_rel"] = rel(value(ours(y_true, y_pred)), ref)
    res["weighted_mean_rel"] = rel(
        value(WeightedBinaryCrossentropy(pos_weight=q.tolist())(y_true, y_pred,
                                                                 sample_weight=sw)),
        (sw * ref).mean())

    # where Keras loses digits: float32 logits far on the correct side, soft labels
    xs = np.array([-80.0, -60.0, -30.0, 30.0, 60.0, 80.0], "float32")[None, :].repeat(3, 0)
    zs = np.array([[0.0], [1.0], [0.999]], "float32").repeat(6, 1)
    truth = (zs.astype(np.float64) * np.logaddexp(0, -xs.astype(np.float64))
             + (1 - zs.astype(np.float64)) * np.logaddexp(0, xs.astype(np.float64)))
    ours = value(WeightedBinaryCrossentropy(reduction=None)(zs[..., None], xs[..., None]))
    peer = value(keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(
        zs[..., None], xs[..., None]))
    res["hard_case_rel_ours"] = rel(ours, truth)
    res["hard_case_rel_keras"] = rel(peer, truth)

    # training and serialization
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x[:, :3] + 0.3 * rng.normal(size=(128, 3)) > 0.5).astype("float32")
    for name, loss in (("weighted", WeightedBinaryCrossentropy(pos_weight=[1.0, 2.0, 3.0],
                                                               label_smoothing=0.05)),
                       ("focal", SigmoidFocalCrossentropy(gamma=2.0, alpha=0.25,
                                                          pos_weight=2.0))):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        hist = model.fit(x, y, epochs=5, batch_size=32, verbose=0,
                         sample_weight=np.linspace(0.5, 1.5, 128).astype("float32"))
        path = out_dir / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)  # no custom_objects
        res[f"{name}_history"] = [float(v) for v in hist.history["loss"]]
        res[f"{name}_loaded_class"] = type(loaded.loss).__name__
        res[f"{name}_config_equal"] = loaded.loss.get_config() == loss.get_config()
        res[f"{name}_evaluate_rel"] = rel(loaded.evaluate(x, y, verbose=0),
                                          model.evaluate(x, y, verbose=0))
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
