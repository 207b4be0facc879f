"""Accuracy of wce_xp, PyTorch's native function and TensorFlow's formula against mpmath.

    python benchmarks/accuracy.py          # prints a table, updates BENCHMARKS.md [accuracy]

TensorFlow itself is not a dependency: its formula
``(1 - z)·x + l·(log1p(exp(-|x|)) + max(-x, 0))`` is evaluated in NumPy (the same
elementary operations TensorFlow's CPU kernels run). PyTorch's
``binary_cross_entropy_with_logits`` is called directly when torch is installed.
Same grid as the test suite: logits 0, ±1e-30 … ±1e30, hard and soft labels,
pos_weight 0 … 1e3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import wce_xp  # noqa: E402
from benchmarks.bench import machine, write_section  # noqa: E402
from tests import _reference as R  # noqa: E402


def tf_formula(z, x, q):
    lw = 1 + (q - 1) * z
    with np.errstate(invalid="ignore", over="ignore"):
        return (1 - z) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))


def main() -> int:
    rows = []
    try:
        import torch
    except ImportError:
        torch = None
    for dt in ("float32", "float64"):
        x, z, q = R.accuracy_grid(dt)
        ref = R.loss_reference(dt)
        soft = (z != 0) & (z != 1)
        cands = {"wce_xp (NumPy)": wce_xp.weighted_cross_entropy_with_logits(z, x, q),
                 "TensorFlow's formula": tf_formula(z, x, q)}
        if torch is not None:
            cands["wce_xp (PyTorch)"] = wce_xp.weighted_cross_entropy_with_logits(
                torch.asarray(z), torch.asarray(x), torch.asarray(q)).numpy()
            cands["PyTorch native"] = torch.nn.functional.binary_cross_entropy_with_logits(
                torch.asarray(x), torch.asarray(z), pos_weight=torch.asarray(q),
                reduction="none").numpy()
        for name, got in cands.items():
            err = R.ulp_error(got, ref, dt)
            rows.append((name, dt, float(np.max(err)), float(np.max(err[soft]))))
    # the two headline cases
    x63 = np.array([-63.0], np.float32)
    z0 = np.zeros(1, np.float32)
    true63 = float(R.loss(-63.0, 0.0, 1.0))
    cases = [("label 0, logit -63 (float32): true value", f"{true63:.3g}"),
             ("  wce_xp", f"{float(wce_xp.sigmoid_cross_entropy_with_logits(z0, x63)[0]):.3g}"),
             ("  TensorFlow's formula", f"{float(tf_formula(z0, x63, 1.0)[0]):.3g}")]
    xinf = np.array([np.inf, -np.inf])
    zi = np.array([1.0, 0.0])
    cases += [("logits +inf (label 1), -inf (label 0): true value", "0, 0"),
              ("  wce_xp", ", ".join(f"{v:g}" for v in wce_xp.sigmoid_cross_entropy_with_logits(
                  zi, xinf))),
              ("  TensorFlow's formula", ", ".join(f"{v:g}" for v in tf_formula(zi, xinf, 1.0)))]
    if torch is not None:
        t63 = float(torch.nn.functional.binary_cross_entropy_with_logits(
            torch.asarray(x63), torch.asarray(z0), reduction="none")[0])
        cases.insert(3, ("  PyTorch native", f"{t63:.3g}"))
        cases.append(("  PyTorch native", ", ".join(
            f"{v:g}" for v in torch.nn.functional.binary_cross_entropy_with_logits(
                torch.asarray(xinf), torch.asarray(zi), reduction="none").numpy())))
        # gradient at logit 0, label 0.25, pos_weight 2: true l/2 - q·z = 0.625 - 0.5
        z25, q3 = torch.tensor([0.25], dtype=torch.float64), 2.0
        xt = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        lw = 1 + (q3 - 1) * z25
        tf = (1 - z25) * xt + lw * (torch.log1p(torch.exp(-xt.abs())) + torch.relu(-xt))
        (g_tf,) = torch.autograd.grad(tf.sum(), xt)
        xw = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        (g_w,) = torch.autograd.grad(
            wce_xp.weighted_cross_entropy_with_logits(z25, xw, q3).sum(), xw)
        true_g = float(R.grad(0.0, 0.25, q3)[0])
        cases += [(f"gradient at logit 0 (label 0.25, pos_weight {q3:g}): true value",
                   f"{true_g:g}"),
                  ("  wce_xp (torch autograd)", f"{float(g_w[0]):g}"),
                  ("  TensorFlow's formula (autograd)", f"{float(g_tf[0]):g}")]
    table = ("| implementation | dtype | max error, all (ulp) | max error, soft labels (ulp) "
             "|\n|---|---|---|---|\n")
    for name, dt, e_all, e_soft in rows:
        table += f"| {name} | {dt} | {e_all:,.3g} | {e_soft:,.3g} |\n"
    text = (f"### Accuracy — measured {time.strftime('%Y-%m-%d')}\n\n{machine()}\n\n"
            f"Against a 60-digit mpmath reference over {R.accuracy_grid('float32')[0].size:,} "
            "points (logits 0, ±1e-30 … ±1e30, hard and soft labels, pos_weight 0 … 1e3). Where "
            "the true value is below 1e-30 (float32) / 1e-300 (float64) an absolute error up "
            "to that threshold counts as 0. Infinite logits are in the second table.\n\n" + table
            + "\n| case | value |\n|---|---|\n"
            + "".join(f"| {a} | {b} |\n" for a, b in cases))
    print(text)
    if "--no-write" not in sys.argv:
        write_section("accuracy", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
