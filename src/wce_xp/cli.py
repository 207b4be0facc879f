"""The ``wce-xp`` command line: ``demo`` and ``eval``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from . import _backends
from ._loss import weighted_cross_entropy_with_logits

TF_LABELS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def _to_numpy(a: object) -> np.ndarray:
    mod = type(a).__module__
    if mod.startswith("torch"):
        return a.detach().cpu().numpy()  # type: ignore[attr-defined, no-any-return]
    if mod.startswith("dask"):
        return np.asarray(a.compute())  # type: ignore[attr-defined]
    if mod.startswith("cupy"):
        return a.get()  # type: ignore[attr-defined, no-any-return]
    if mod.startswith("array_api_strict"):
        return np.asarray(a._array)  # type: ignore[attr-defined]
    return np.asarray(a)


def demo(out: object = sys.stdout) -> int:
    """TensorFlow's documented example on every installed backend."""
    logits_np = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    write = out.write  # type: ignore[attr-defined]
    write("TensorFlow's example: weighted_cross_entropy_with_logits(\n"
          f"    logits=<3x3 float32>, targets={TF_LABELS}, pos_weight=2.0)\n")
    write(f"logits =\n{np.array2string(logits_np, precision=6)}\n\n")
    results: dict[str, np.ndarray] = {}
    for name in _backends.installed():
        mod = _backends.load(name)
        logits = mod.asarray(logits_np)
        res = weighted_cross_entropy_with_logits(logits=logits, targets=TF_LABELS, pos_weight=2.0)
        arr = _to_numpy(res)
        results[name] = arr
        write(f"{name} ({type(res).__module__}.{type(res).__name__}, {res.dtype}):\n")
        write(np.array2string(arr, precision=7) + "\n")
    names = list(results)
    worst = 0.0
    for a in names:
        for b in names:
            worst = max(worst, float(np.max(np.abs(results[a].astype(np.float64)
                                                   - results[b].astype(np.float64)))))
    write(f"\nbackends: {', '.join(names)}\n")
    write(f"largest difference between backends: {worst:.3g}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wce-xp", description="Weighted sigmoid cross-entropy on any array backend.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run TensorFlow's example on every installed backend")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return demo()
    return 2  # pragma: no cover
