"""The training matrix: wce_xp against the functions it replaces, where training loops
call them (issue 9). Writes the ``training`` section of BENCHMARKS.md, a chart per
backend and ``benchmarks/results/training.json``.

    python benchmarks/training.py            # sizes 1e2 … 1e7, and 1e8 for the (N, 10) rows
    python benchmarks/training.py --quick    # sizes up to 1e5, fewer repetitions
    python benchmarks/training.py --no-write # print only

Cases: sizes × shapes (N,), (N/10, 10), (N/1000, 1000) × reductions ``none``/``mean``
× forward / forward+backward × threads (1, the library's default). Peers: PyTorch's
``binary_cross_entropy_with_logits`` (eager; ``torch.compile``d for the (N, 10) rows),
optax's ``sigmoid_binary_cross_entropy`` under ``jax.jit``, the plain NumPy formula,
TensorFlow's ``weighted_cross_entropy_with_logits`` (eager and XLA, forward), and the
copy roofline (``np.copyto`` of the logits: one read, one write). Every figure is a
speed-up: the peer's median time over wce_xp's (above 1: wce_xp is faster), both
measured in the same run on the same machine. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import wce_xp  # noqa: E402
from benchmarks.bench import _timeit, machine, write_section  # noqa: E402
from benchmarks.bench import chart as bench_chart  # noqa: E402

Q = 2.0
SHAPES = {"(N,)": 1, "(N, 10)": 10, "(N, 1000)": 1000}
HUGE_SHAPES = ("(N, 10)",)  # the only shape also measured above 1e7 (at 1e8)


def _shape(n: int, cols: int) -> tuple[int, ...] | None:
    if cols == 1:
        return (n,)
    return None if n < cols else (n // cols, cols)


def _data(shape: tuple[int, ...], dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, shape).astype(dtype)
    z = (rng.uniform(size=shape) > 0.8).astype(dtype)
    return x, z


def _cases(sizes: list[int], backend: str,
           modes: tuple[str, ...] = ("forward", "forward+backward")) -> Any:
    """``(row, x, z, big)`` for every shape, size, reduction and mode of the matrix: the
    row's identifying fields, the NumPy data (made once per shape and size), and whether
    the size is 1e7 or more."""
    for shape_name, cols in SHAPES.items():
        for n in sizes:
            shape = _shape(n, cols)
            if shape is None or (n > 10**7 and shape_name not in HUGE_SHAPES):
                continue
            x, z = _data(shape)
            for red in ("none", "mean"):
                for mode in modes:
                    yield ({"backend": backend, "shape": shape_name, "n": n,
                            "reduction": red, "mode": mode}, x, z, n >= 10**7)


def plain_numpy(z: np.ndarray, x: np.ndarray, reduction: str) -> Any:
    """The 4-line NumPy formula users write (TensorFlow's)."""
    lw = 1 + (Q - 1) * z
    loss = (1 - z) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))
    return loss if reduction == "none" else loss.mean()


def _t(fn: Callable[[], Any], big: bool, quick: bool, min_time: float = 0.3) -> float:
    """Median seconds of one call. Calls under 0.5 ms are timed in batches of about
    0.5 ms each (a median over single calls of tens of µs moved by ±50% between runs
    on this shared machine: the timer, the scheduler, JAX's dispatch)."""
    if big:
        return _timeit(fn, min_time=0.05 if quick else min(min_time, 0.2), max_reps=5)
    fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    k = max(1, min(2000, int(5e-4 / max(once, 1e-7))))

    def batch() -> None:
        for _ in range(k):
            fn()

    return _timeit(batch, min_time=0.05 if quick else min_time, max_reps=200) / k


