"""wce_xp against its peers, per backend, over sizes 1e3 … 1e8; writes BENCHMARKS.md.

    python benchmarks/bench.py            # CPU: numpy, torch, jax, dask (+ memory, Dask 1e9)
    python benchmarks/bench.py --quick    # a short run (sizes up to 1e6, no 1e8/1e9 runs)
    python benchmarks/bench.py --gpu      # CuPy and torch-CUDA (on a machine with a GPU)
    python benchmarks/bench.py --dask     # Dask LocalCluster, mean over 1e9 elements
    python benchmarks/bench.py --cli      # wce-xp eval on 1e8-row .npy files

Each run prints a table and rewrites its own section of BENCHMARKS.md (between
``<!-- BEGIN section -->`` and ``<!-- END section -->``) with the machine's
description, and draws ``benchmarks/throughput_<section>.png``. Ratios are taken in
one run on one machine. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import wce_xp  # noqa: E402

Q = 2.0


def _timeit(fn: Callable[[], Any], *, sync: Callable[[], None] = lambda: None,
            min_time: float = 0.3, max_reps: int = 50) -> float:
    """Median seconds of one call, after a warm-up call."""
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < 5 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _data(n: int, dtype: str = "float32", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 4, n).astype(dtype)
    z = (rng.uniform(size=n) > 0.8).astype(dtype)
    return x, z


def naive_numpy(z: np.ndarray, x: np.ndarray, q: float) -> np.ndarray:
    """TensorFlow's formula, straightforwardly in NumPy (the 'straightforward formula')."""
    lw = 1 + (q - 1) * z
    return (1 - z) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    vers = [f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    for mod in ("torch", "jax", "dask", "optax", "cupy"):
        try:
            m = __import__(mod)
            vers.append(f"{mod} {m.__version__}")
        except Exception:
            pass
    return f"{cpu}, {os.cpu_count()} cores; " + ", ".join(vers)


# ---------------------------------------------------------------- CPU


def cpu_rows(sizes: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    wce_xp.set_num_threads(1)  # one thread on both sides (training.py has the defaults)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None  # type: ignore[assignment]
    try:
        import jax
        import jax.numpy as jnp
        import optax
        have_optax = True
    except ImportError:
        jax = None  # type: ignore[assignment]
        have_optax = False
    for n in sizes:
        x, z = _data(n)
        out = np.empty_like(x)
        r: dict[str, Any] = {"n": n}
        r["copy"] = _timeit(lambda: np.copyto(out, x))
        r["numpy_naive"] = _timeit(lambda: naive_numpy(z, x, Q))
        r["wce_numpy"] = _timeit(lambda: wce_xp.weighted_cross_entropy_with_logits(z, x, Q))
        r["wce_numpy_mean"] = _timeit(
            lambda: wce_xp.weighted_cross_entropy_with_logits(z, x, Q, reduction="mean"))
        if torch is not None:
            xt, zt = torch.from_numpy(x), torch.from_numpy(z)
            qt = torch.tensor(Q)
            r["torch_native"] = _timeit(
                lambda: torch.nn.functional.binary_cross_entropy_with_logits(
                    xt, zt, pos_weight=qt, reduction="none"))
            r["wce_torch"] = _timeit(
                lambda: wce_xp.binary_cross_entropy_with_logits(xt, zt, pos_weight=qt,
                                                                reduction="none"))
            xg = xt.clone().requires_grad_(True)

            def torch_native_fb() -> None:
                torch.nn.functional.binary_cross_entropy_with_logits(
                    xg, zt, pos_weight=qt).backward()

            def wce_torch_fb() -> None:
                wce_xp.binary_cross_entropy_with_logits(xg, zt, pos_weight=qt).backward()

            r["torch_native_fwd_bwd"] = _timeit(torch_native_fb)
            r["wce_torch_fwd_bwd"] = _timeit(wce_torch_fb)
        if jax is not None and have_optax:
            import optax

            xj, zj = jnp.asarray(x), jnp.asarray(z)
            f_opt = jax.jit(lambda zz, xx: optax.sigmoid_binary_cross_entropy(xx, zz))
            f_wce = jax.jit(lambda zz, xx: wce_xp.sigmoid_cross_entropy_with_logits(zz, xx))
            # interleave the two so that machine noise hits both alike
            t_o, t_w = [], []
            for _ in range(3):
                t_o.append(_timeit(lambda: f_opt(zj, xj).block_until_ready()))
                t_w.append(_timeit(lambda: f_wce(zj, xj).block_until_ready()))
            r["optax_jit"] = min(t_o)
            r["wce_jax_jit"] = min(t_w)
        rows.append(r)
        print(json.dumps({k: (f"{v * 1e3:.3f} ms" if k != "n" else v) for k, v in r.items()}),
              flush=True)
        gc.collect()
    return rows


def numpy_memory(n: int) -> dict[str, float]:
    """Peak extra memory (tracemalloc, NumPy's allocations) of the elementwise call beyond
    its output, and of the mean, with the mean's accuracy against float64."""
    x, z = _data(n)
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = wce_xp.weighted_cross_entropy_with_logits(z, x, Q)
    _, peak_el = tracemalloc.get_traced_memory()
    del out
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    mean = float(wce_xp.weighted_cross_entropy_with_logits(z, x, Q, reduction="mean"))
    _, peak_mean = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # float64 reference, in chunks (exact inputs, float64 arithmetic, fsum of chunk sums)
    parts = []
    for i in range(0, n, 1 << 22):
        parts.append(float(np.sum(wce_xp.weighted_cross_entropy_with_logits(
            z[i:i + (1 << 22)].astype(np.float64), x[i:i + (1 << 22)].astype(np.float64), Q),
            dtype=np.float64)))
    ref = math.fsum(parts) / n
    naive_mean = float(naive_numpy(z, x, Q).mean())
    return {"n": n, "extra_elementwise_MiB": (peak_el - 4 * n) / 2**20,
            "extra_mean_MiB": (peak_mean - base) / 2**20,
            "mean_rel_err": abs(mean - ref) / ref,
            "naive_numpy_mean_rel_err": abs(naive_mean - ref) / ref}


def dask_distributed(n: int, workers: int = 2) -> dict[str, Any]:
    """Mean over n elements generated on the workers; peak worker RSS."""
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    def peak_rss_mib() -> float:
        """The worker process's own peak resident memory (VmHWM)."""
        with open("/proc/self/status") as fh:
            return int(fh.read().split("VmHWM:")[1].split()[0]) / 1024

    chunk = 1 << 23
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        rs = da.random.RandomState(0)
        x = rs.normal(0, 4, n, chunks=chunk).astype(np.float32)
        z = (rs.uniform(size=n, chunks=chunk) > 0.8).astype(np.float32)
        before = client.run(peak_rss_mib)
        t0 = time.perf_counter()
        mean = float(wce_xp.weighted_cross_entropy_with_logits(z, x, Q, reduction="mean")
                     .compute())
        elapsed = time.perf_counter() - t0
        after = client.run(peak_rss_mib)
    return {"n": n, "workers": workers, "chunk_elements": chunk, "mean": mean,
            "seconds": elapsed, "elements_per_s": n / elapsed,
            "peak_worker_rss_MiB": max(after.values()),
            "worker_rss_before_MiB": max(before.values()),
            "chunk_MiB": chunk * 4 / 2**20}


def eval_measured(logits: str, labels: str) -> tuple[float, float, dict[str, Any]]:
    """``wce-xp eval LOGITS LABELS --pos-weight Q --format json`` in a child process:
    (peak resident MiB, wall seconds, the report). The child reports its own peak
    (VmHWM): rusage of a child counts the parent's memory it was forked from, which is
    not what the command itself needs."""
    import subprocess

    code = ("import sys, wce_xp.cli._commands as c; rc = c.main(sys.argv[1:]); "
            "print('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
            " file=sys.stderr); sys.exit(rc)")
    cmd = [sys.executable, "-c", code, "eval", logits, labels, "--pos-weight", str(Q),
           "--format", "json", "--quiet"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    wall = time.perf_counter() - t0
    rss = int(res.stderr.split("VmHWM")[1].split()[0]) / 1024
    return rss, wall, json.loads(res.stdout)


def cli_scale(n: int) -> dict[str, Any]:
    """``wce-xp eval`` on n x 1 float32 .npy files: peak RSS of the child process,
    throughput, and agreement with the in-memory library call."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=os.environ.get("WCE_BENCH_TMP")) as tmp:
        xs, zs = Path(tmp) / "logits.npy", Path(tmp) / "labels.npy"
        x = np.lib.format.open_memmap(xs, mode="w+", dtype=np.float32, shape=(n,))
        z = np.lib.format.open_memmap(zs, mode="w+", dtype=np.float32, shape=(n,))
        step = 1 << 24
        for i in range(0, n, step):
            xi, zi = _data(min(step, n - i), seed=i)
            x[i:i + len(xi)] = xi
            z[i:i + len(zi)] = zi
        x.flush()
        z.flush()
        del x, z
        rss, wall, rep = eval_measured(str(xs), str(zs))
        xm, zm = np.load(xs), np.load(zs)
        ref = float(wce_xp.weighted_cross_entropy_with_logits(zm, xm, Q, reduction="mean"))
    return {"n": n, "peak_rss_MiB": rss, "wall_s": wall, "elements_per_s": rep["elements_per_s"],
            "loss": rep["loss"], "in_memory": ref, "rel_diff": abs(rep["loss"] - ref) / ref}


# ---------------------------------------------------------------- GPU


def _gpu_one(n: int, cp: Any, torch: Any, sync: Callable[[], None]) -> dict[str, Any]:
    xh, zh = _data(n)
    x, z = cp.asarray(xh), cp.asarray(zh)
    out = cp.empty_like(x)
    r: dict[str, Any] = {"n": n}
    r["copy"] = _timeit(lambda: cp.copyto(out, x), sync=sync)
    r["read_sum"] = _timeit(lambda: cp.sum(x), sync=sync)
    r["wce_cupy"] = _timeit(lambda: wce_xp.weighted_cross_entropy_with_logits(
        z, x, Q, validate=False), sync=sync)
    r["wce_cupy_sum"] = _timeit(lambda: wce_xp.weighted_cross_entropy_with_logits(
        z, x, Q, reduction="sum", validate=False), sync=sync)
    r["wce_cupy_grad_hess"] = _timeit(lambda: wce_xp.weighted_cross_entropy_grad_hess(
        z, x, Q, validate=False), sync=sync)
    with wce_xp._registry.generic_only():
        r["generic_cupy"] = _timeit(lambda: wce_xp.weighted_cross_entropy_with_logits(
            z, x, Q, validate=False), sync=sync)
    xt, zt = torch.from_dlpack(x), torch.from_dlpack(z)
    qt = torch.tensor(Q, device="cuda")
    tsync = torch.cuda.synchronize
    r["torch_cuda_native"] = _timeit(
        lambda: torch.nn.functional.binary_cross_entropy_with_logits(
            xt, zt, pos_weight=qt, reduction="none"), sync=tsync)
    r["wce_torch_cuda"] = _timeit(
        lambda: wce_xp.binary_cross_entropy_with_logits(xt, zt, pos_weight=qt,
                                                        reduction="none", validate=False),
        sync=tsync)
    xg = xt.detach().clone().requires_grad_()
    r["torch_cuda_native_fwd_bwd"] = _timeit(
        lambda: torch.nn.functional.binary_cross_entropy_with_logits(
            xg, zt, pos_weight=qt).backward(), sync=tsync)
    # PyTorch users without CuPy: the Triton kernels (CuPy hidden from the dispatch)
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = None  # type: ignore[assignment]
    try:
        r["wce_torch_triton"] = _timeit(
            lambda: wce_xp.binary_cross_entropy_with_logits(xt, zt, pos_weight=qt,
                                                            reduction="none"), sync=tsync)
        r["wce_torch_triton_fwd_bwd"] = _timeit(
            lambda: wce_xp.binary_cross_entropy_with_logits(xg, zt, pos_weight=qt).backward(),
            sync=tsync)
    finally:
        sys.modules["cupy"] = saved  # type: ignore[assignment]
    print(json.dumps({k: (f"{v * 1e3:.4f} ms" if k != "n" else v) for k, v in r.items()}),
          flush=True)
    return r


def gpu_rows(sizes: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import cupy as cp
    import torch

    sync = cp.cuda.Device().synchronize
    rows = [_gpu_one(n, cp, torch, sync) for n in sizes]
    big = rows[-1]
    n = big["n"]
    summary = {
        "n": n,
        "copy_GBps": 8 * n / big["copy"] / 1e9,
        "read_GBps": 4 * n / big["read_sum"] / 1e9,
        "loss_GBps": 12 * n / big["wce_cupy"] / 1e9,
        "loss_vs_copy": (12 * n / big["wce_cupy"]) / (8 * n / big["copy"]),
        "sum_GBps": 8 * n / big["wce_cupy_sum"] / 1e9,
        "sum_vs_read": (8 * n / big["wce_cupy_sum"]) / (4 * n / big["read_sum"]),
        "vs_torch_native": big["torch_cuda_native"] / big["wce_cupy"],
        "torch_path_vs_native": big["torch_cuda_native"] / big["wce_torch_cuda"],
        "vs_generic": big["generic_cupy"] / big["wce_cupy"],
        "triton_vs_native": [(r["n"], r["torch_cuda_native"] / r["wce_torch_triton"],
                              r["torch_cuda_native_fwd_bwd"] / r["wce_torch_triton_fwd_bwd"])
                             for r in rows],
        "device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(),
    }
    return rows, summary


# ---------------------------------------------------------------- report


def _fmt_rate(n: int, t: float | None) -> str:
    return "—" if t is None else f"{n / t / 1e6:,.0f}"


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| n | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = " | ".join(_fmt_rate(r["n"], r.get(c)) for c in cols)
        body += f"| {r['n']:.0e} | {cells} |\n"
    return head + body


def chart(rows: list[dict[str, Any]], cols: list[str], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for c in cols:
        pts = [(r["n"], r["n"] / r[c] / 1e6) for r in rows if c in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("elements")
    ax.set_ylabel("million elements / s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def write_section(section: str, text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)
    print(f"updated {path} [{section}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run: sizes up to 1e6")
    ap.add_argument("--gpu", action="store_true", help="CuPy and torch-CUDA instead of CPU")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--dask", action="store_true",
                    help="only the Dask LocalCluster mean over 1e9 elements")
    ap.add_argument("--cli", action="store_true",
                    help="only the command line at 1e8 rows (peak RSS, throughput)")
    args = ap.parse_args()
    when = time.strftime("%Y-%m-%d")
    if args.dask:
        dk = dask_distributed(10**7 if args.quick else 10**9)
        print(json.dumps(dk), flush=True)
        text = (f"### Dask — measured {when}\n\n{machine()}\n\n"
                f"`dask.distributed` LocalCluster of {dk['workers']} worker processes x 1 "
                f"thread on loopback: mean over {dk['n']:.0e} float32 elements (generated on "
                f"the workers, chunks of {dk['chunk_MiB']:.0f} MiB) in {dk['seconds']:.1f} s "
                f"({dk['elements_per_s'] / 1e6:.0f} M/s, random generation included); peak "
                f"resident memory per worker (VmHWM) **{dk['peak_worker_rss_MiB']:.0f} MiB** "
                f"(after start-up: {dk['worker_rss_before_MiB']:.0f} MiB).\n")
        section = "dask"
    elif args.cli:
        c = cli_scale(10**6 if args.quick else 10**8)
        print(json.dumps(c), flush=True)
        text = (f"### Command line — measured {when}\n\n{machine()}\n\n"
                f"`wce-xp eval logits.npy labels.npy --pos-weight {Q}` on {c['n']:.0e} rows x 1 "
                f"class of float32 (.npy, {c['n'] * 4 / 2**20:.0f} MiB each), NumPy backend, "
                f"default chunks of 2**20 rows: peak resident memory of the process "
                f"**{c['peak_rss_MiB']:.0f} MiB**, {c['elements_per_s'] / 1e6:.0f} M "
                f"elements/s ({c['wall_s']:.1f} s wall, start-up included); loss "
                f"{c['loss']:.9g} vs the in-memory library call {c['in_memory']:.9g} "
                f"(relative difference {c['rel_diff']:.1e}).\n")
        section = "cli"
    elif args.gpu:
        sizes = [10**3, 10**4, 10**5, 10**6, 10**7] + ([] if args.quick else [10**8])
        rows, s = gpu_rows(sizes)
        cols = ["copy", "wce_cupy", "wce_cupy_sum", "wce_cupy_grad_hess", "generic_cupy",
                "torch_cuda_native", "wce_torch_cuda", "wce_torch_triton",
                "torch_cuda_native_fwd_bwd", "wce_torch_triton_fwd_bwd"]
        text = (f"### GPU — measured {when} on {s['device']}\n\n{machine()}\n\n"
                f"Throughput in million elements/s (float32, pos_weight {Q}):\n\n"
                + table(rows, cols) + "\n"
                f"At n = {s['n']:.0e}: device-to-device copy {s['copy_GBps']:.0f} GB/s "
                f"(read + written); fused loss kernel {s['loss_GBps']:.0f} GB/s = "
                f"**{s['loss_vs_copy']:.0%} of copy bandwidth**; fused sum "
                f"{s['sum_GBps']:.0f} GB/s read = **{s['sum_vs_read']:.0%} of read "
                f"bandwidth** (`cupy.sum`); **{s['vs_torch_native']:.1f}x** PyTorch's native "
                f"CUDA function; wce_xp on torch-CUDA tensors **{s['torch_path_vs_native']:.1f}x**"
                f" native; fused kernel **{s['vs_generic']:.1f}x** the generic array-API path.\n\n"
                "PyTorch without CuPy (the Triton kernels), speed-up over the native CUDA "
                "function, elementwise forward / `mean` forward+backward: "
                + ", ".join(f"{n:.0e}: **{a:.2f}x** / **{b:.2f}x**"
                            for n, a, b in s["triton_vs_native"]) + ".\n\n"
                "![GPU throughput](benchmarks/throughput_gpu.png)\n")
        chart(rows, cols, ROOT / "benchmarks" / "throughput_gpu.png",
              f"GPU ({s['device']}), float32")
        section = "gpu"
    else:
        sizes = [10**3, 10**4, 10**5, 10**6] + ([] if args.quick else [10**7, 10**8])
        rows = cpu_rows(sizes)
        cols = ["copy", "numpy_naive", "wce_numpy", "wce_numpy_mean", "torch_native",
                "wce_torch", "optax_jit", "wce_jax_jit"]
        r7 = next((r for r in rows if r["n"] == 10**7), rows[-1])
        ratios = {
            "numpy vs torch native (none)": r7["torch_native"] / r7["wce_numpy"],
            "numpy vs straightforward numpy": r7["numpy_naive"] / r7["wce_numpy"],
            "torch path vs torch native (none)": r7["torch_native"] / r7["wce_torch"],
            "torch path vs native (mean, forward+backward)":
                r7["torch_native_fwd_bwd"] / r7["wce_torch_fwd_bwd"],
            "jax jit vs optax jit (time ratio wce/optax)": r7["wce_jax_jit"] / r7["optax_jit"],
        } if "torch_native" in r7 and "optax_jit" in r7 else {}
        text = (f"### CPU — measured {when}\n\n{machine()}\n\nThroughput in million "
                f"elements/s (float32, pos_weight {Q}, one thread for PyTorch and wce_xp; "
                "JAX under `jit`):\n\n" + table(rows, cols) + "\n"
                f"Ratios at n = {r7['n']:.0e} (higher is better for wce_xp, except the "
                "JAX time ratio):\n\n"
                + "".join(f"- {k}: **{v:.2f}**\n" for k, v in ratios.items()))
        if not args.quick:
            mem = numpy_memory(10**8)
            print(json.dumps(mem), flush=True)
            text += (f"\nNumPy memory at n = 1e8 float32 (tracemalloc): elementwise call "
                     f"**{mem['extra_elementwise_MiB']:.1f} MiB** beyond its 381 MiB output; "
                     f"`reduction=\"mean\"` **{mem['extra_mean_MiB']:.1f} MiB** peak; mean "
                     f"relative error vs float64 **{mem['mean_rel_err']:.1e}** (the "
                     f"straightforward formula with `.mean()` in float32: "
                     f"{mem['naive_numpy_mean_rel_err']:.1e}).\n")
        text += "\n![CPU throughput](benchmarks/throughput_cpu.png)\n"
        chart(rows, cols, ROOT / "benchmarks" / "throughput_cpu.png", "CPU, float32")
        section = "cpu"
    print(text)
    if not args.no_write:
        write_section(section, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
