"""Measurements for issues 8 and 11: compiled PyTorch against compiled native, float32
reductions at 1e8 elements against a float64 reference on every CPU backend, and
TensorFlow (eager and XLA) against ``tf.nn.weighted_cross_entropy_with_logits``.

    python benchmarks/contexts.py              # all; rewrites BENCHMARKS.md [contexts]
    python benchmarks/contexts.py --no-write   # print only

Not part of the test suite (the tests check correctness; this measures).
"""

from __future__ import annotations

import argparse
import gc
import warnings
from typing import Any

import numpy as np
from bench import _timeit, machine, write_section  # also puts src/ on sys.path

import wce_xp

Q = 2.0


def _interleaved(fns: dict[str, Any], rounds: int = 5) -> dict[str, float]:
    """Seconds per call of each function: the best of ``rounds`` medians, the functions
    taking turns (so that a slow moment of the machine is not charged to one of them)."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            best[k] = min(best[k], _timeit(fn, min_time=0.2))
    return best


def compiled_rows(sizes: list[int], cols: int = 10) -> list[dict[str, Any]]:
    """torch.compile(fullgraph=True) of wce_xp's mean loss against torch.compile of
    F.binary_cross_entropy_with_logits (and eager native), forward and forward+backward,
    (N/cols, cols) float32, PyTorch's default threads."""
    import torch
    import torch._dynamo

    F = torch.nn.functional
    torch._dynamo.config.cache_size_limit = 64
    rows = []
    for n in sizes:
        rng = np.random.default_rng(0)
        x = torch.asarray(rng.normal(0, 4, (n // cols, cols)).astype(np.float32))
        z = torch.asarray((rng.uniform(size=(n // cols, cols)) > 0.8).astype(np.float32))
        q = torch.full((cols,), Q)

        def ours(zz, xx):
            return wce_xp.weighted_cross_entropy_with_logits(zz, xx, Q, reduction="mean")

        def native(zz, xx):
            return F.binary_cross_entropy_with_logits(xx, zz, pos_weight=q)

        impls = {"wce_xp compiled": torch.compile(ours, fullgraph=True),
                 "native compiled": torch.compile(native, fullgraph=True),
                 "native eager": native}
        fns: dict[str, Any] = {}
        for name, fn in impls.items():
            fns[f"{name} fwd"] = lambda fn=fn: fn(z, x)
            xr = x.clone().requires_grad_(True)

            def fb(fn=fn, xr=xr):
                xr.grad = None
                fn(z, xr).backward()

            fns[f"{name} fwd+bwd"] = fb
        row: dict[str, Any] = {"n": n, **_interleaved(fns, rounds=3)}
        with torch.no_grad():
            a = impls["wce_xp compiled"](z, x).double()
            b = ours(z.double(), x.double())
        row["rel. error vs float64"] = float(abs(a - b) / b)
        rows.append(row)
        print(row)
    return rows


def tensorflow_rows(sizes: list[int], cols: int = 10) -> list[dict[str, Any]]:
    """wce_xp on tf.Tensor against tf.nn.weighted_cross_entropy_with_logits, eagerly and
    inside tf.function(jit_compile=True): elementwise, (N/cols, cols) float32."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rows = []
    for n in sizes:
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(0, 4, (n // cols, cols)).astype(np.float32))
        z = tf.constant((rng.uniform(size=(n // cols, cols)) > 0.8).astype(np.float32))

        def ours(zz, xx):
            return wce_xp.weighted_cross_entropy_with_logits(zz, xx, Q)

        def peer(zz, xx):
            return tf.nn.weighted_cross_entropy_with_logits(zz, xx, Q)

        oj, pj = (tf.function(f, jit_compile=True) for f in (ours, peer))
        t = _interleaved({"ours eager": lambda: ours(z, x).numpy(),
                          "tf eager": lambda: peer(z, x).numpy(),
                          "ours xla": lambda: oj(z, x).numpy(),
                          "tf xla": lambda: pj(z, x).numpy()})
        rows.append({"n": n, **t})
        print(rows[-1])
    return rows


def reduction_rows(n: int = 100_000_000, classes: int = 2) -> list[dict[str, Any]]:
    """Relative error of float32 sums and means (all axes, and per class over axis 0)
    against the same computation in float64, at ``n`` elements."""
    rng = np.random.default_rng(1)
    shape = (n // classes, classes)
    x = rng.normal(0, 2, shape).astype(np.float32)
    z = (rng.uniform(size=shape) < 0.3).astype(np.float32)
    wce = wce_xp.weighted_cross_entropy_with_logits
    refs = {}
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    for red in ("sum", "mean"):
        for axis in (None, 0):
            refs[red, axis] = np.asarray(wce(z64, x64, Q, reduction=red, axis=axis))
    del x64, z64
    gc.collect()

    def backends() -> Any:
        yield "numpy", (lambda a: a), np.asarray
        try:
            import torch

            yield "torch", torch.from_numpy, lambda t: t.numpy()
        except ImportError:
            pass
        try:
            import jax
            import jax.numpy as jnp

            jax.config.update("jax_enable_x64", True)
            yield "jax", jnp.asarray, np.asarray
        except ImportError:
            pass
        try:
            import dask.array as da

            yield "dask", (lambda a: da.from_array(a, chunks=(5_000_000, classes))), (
                lambda d: np.asarray(d.compute()))
        except ImportError:
            pass

    rows = []
    for name, to, back in backends():
        zz, xx = to(z), to(x)
        row: dict[str, Any] = {"backend": name}
        for (red, axis), ref in refs.items():
            got = back(wce(zz, xx, Q, reduction=red, axis=axis)).astype(np.float64)
            row[f"{red}, axis={axis}"] = float(np.max(np.abs(got - ref) / np.abs(ref)))
        rows.append(row)
        print(row)
        del zz, xx
        gc.collect()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--n", type=int, default=100_000_000, help="elements for reductions")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    out = [f"Machine: {machine()}.", ""]
    out += ["### float32 reductions against float64 (max relative error)", "",
            f"{args.n:.0e} float32 elements as ({args.n // 2}, 2); pos_weight 2. Target: 1e-6.",
            ""]
    red = reduction_rows(args.n)
    cols = [c for c in red[0] if c != "backend"]
    out.append("| backend | " + " | ".join(cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for r in red:
        out.append(f"| {r['backend']} | " + " | ".join(f"{r[c]:.1e}" for c in cols) + " |")
    out += ["", "### torch.compile(fullgraph=True): wce_xp against the compiled native "
            "function", "",
            "`reduction=\"mean\"`, (N/10, 10) float32, PyTorch's default threads; "
            "milliseconds per call (best of three medians, taking turns). Ratio: native "
            "compiled time / wce_xp "
            "compiled time (above 1: wce_xp faster).", ""]
    comp = compiled_rows([1_000, 100_000, 1_000_000, 10_000_000])
    out.append("| n | wce_xp fwd | native fwd | ratio | wce_xp fwd+bwd | native fwd+bwd | "
               "ratio | native eager fwd+bwd | rel. error (fwd) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in comp:
        f1, f2 = r["wce_xp compiled fwd"], r["native compiled fwd"]
        b1, b2 = r["wce_xp compiled fwd+bwd"], r["native compiled fwd+bwd"]
        out.append(f"| {r['n']:.0e} | {f1 * 1e3:.3f} | {f2 * 1e3:.3f} | {f2 / f1:.2f} | "
                   f"{b1 * 1e3:.3f} | {b2 * 1e3:.3f} | {b2 / b1:.2f} | "
                   f"{r['native eager fwd+bwd'] * 1e3:.3f} | "
                   f"{r['rel. error vs float64']:.1e} |")
    out += ["", "### TensorFlow: wce_xp against `tf.nn.weighted_cross_entropy_with_logits`",
            "",
            "Elementwise, (N/10, 10) float32, pos_weight 2; milliseconds per call (best of "
            "five medians, the implementations taking turns; the result read back). "
            "Ratio: TensorFlow's time / wce_xp's (above 1: wce_xp faster). Targets: eager "
            "ratio ≥ 0.67 (within 1.5x), XLA ratio ≥ 0.91 (within 1.1x).", "",
            "| n | wce_xp eager | tf eager | ratio | wce_xp XLA | tf XLA | ratio |",
            "|---|---|---|---|---|---|---|"]
    for r in tensorflow_rows([1_000, 10_000, 100_000, 1_000_000, 10_000_000]):
        oe, te, ox, tx = r["ours eager"], r["tf eager"], r["ours xla"], r["tf xla"]
        out.append(f"| {r['n']:.0e} | {oe * 1e3:.3f} | {te * 1e3:.3f} | {te / oe:.2f} | "
                   f"{ox * 1e3:.3f} | {tx * 1e3:.3f} | {tx / ox:.2f} |")
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        write_section("contexts", "## Contexts: compiled PyTorch, float32 reductions, "
                      "TensorFlow\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