def _interleaved(fns: dict[str, Callable[[], Any]], big: bool, quick: bool,
                 rounds: int = 5) -> dict[str, float]:
    """Median seconds of one call of each, measured in alternating rounds (each round
    a fifth of the time): a drift of the machine's speed (JAX's and TensorFlow's own
    thread pools, other tenants) reaches every implementation alike, where one
    timing after the other put 0.5x or 2x into single rows."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(1 if quick else rounds):
        for name, fn in fns.items():
            times[name].append(_t(fn, big, quick, min_time=0.3 / rounds))
    return {name: statistics.median(ts) for name, ts in times.items()}


# --- NumPy ---------------------------------------------------------------------------

def numpy_rows(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    rows = []
    cores = len(os.sched_getaffinity(0))
    for r, x, z, big in _cases(sizes, "numpy", ("forward",)):
        red = r["reduction"]
        r["plain"] = _t(lambda: plain_numpy(z, x, red), big, quick)
        for threads in sorted({1, cores}):
            wce_xp.set_num_threads(threads)
            r[f"wce_xp[{threads}t]"] = _t(
                lambda: wce_xp.weighted_cross_entropy_with_logits(
                    z, x, Q, reduction=red), big, quick)
        wce_xp.set_num_threads(None)
        if red == "none":
            out = np.empty_like(x)
            r["copy"] = _t(lambda: np.copyto(out, x), big, quick)
        rows.append(r)
        print(r, flush=True)
    return rows


# --- PyTorch (CPU) -----------------------------------------------------------------

def torch_rows(sizes: list[int], quick: bool, compiled: bool) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    default_threads = torch.get_num_threads()
    pw = torch.tensor(Q)
    native = F.binary_cross_entropy_with_logits
    comp = torch.compile(native, dynamic=True) if compiled else None
    rows = []
    for r, xn, zn, big in _cases(sizes, "torch"):
        x, z = torch.from_numpy(xn), torch.from_numpy(zn)
        red, mode, n = r["reduction"], r["mode"], r["n"]

        def run(f: Callable[..., Any], mode: str = mode, red: str = red) -> Any:
            if mode == "forward":
                with torch.no_grad():
                    return f(x, z, pos_weight=pw, reduction=red)
            xg = x.detach().requires_grad_()
            out = f(xg, z, pos_weight=pw, reduction=red)
            (out if red == "mean" else out.sum()).backward()
            return None

        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            tag = f"{threads}t"
            fns = {f"native[{tag}]": lambda: run(native),
                   f"wce_xp[{tag}]": lambda: run(wce_xp.binary_cross_entropy_with_logits)}
            if comp is not None and r["shape"] == "(N, 10)" and red == "mean" \
                    and threads == default_threads and n >= 10**3:
                fns[f"native compiled[{tag}]"] = lambda: run(comp)
            # alternating rounds, as for JAX: one implementation after the other moved
            # single rows by ±15% on this shared machine
            r.update(_interleaved(fns, big, quick))
        torch.set_num_threads(default_threads)
        rows.append(r)
        print(r, flush=True)
    return rows


# --- JAX ---------------------------------------------------------------------------

# Below this size a jitted call's time is JAX's dispatch (5-40 µs, at levels that differ
# between functions and processes), not the loss's: there the loss is also timed inside
# one jitted loop, as it runs inside a compiled training step.
IN_JIT_BELOW = 10**5


def _in_jit_steps(n: int) -> int:
    return max(20, 2 * 10**6 // n)


def _in_jit(jax: Any, jnp: Any, step: Any, n: int) -> Any:
    """One jitted ``fori_loop`` of ``_in_jit_steps(n)`` calls of ``step(x, z)``, each on
    logits that depend on the previous result (``x + acc``, acc ~ 1e-30: the same
    float32 values, but nothing XLA may hoist out of the loop); returns (steps, acc)."""
    k = _in_jit_steps(n)

    def run(x: Any, z: Any) -> Any:
        def body(i: Any, acc: Any) -> Any:
            return acc + jnp.sum(step(x + acc, z)) * 1e-30

        return k, jax.lax.fori_loop(0, k, body, jnp.float32(0))

    return jax.jit(run)


def jax_rows(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp
    import optax

    rows = []

    def ox(x: Any, z: Any, red: str) -> Any:
        loss = optax.sigmoid_binary_cross_entropy(x, z)
        return loss if red == "none" else jnp.mean(loss)

    def wx(x: Any, z: Any, red: str) -> Any:
        return wce_xp.sigmoid_cross_entropy_with_logits(z, x, reduction=red)

    for r, xn, zn, big in _cases(sizes, "jax"):
        x, z = jnp.asarray(xn), jnp.asarray(zn)
        red = r["reduction"]
        fns = {}
        for name, f in (("optax", ox), ("wce_xp", wx)):
            if r["mode"] == "forward":
                g = jax.jit(lambda x, z, f=f, red=red: f(x, z, red))
            else:
                g = jax.jit(jax.grad(lambda x, z, f=f, red=red: jnp.sum(f(x, z, red))))
            fns[name] = lambda g=g: g(x, z).block_until_ready()
            if r["n"] < IN_JIT_BELOW:
                looped = _in_jit(jax, jnp, (lambda x, z, f=f, red=red: f(x, z, red))
                                 if r["mode"] == "forward" else
                                 jax.grad(lambda x, z, f=f, red=red: jnp.sum(f(x, z, red))),
                                 r["n"])
                fns[f"{name} in-jit"] = lambda g=looped: float(g(x, z)[1])
        times = _interleaved(fns, big, quick)
        for name in ("optax", "wce_xp"):  # seconds per step of the loop
            if f"{name} in-jit" in times:
                times[f"{name} in-jit"] /= _in_jit_steps(r["n"])
        r.update(times)
        rows.append(r)
        print(r, flush=True)
    return rows


# --- TensorFlow (forward) ----------------------------------------------------------

def tf_rows(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rows = []
    native = tf.nn.weighted_cross_entropy_with_logits
    xla = tf.function(lambda z, x: tf.reduce_mean(native(z, x, Q)), jit_compile=True)
    ours_xla = tf.function(lambda z, x: wce_xp.weighted_cross_entropy_with_logits(
        z, x, Q, reduction="mean"), jit_compile=True)
    for n in sizes:
        shape = _shape(n, 10)
        if shape is None:
            continue
        xn, zn = _data(shape)
        x, z = tf.constant(xn), tf.constant(zn)
        big = n >= 10**7
        r: dict[str, Any] = {"backend": "tensorflow", "shape": "(N, 10)", "n": n,
                             "reduction": "mean", "mode": "forward"}
        r.update(_interleaved({
            "native eager": lambda: tf.reduce_mean(native(z, x, Q)).numpy(),
            "native XLA": lambda: xla(z, x).numpy(),
            "wce_xp": lambda: wce_xp.weighted_cross_entropy_with_logits(
                z, x, Q, reduction="mean").numpy(),
            "wce_xp XLA": lambda: ours_xla(z, x).numpy()}, big, quick))
        rows.append(r)
        print(r, flush=True)
    return rows


# --- per-call cost -----------------------------------------------------------------

def per_call_rows(quick: bool) -> list[dict[str, Any]]:
    """Default arguments, small inputs: the cost of dispatch and checks."""
    import torch
    import torch.nn.functional as F

    rows = []
    for n in (1, 10, 100, 1000, 10_000):
        shape = (max(n // 10, 1), min(n, 10))
        xn, zn = _data(shape)
        x, z = torch.from_numpy(xn), torch.from_numpy(zn)
        r: dict[str, Any] = {"n": n, "shape": str(shape)}
        r["numpy plain"] = _t(lambda: plain_numpy(zn, xn, "none"), False, quick)
        r["numpy wce_xp"] = _t(lambda: wce_xp.weighted_cross_entropy_with_logits(
            zn, xn, Q), False, quick)
        r["torch native"] = _t(lambda: F.binary_cross_entropy_with_logits(x, z),
                               False, quick)
        r["torch wce_xp"] = _t(lambda: wce_xp.binary_cross_entropy_with_logits(
            x, z), False, quick)
        xg = x.detach().requires_grad_()
        r["torch native fwd+bwd"] = _t(
            lambda: F.binary_cross_entropy_with_logits(xg, z).backward(),
            False, quick)
        r["torch wce_xp fwd+bwd"] = _t(
            lambda: wce_xp.binary_cross_entropy_with_logits(xg, z).backward(),
            False, quick)
        rows.append(r)
        print(r, flush=True)
    return rows


# --- memory with every option (NumPy, 1e8 float32) ------------------------------------

def memory_rows(n: int) -> list[dict[str, Any]]:
    """Peak memory traced beyond the inputs (tracemalloc; NumPy reports its buffers to
    it), for each option, with wce_xp's engine and with the generic path."""
    import tracemalloc

    from wce_xp import _registry

    cols = 10
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, (n // cols, cols)).astype(np.float32)
    z = (rng.uniform(size=x.shape) > 0.8).astype(np.float32)
    extra: dict[str, Any] = {}
    wce, focal = wce_xp.weighted_cross_entropy_with_logits, wce_xp.sigmoid_focal_loss
    cases: dict[str, Callable[[], Any]] = {
        "plain": lambda: wce(z, x, Q, reduction="mean"),
        "label_smoothing=0.1": lambda: wce(z, x, Q, label_smoothing=0.1, reduction="mean"),
        "mask": lambda: wce(z, x, Q, mask=extra["mask"], reduction="mean"),
        "bool labels": lambda: wce(extra["zb"], x, Q, reduction="mean"),
        "int8 labels": lambda: wce(extra["zi"], x, Q, reduction="mean"),
        "weight (per element)": lambda: wce(z, x, Q, weight=extra["w"],
                                            reduction="weighted_mean"),
        "pos_weight per class": lambda: wce(z, x, extra["q"], reduction="mean"),
        "axis=0": lambda: wce(z, x, Q, reduction="mean", axis=0),
        "axis=1": lambda: wce(z, x, Q, reduction="sum", axis=1),
        "sigmoid_focal_loss": lambda: focal(z, x, reduction="mean"),
        "sigmoid_focal_loss, mask, axis=0": lambda: focal(z, x, mask=extra["mask"],
                                                           reduction="mean", axis=0),
    }
    rows = []
    for name, fn in cases.items():
        extra.clear()
        if "mask" in name:
            extra["mask"] = rng.uniform(size=x.shape) > 0.1
        if name == "bool labels":
            extra["zb"] = z > 0.5
        if name == "int8 labels":
            extra["zi"] = z.astype(np.int8)
        if name.startswith("weight"):
            extra["w"] = rng.uniform(size=x.shape).astype(np.float32)
        if name == "pos_weight per class":
            extra["q"] = rng.uniform(0, 3, cols).astype(np.float32)
        r: dict[str, Any] = {"option": name, "n": n}
        for label, ctx in (("wce_xp", None), ("generic", _registry.generic_only)):
            if label == "generic" and n > 10**7:
                continue  # the generic path needs several GB at 1e8: measured at 1e7 below
            tracemalloc.start()
            t0 = time.perf_counter()
            if ctx is None:
                fn()
            else:
                with ctx():
                    fn()
            r[f"{label} s"] = time.perf_counter() - t0
            r[f"{label} MiB"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        rows.append(r)
        print(r, flush=True)
    return rows


# --- report ------------------------------------------------------------------------

def _ratio(r: dict[str, Any], peer: str, ours: str) -> str:
    if peer not in r or ours not in r:
        return "—"
    return f"{r[peer] / r[ours]:.2f}"


def _matrix(rows: list[dict[str, Any]], backend: str, peer: str, ours: str,
            cols: list[tuple[str, str]]) -> str:
    head = "| shape | n | " + " | ".join(f"{red} {mode}" for red, mode in cols) + " |\n"
    head += "|---|---|" + "---|" * len(cols) + "\n"
    keyed = {(r["shape"], r["n"], r["reduction"], r["mode"]): r for r in rows
             if r["backend"] == backend}
    body = ""
    for shape in SHAPES:
        for n in sorted({k[1] for k in keyed if k[0] == shape}):
            cells = [_ratio(keyed.get((shape, n, red, mode), {}), peer, ours)
                     for red, mode in cols]
            body += f"| {shape} | {n:.0e} | " + " | ".join(cells) + " |\n"
    return head + body


def chart(rows: list[dict[str, Any]], backend: str, impls: list[str], path: Path,
          title: str, reduction: str, mode: str, shape: str = "(N, 10)") -> None:
    """bench.py's chart of the rows of one backend, shape, reduction and mode."""
    sel = sorted((r for r in rows if r["backend"] == backend and r["shape"] == shape
                  and r["reduction"] == reduction and r["mode"] == mode),
                 key=lambda r: r["n"])
    bench_chart(sel, impls, path, f"{title}, shape {shape}")


def report(rows: list[dict[str, Any]], per_call: list[dict[str, Any]], cores: int,
           torch_threads: int, memory: list[dict[str, Any]] | None = None,
           saved: dict[str, Any] | None = None) -> str:
    saved = saved or {}
    date = saved.get("date") or time.strftime("%Y-%m-%d")
    out = [f"### Training matrix — measured {date}", "",
           f"Machine: {saved.get('machine') or machine()}.",
           "Speed-ups: the peer's median time over wce_xp's in the same run (above 1: "
           "wce_xp is faster). float32, labels 0/1, `pos_weight=2`.", ""]
    out += ["#### Per-call cost (default arguments; µs per call)", "",
            "| n | shape | NumPy plain | NumPy wce_xp | ratio | torch native | torch wce_xp "
            "| ratio | torch native fwd+bwd | torch wce_xp fwd+bwd | ratio |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in per_call:
        def us(k: str, r: dict[str, Any] = r) -> str:
            return f"{r[k] * 1e6:.1f}"

        out.append(f"| {r['n']} | {r['shape']} | {us('numpy plain')} | {us('numpy wce_xp')} | "
                   f"{r['numpy wce_xp'] / r['numpy plain']:.2f}× | {us('torch native')} | "
                   f"{us('torch wce_xp')} | {r['torch wce_xp'] / r['torch native']:.2f}× | "
                   f"{us('torch native fwd+bwd')} | {us('torch wce_xp fwd+bwd')} | "
                   f"{r['torch wce_xp fwd+bwd'] / r['torch native fwd+bwd']:.2f}× |")
    out += ["", "(ratio here: wce_xp's time over the peer's; the target is at most 1.5×.)", ""]
    both = [("none", "forward"), ("none", "forward+backward"), ("mean", "forward"),
            ("mean", "forward+backward")]
    if any(r["backend"] == "torch" for r in rows):
        for t in sorted({1, torch_threads}):
            out += [f"#### PyTorch CPU, {t} thread(s): speed-up over "
                    "`F.binary_cross_entropy_with_logits`", "",
                    _matrix(rows, "torch", f"native[{t}t]", f"wce_xp[{t}t]", both)]
        comp = [r for r in rows if r["backend"] == "torch" and any("compiled" in k for k in r)]
        if comp:
            out += ["#### PyTorch CPU, (N, 10), `mean`: wce_xp (eager) against the "
                    "`torch.compile`d native function", "", "| n | forward | forward+backward |",
                    "|---|---|---|"]
            for n in sorted({r["n"] for r in comp}):
                cells = []
                for mode in ("forward", "forward+backward"):
                    r = next((r for r in comp if r["n"] == n and r["mode"] == mode), {})
                    k = next((k for k in r if "compiled" in k), None)
                    ours = f"wce_xp[{torch_threads}t]"
                    cells.append("—" if k is None else _ratio(r, k, ours))
                out.append(f"| {n:.0e} | " + " | ".join(cells) + " |")
            out.append("")
    if any(r["backend"] == "numpy" for r in rows):
        fwd = [("none", "forward"), ("mean", "forward")]
        for t in sorted({1, cores}):
            out += [f"#### NumPy, {t} thread(s): speed-up over the plain NumPy formula", "",
                    _matrix(rows, "numpy", "plain", f"wce_xp[{t}t]", fwd)]
        out += ["#### NumPy: throughput against threads (million elements/s, `none`, "
                "(N, 10)), with the copy roofline", "",
                "| n | " + " | ".join(f"{t} thread(s)" for t in sorted({1, cores}))
                + " | copy |", "|---|" + "---|" * (len({1, cores}) + 1)]
        for r in rows:
            if r["backend"] == "numpy" and r["shape"] == "(N, 10)" and r["reduction"] == "none":
                cells = [f"{r['n'] / r[f'wce_xp[{t}t]'] / 1e6:,.0f}" for t in sorted({1, cores})]
                cells.append(f"{r['n'] / r['copy'] / 1e6:,.0f}")
                out.append(f"| {r['n']:.0e} | " + " | ".join(cells) + " |")
        out.append("")
    if any(r["backend"] == "jax" for r in rows):
        out += ["#### JAX under `jit`: speed-up over optax's `sigmoid_binary_cross_entropy` "
                "(`grad` for forward+backward)", "", _matrix(rows, "jax", "optax", "wce_xp", both)]
        if any("wce_xp in-jit" in r for r in rows if r["backend"] == "jax"):
            small = [r for r in rows if r["backend"] == "jax" and r["n"] < IN_JIT_BELOW]
            out += ["#### JAX inside one jitted loop (below 1e5 elements): speed-up over optax",
                    "", "Each step of a `lax.fori_loop` computes the loss (or its `grad`) of "
                    "logits that depend on the previous step, as inside a compiled training "
                    "step; the table above times one jitted call, which at these sizes is "
                    "JAX's dispatch (5-40 µs, at levels that differ between functions and "
                    "processes).", "", _matrix(small, "jax", "optax in-jit", "wce_xp in-jit",
                                               both)]
    if any(r["backend"] == "tensorflow" for r in rows):
        out += ["#### TensorFlow, (N, 10), `mean`, forward: speed-up over "
                "`tf.nn.weighted_cross_entropy_with_logits` (eager against eager; both inside "
                "`tf.function(jit_compile=True)`)", "", "| n | eager | XLA |",
                "|---|---|---|"]
        for r in rows:
            if r["backend"] == "tensorflow":
                out.append(f"| {r['n']:.0e} | {_ratio(r, 'native eager', 'wce_xp')} | "
                           f"{_ratio(r, 'native XLA', 'wce_xp XLA')} |")
        out.append("")
    if memory:
        out += ["#### Memory beyond the inputs, NumPy, reductions with every option "
                "(tracemalloc peak; target ≤ 64 MiB at 1e8 float32 elements)", "",
                "| option | n | wce_xp MiB | wce_xp s | generic MiB | generic s |",
                "|---|---|---|---|---|---|"]
        for r in memory:
            g = (f"{r['generic MiB']:,.0f} | {r['generic s']:.2f}" if "generic MiB" in r
                 else "— | —")
            out.append(f"| {r['option']} | {r['n']:.0e} | {r['wce_xp MiB']:,.1f} | "
                       f"{r['wce_xp s']:.2f} | {g} |")
        out.append("")
    out += ["Charts: `benchmarks/training_<backend>.png` ((N, 10), throughput against size).",
            ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--only", default="numpy,torch,jax,tensorflow,percall,memory")
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved results of the backends not in --only")
    ap.add_argument("--replot", action="store_true",
                    help="the report and charts from benchmarks/results/training.json")
    args = ap.parse_args()
    res = ROOT / "benchmarks" / "results"
    if args.replot:
        saved = json.loads((res / "training.json").read_text())
        torch_threads = max((int(k.split("[")[1][:-2]) for r in saved["rows"] for k in r
                             if k.startswith("native[")), default=1)
        _write(saved["rows"], saved["per_call"], saved.get("memory", []), saved["cores"],
               torch_threads, saved, write=not args.no_write)
        return 0
    sizes = [10**k for k in range(2, 6 if args.quick else 9)]  # 1e8: (N, 10) only
    only = set(args.only.split(","))
    cores = len(os.sched_getaffinity(0))
    rows: list[dict[str, Any]] = []
    per_call: list[dict[str, Any]] = []
    torch_threads = 1
    if "percall" in only:
        per_call = per_call_rows(args.quick)
    if "numpy" in only:
        rows += numpy_rows(sizes, args.quick)
    if "torch" in only:
        import torch

        torch_threads = torch.get_num_threads()
        rows += torch_rows(sizes, args.quick, compiled=not args.quick)
    if "jax" in only:
        rows += jax_rows(sizes, args.quick)
    if "tensorflow" in only:
        try:
            rows += tf_rows(sizes, args.quick)
        except ImportError:
            print("TensorFlow missing: no TensorFlow rows", file=sys.stderr)
    memory = []
    if "memory" in only:
        memory = memory_rows(10**7) + memory_rows(10**8)
    if args.merge and (res / "training.json").exists():
        old = json.loads((res / "training.json").read_text())
        rows = [r for r in old["rows"] if r["backend"] not in only] + rows
        per_call = per_call or old["per_call"]
        memory = memory or old.get("memory", [])
        torch_threads = max((int(k.split("[")[1][:-2]) for r in rows for k in r
                             if k.startswith("native[")), default=torch_threads)
    saved = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "cores": cores,
             "rows": rows, "per_call": per_call, "memory": memory}
    if not args.no_write:
        res.mkdir(exist_ok=True)
        (res / "training.json").write_text(json.dumps(saved, indent=1))
    _write(rows, per_call, memory, cores, torch_threads, saved, write=not args.no_write)
    return 0


def _write(rows: list[dict[str, Any]], per_call: list[dict[str, Any]],
           memory: list[dict[str, Any]], cores: int, torch_threads: int,
           saved: dict[str, Any], write: bool) -> None:
    text = report(rows, per_call, cores, torch_threads, memory, saved)
    print(text)
    if write:
        write_section("training", text)
        for backend, impls, red, mode in (
                ("numpy", ["plain", *(f"wce_xp[{t}t]" for t in sorted({1, cores})), "copy"],
                 "none", "forward"),
                ("torch", [f"native[{torch_threads}t]", f"wce_xp[{torch_threads}t]",
                           f"native compiled[{torch_threads}t]"], "mean", "forward+backward"),
                ("jax", ["optax", "wce_xp"], "mean", "forward+backward")):
            if any(r["backend"] == backend for r in rows):
                chart(rows, backend, impls, ROOT / "benchmarks" / f"training_{backend}.png",
                      f"{backend}: {red}, {mode}", red, mode)


if __name__ == "__main__":
    raise SystemExit(main())
