"""The ``wce-xp`` command line: ``demo`` and ``eval``."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .._compat import namespace_of_module
from .._config import config, show_config
from .._loss import weighted_cross_entropy_with_logits
from . import _backends
from ._readers import ArrayReader, InputError, parse_pos_weight
from ._signals import Terminated, on_sigterm

TF_LABELS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def _to_numpy(a: object) -> np.ndarray:
    mod = type(a).__module__
    if mod.startswith("tensorflow"):
        return np.asarray(a.numpy())  # type: ignore[attr-defined]
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
    write(f"\nbackends run: {', '.join(names)}\n")
    if len(names) > 1:
        write(f"largest difference between backends: {worst:.3g}\n")
    else:
        write("only one backend is installed, so there is nothing to compare it with\n")
    missing = [n for n in _backends.BACKENDS if n not in names]
    if missing:
        write("not installed (to add one):\n")
        for n in missing:
            hint = _backends.install_hint(n) or "installed with the package"
            if n == "cupy" and not _backends.has_nvidia_gpu():
                hint += " (needs an NVIDIA GPU, which this machine lacks)"
            write(f"  {n}: {hint}\n")
    kernels = config()["numpy engine"].get("compiled kernels", "")
    if kernels.startswith("missing"):
        write(f"compiled kernels: {kernels}\n")
    return 0


# ---------------------------------------------------------------- eval


class _Parser(argparse.ArgumentParser):
    """argparse, with bad usage reported as one line and exit status 2."""

    subcommands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        raise InputError(message)


def _open_inputs(args: argparse.Namespace) -> dict[str, Any]:
    logits = ArrayReader(args.logits, "LOGITS")
    labels = ArrayReader(args.labels, "LABELS")
    if logits.dtype.kind in "biu":
        # the library takes real floating logits only; the command line agrees with it
        raise InputError(f"{logits.label}: {logits.dtype} logits (logits are real numbers: "
                         "store them as float16, float32 or float64)")
    if labels.rows != logits.rows:
        raise InputError(f"LOGITS and LABELS have different numbers of rows: "
                         f"{logits.rows} and {labels.rows}")
    if labels.shape[1:] != logits.shape[1:]:
        raise InputError(f"LOGITS and LABELS have different numbers of classes: "
                         f"shape {logits.shape} and {labels.shape}")
    out: dict[str, Any] = {"logits": logits, "labels": labels, "weight": None, "mask": None}
    n, c = logits.rows, logits.classes
    for name, role in (("weight", "--weight"), ("mask", "--mask")):
        spec = getattr(args, name)
        if spec is None:
            continue
        r = ArrayReader(spec, role)
        if name == "mask" and r.dtype.kind != "b":
            raise InputError(f"{r.label}: expected a boolean array (True = keep), "
                             f"got dtype {r.dtype}")
        if r.rows != n or (len(r.shape) == 2 and r.shape[1:] != logits.shape[1:]):
            raise InputError(f"{r.label}: shape {r.shape} fits neither (N,) nor the logits' "
                             f"{logits.shape} (N = {n} rows, {c} classes)")
        out[name] = r
    return out


def _backend(name: str, device: str | None) -> tuple[Any, Any]:
    """(array namespace module, device object) for a backend name."""
    try:
        mod = _backends.load(name)
    except _backends.BackendUnavailable as exc:
        raise InputError(f"--backend: {exc}") from None
    if device is None:
        return mod, None
    try:
        if name == "torch":
            import torch

            dev = torch.device(device)
            if dev.type == "meta":
                raise ValueError("the meta device holds no data")
            torch.empty(1, device=dev)  # the device exists and this build supports it
            return mod, dev
        if name == "cupy":
            return mod, mod.cuda.Device(int(device))
        if name == "jax":
            import jax

            platform, _, idx = device.partition(":")
            return mod, jax.devices(platform)[int(idx or 0)]
        if name == "tensorflow":
            import tensorflow as tf

            kind, _, idx = device.partition(":")
            spec = f"/device:{kind.upper()}:{int(idx or 0)}"
            names = [d.name for d in tf.config.list_logical_devices()]
            if spec not in names:
                raise ValueError(f"available: {', '.join(names)}")
            return mod, spec
    except Exception as exc:
        raise InputError(f"--device: '{device}' is not a device of {name} ({exc})") from None
    if device != "cpu":
        raise InputError(f"--device: {name} runs on the CPU only (got '{device}')")
    return mod, None


def _chunk_stats(
    inputs: dict[str, Any], i0: int, i1: int, q: Any, smoothing: float,
    backend: str, device: Any,
) -> dict[str, Any]:
    """One chunk of rows: the loss sums per class through the library, and the counts.

    Runs in this process for eager backends and on a worker for Dask (the chunk is read
    from the file there). Values are checked on the host copy of the chunk first.
    """
    x = inputs["logits"].read(i0, i1)
    z = inputs["labels"].read(i0, i1)
    w = inputs["weight"].read(i0, i1) if inputs["weight"] is not None else None
    m = inputs["mask"].read(i0, i1) if inputs["mask"] is not None else None
    one_d = x.ndim == 1
    keep = np.ones(x.shape, bool) if m is None else np.broadcast_to(
        m if m.ndim == x.ndim else m.reshape(-1, 1), x.shape)
    st: dict[str, Any] = {"rows": i1 - i0}
    bad_x = ~np.isfinite(x) & keep if x.dtype.kind == "f" else np.zeros(x.shape, bool)
    bad_rows = np.flatnonzero(bad_x.reshape(len(x), -1).any(axis=1))
    st["nan_count"] = int(bad_x.sum())
    st["nan_first_row"] = int(i0 + bad_rows[0]) if bad_rows.size else None
    with np.errstate(invalid="ignore"):
        bad_z = ((z < 0) | (z > 1) | np.isnan(z) if z.dtype.kind == "f" else (z < 0) | (z > 1))
    bad_z = bad_z & keep
    zrows = np.flatnonzero(bad_z.reshape(len(z), -1).any(axis=1))
    st["label_first_row"] = int(i0 + zrows[0]) if zrows.size else None
    if w is not None:
        with np.errstate(invalid="ignore"):
            bad_w = (w < 0) | ~np.isfinite(w) if w.dtype.kind == "f" else w < 0
        wrows = np.flatnonzero(bad_w.reshape(len(w), -1).any(axis=1))
        st["weight_first_row"] = int(i0 + wrows[0]) if wrows.size else None
    if st["nan_count"] or st["label_first_row"] is not None or st.get("weight_first_row"):
        return st
    fdt = np.float32 if x.dtype in (np.float16, np.float32) else np.float64
    zf = z.astype(fdt)
    keepf = keep.astype(np.float64)
    axis = 0
    st["count"] = keepf.sum(axis=axis).reshape(-1) if not one_d else np.array([keepf.sum()])
    zk = np.where(keep, zf, 0)
    st["pos"] = np.atleast_1d(zk.sum(axis=axis, dtype=np.float64))
    st["neg"] = np.atleast_1d(np.where(keep, 1 - zf, 0).sum(axis=axis, dtype=np.float64))
    wb = None
    if w is not None:
        wb = w.astype(fdt) if w.ndim == x.ndim else w.astype(fdt).reshape(-1, 1)
        wk = np.where(keep, np.broadcast_to(wb, x.shape), 0)
        st["wsum"] = np.atleast_1d(wk.sum(axis=axis, dtype=np.float64))
    else:
        st["wsum"] = st["count"]
    if q is None:  # the first pass of --pos-weight auto: counts only
        return st
    # a Dask worker evaluates its chunk with NumPy; eager backends get device arrays
    mod = np if backend == "dask" else _backends.load(backend)
    xp = namespace_of_module(mod)
    kw = {} if device is None else {"device": device}

    def arr(a: Any) -> Any:
        return None if a is None else xp.asarray(a, **kw)

    qa = q if isinstance(q, float) else arr(np.asarray(q, dtype=fdt))
    total = weighted_cross_entropy_with_logits(
        arr(zf), arr(x.astype(fdt)), qa, weight=arr(wb),
        mask=None if m is None else arr(np.ascontiguousarray(keep)),
        label_smoothing=smoothing, reduction="sum", axis=None if one_d else 0,
        validate=False)
    st["sum"] = np.atleast_1d(_to_numpy(total).astype(np.float64))
    return st


def _chunks(n: int, rows: int) -> list[tuple[int, int]]:
    return [(i, min(i + rows, n)) for i in range(0, n, rows)] or [(0, 0)]


class _Progress:
    """A rich progress bar on stderr, shown only on a terminal, after about a second."""

    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.start = time.perf_counter()
        self.done = 0
        self.bar: Any = None
        self.task: Any = None

    def advance(self, rows: int) -> None:
        self.done += rows
        if not self.enabled:
            return
        if self.bar is None and time.perf_counter() - self.start > 1.0:
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:
                self.enabled = False
                return
            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _run_chunks(
    inputs: dict[str, Any], q: Any, args: argparse.Namespace, device: Any, label: str,
) -> list[dict[str, Any]]:
    n = inputs["logits"].rows
    chunks = _chunks(n, args.chunk_rows)
    progress = _Progress(n, sys.stderr.isatty() and not args.quiet, label)
    results: list[dict[str, Any]] = []
    try:
        if args.backend == "dask":
            results = _run_dask(inputs, chunks, q, args, progress)
        else:
            for k, (i0, i1) in enumerate(chunks):
                # the first chunk compiles TensorFlow's XLA call, whose C++ log lines
                # some releases print whatever the log level
                quiet = k == 0 and args.backend == "tensorflow"
                with _backends.native_stderr_closed() if quiet else contextlib.nullcontext():
                    results.append(_chunk_stats(inputs, i0, i1, q, args.label_smoothing,
                                                args.backend, device))
                progress.advance(i1 - i0)
    finally:
        progress.close()
    _raise_on_bad_values(inputs, results)
    return results


def _run_dask(inputs: dict[str, Any], chunks: list[tuple[int, int]], q: Any,
              args: argparse.Namespace, progress: _Progress) -> list[dict[str, Any]]:
    import dask

    tasks = [dask.delayed(_chunk_stats)(inputs, i0, i1, q, args.label_smoothing, "dask", None)
             for i0, i1 in chunks]
    if args.scheduler is None:
        out: list[dict[str, Any]] = list(dask.compute(*tasks))
        progress.advance(inputs["logits"].rows)
        return out
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    # a cluster interrupted half-built cannot be closed (its exit handler then prints a
    # traceback): signals wait until it is up, then act
    with _signals_deferred() as pending:
        try:
            if args.scheduler == "local":
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
                client = Client(cluster)
            else:
                client = Client(args.scheduler, timeout=10)
        except Exception as exc:
            if cluster is not None:
                cluster.close()
            raise InputError(
                f"--scheduler: cannot connect to '{args.scheduler}' ({exc})") from None
    if pending:
        client.close()
        if cluster is not None:
            cluster.close()
        raise KeyboardInterrupt if pending[0] == signal.SIGINT else Terminated
    try:
        futures = client.compute(tasks)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[dict[str, Any]] = [{} for _ in futures]
        for fut in as_completed(futures):
            res = fut.result()
            results[index[fut.key]] = res
            progress.advance(res["rows"])
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """SIGINT and SIGTERM are noted, not acted on, inside the block; the caller acts on
    the list (the signals that came) after it."""
    pending: list[int] = []
    try:
        old = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not in the main thread: nothing to defer
        yield pending
        return
    try:
        yield pending
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _raise_on_bad_values(inputs: dict[str, Any], results: list[dict[str, Any]]) -> None:
    nan = sum(r.get("nan_count", 0) for r in results)
    if nan:
        first = min(r["nan_first_row"] for r in results if r.get("nan_first_row") is not None)
        raise InputError(f"{inputs['logits'].label}: {nan} NaN or infinite logit(s), "
                         f"the first in row {first}")
    rows = [r["label_first_row"] for r in results if r.get("label_first_row") is not None]
    if rows:
        raise InputError(f"{inputs['labels'].label}: labels outside [0, 1] "
                         f"(first in row {min(rows)})")
    rows = [r["weight_first_row"] for r in results if r.get("weight_first_row") is not None]
    if rows:
        raise InputError(f"{inputs['weight'].label}: weights must be finite and non-negative "
                         f"(first bad one in row {min(rows)})")


def _sum(results: list[dict[str, Any]], key: str) -> np.ndarray:
    parts = [r[key] for r in results if key in r]
    return np.sum(parts, axis=0) if parts else np.zeros(1)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``wce-xp eval``; returns the report (raises InputError on bad input).

    ``elapsed_s`` counts reading and evaluating, from after the backend is imported."""
    if args.chunk_rows < 1:
        raise InputError(f"--chunk-rows: expected a positive number of rows, got {args.chunk_rows}")
    if not 0.0 <= args.label_smoothing <= 1.0:
        raise InputError(f"--label-smoothing: expected a number in [0, 1], "
                         f"got {args.label_smoothing}")
    if args.scheduler is not None and args.backend != "dask":
        raise InputError("--scheduler: only with --backend dask")
    inputs = _open_inputs(args)
    classes = inputs["logits"].classes
    q = parse_pos_weight(args.pos_weight, classes)
    _, device = _backend(args.backend, args.device)
    t0 = time.perf_counter()
    if isinstance(q, str):  # auto: negatives / positives per class, in a first pass
        first = _run_chunks(inputs, None, args, device, "counting")
        pos, neg = _sum(first, "pos"), _sum(first, "neg")
        none = np.flatnonzero(pos == 0)
        if none.size:
            raise InputError(f"--pos-weight auto: class(es) {none.tolist()[:20]} have no "
                             "positive label")
        q = neg / pos
        q = float(q[0]) if q.size == 1 else q
    results = _run_chunks(inputs, q, args, device, "evaluating")
    sums, counts, wsums = _sum(results, "sum"), _sum(results, "count"), _sum(results, "wsum")
    denom = {"mean": counts, "sum": np.ones_like(sums), "weighted_mean": wsums}[args.reduction]
    total_denom = 1.0 if args.reduction == "sum" else float(denom.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class_loss = sums / denom
    loss = float(sums.sum()) / total_denom if total_denom else math.nan
    n_el = inputs["logits"].rows * classes
    elapsed = time.perf_counter() - t0
    qs = np.broadcast_to(np.asarray(q, dtype=np.float64), (classes,))
    pos, neg = _sum(results, "pos"), _sum(results, "neg")
    report: dict[str, Any] = {
        "loss": loss,
        "reduction": args.reduction,
        "n_elements": n_el,
        "n_masked": int(n_el - round(float(counts.sum()))),
        "backend": args.backend,
        "pos_weight": [float(v) for v in qs],
        "per_class": [
            {"class": c, "loss": float(per_class_loss[c]), "positives": _count(pos[c]),
             "negatives": _count(neg[c]), "pos_weight": float(qs[c])}
            for c in range(classes)
        ] if args.per_class else [],
        "elapsed_s": elapsed,
        "elements_per_s": n_el / elapsed if elapsed > 0 else math.inf,
    }
    return report


def _num(v: float) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}"


def _count(v: Any) -> int | float:
    """A count of labels: an integer where it is one (0/1 labels), else the sum of soft
    labels as a float."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _count_text(v: int | float) -> str:
    return f"{v:,}" if isinstance(v, int) else _num(v)


def format_table(report: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"wce-xp eval {args.logits} {args.labels}",
        f"  backend       {report['backend']}",
        f"  reduction     {report['reduction']}",
        f"  loss          {_num(report['loss'])}",
        f"  elements      {report['n_elements']:,} ({report['n_masked']:,} masked)",
        f"  pos_weight    {', '.join(_num(v) for v in report['pos_weight'][:8])}"
        + (" ..." if len(report["pos_weight"]) > 8 else ""),
        f"  elapsed       {report['elapsed_s']:.3f} s "
        f"({report['elements_per_s']:,.0f} elements/s)",
    ]
    if report["per_class"]:
        rows = [("class", "loss", "positives", "negatives", "pos_weight")]
        rows += [(str(r["class"]), _num(r["loss"]), _count_text(r["positives"]),
                  _count_text(r["negatives"]), _num(r["pos_weight"]))
                 for r in report["per_class"]]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines.append("")
        for r in rows:
            lines.append("  " + "  ".join(v.rjust(wd) for v, wd in zip(r, widths, strict=True)))
    return "\n".join(lines) + "\n"


def _input_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(role, path) of every file the command reads."""
    from ._readers import _split_spec

    out = []
    for role, spec in (("LOGITS", args.logits), ("LABELS", args.labels),
                       ("--weight", args.weight), ("--mask", args.mask),
                       ("--pos-weight", args.pos_weight)):
        if spec is None or (role == "--pos-weight" and not str(spec).endswith(".npy")):
            continue
        out.append((role, _split_spec(str(spec))[0]))
    return out


def check_output(args: argparse.Namespace) -> None:
    """Refuse an ``--output`` that is, or resolves to, one of the inputs (compared by
    file identity, so other names, ``./`` and symbolic links are caught), or a directory.
    Checked before any work is done."""
    if not args.output:
        return
    target = Path(args.output)
    if target.is_dir():
        raise InputError(f"--output: '{args.output}' is a directory")
    if not target.exists():
        return
    for role, path in _input_files(args):
        with contextlib.suppress(OSError):
            if path.exists() and os.path.samefile(target, path):
                raise InputError(f"--output: '{args.output}' is the {role} file; "
                                 "refusing to overwrite an input")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_report(path: str, text: str) -> None:
    """Write the report without ever losing data.

    A regular file (or a link to one) is replaced atomically: a temporary file beside
    it, then a rename, so the old content survives any failure and no temporary file
    survives one (a write error, SIGINT or SIGTERM). A new file gets the usual mode
    (0666 less the umask), an existing one keeps its own; a link keeps pointing where
    it did. Anything else that exists there (a terminal, ``/dev/null``, a FIFO) is
    written through, never replaced."""
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"--output: cannot write '{path}' ({exc.strerror})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(target, "w") as fh:
                fh.write(text)
        except OSError as exc:
            raise InputError(f"--output: cannot write '{path}' ({exc.strerror})") from None
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"--output: cannot write in '{target.parent}' ({exc.strerror})") from None
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"--output: cannot write '{path}' ({exc.strerror})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


FORMATS = {".json": "json", ".csv": "csv"}


def report_format(args: argparse.Namespace) -> str:
    """The report's format: ``--format`` if given, else the ``--output`` file's extension
    (.json, .csv; anything else: the table). A ``--format`` that contradicts the
    extension is refused: the file would hold what its name says it does not."""
    by_name = FORMATS.get(Path(args.output).suffix.lower()) if args.output else None
    if args.format is None:
        return by_name or "table"
    if by_name is not None and by_name != args.format:
        raise InputError(f"--output: '{args.output}' names a {by_name} file but --format is "
                         f"{args.format}; drop --format (the extension decides) or rename "
                         "the file")
    return str(args.format)


def to_csv(report: dict[str, Any]) -> str:
    """CSV for spreadsheets and pandas: one row per class with ``--per-class``, else one
    row for the whole evaluation; NaN as an empty field."""
    import csv

    def cell(v: Any) -> Any:
        return "" if isinstance(v, float) and not math.isfinite(v) else v

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if report["per_class"]:
        keys = ["class", "loss", "positives", "negatives", "pos_weight"]
        w.writerow(keys)
        w.writerows([cell(r[k]) for k in keys] for r in report["per_class"])
    else:
        keys = ["loss", "reduction", "n_elements", "n_masked", "backend"]
        w.writerow(keys)
        w.writerow([cell(report[k]) for k in keys])
    return buf.getvalue()


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON: NaN and infinities (a class with no unmasked element, say) are
    written as ``null``, which every JSON parser accepts."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(report), indent=2, allow_nan=False) + "\n"


EPILOG = """\
examples:
  wce-xp eval logits.npy labels.npy --pos-weight auto --per-class
  wce-xp eval preds.npz:logits preds.npz:labels --pos-weight 19,4,1 --format json
  wce-xp eval logits.parquet labels.parquet:a,b,c --mask observed.npy --backend torch
  wce-xp eval logits.npy labels.npy --backend dask --scheduler local --output report.json

The report goes to stdout (and to --output, written atomically; an input file is never
overwritten). In JSON, NaN and infinities are written as null. Bad input: one line on
stderr and exit status 2; interrupted: 130 (SIGINT) or 143 (SIGTERM).
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, and the epilog's examples kept as written."""


def build_parser() -> _Parser:
    from .._version import __version__

    p = _Parser(prog="wce-xp",
                description="Weighted sigmoid cross-entropy on any array backend.")
    p.add_argument("--version", action="version", version=f"wce-xp {__version__}")
    p.add_argument("--verbose", action="store_true",
                   help="with --version: the compiled kernels, threads and array libraries "
                   "(wce_xp.show_config())")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("demo", help="run TensorFlow's example on every installed backend",
                   description="TensorFlow's documented example on every installed backend; "
                   "says which backends ran and how to add the others.")
    e = sub.add_parser("eval", help="evaluate prediction files (logits and labels)",
                       description="The weighted sigmoid cross-entropy of a file of logits "
                       "against a file of labels, read in chunks of rows.",
                       epilog=EPILOG, formatter_class=_HelpFormatter)
    e.add_argument("logits", metavar="LOGITS", help=".npy, .npz[:name] or .parquet[:cols]")
    e.add_argument("labels", metavar="LABELS", help=".npy, .npz[:name] or .parquet[:cols]")
    e.add_argument("--pos-weight", default="1",
                   help="a number, a comma list (one per class), a .npy file, or 'auto' "
                   "(negatives/positives per class, from a first pass)")
    e.add_argument("--weight", help="weights file, (N,) or (N, C); finite, non-negative")
    e.add_argument("--mask", help="boolean file, (N,) or (N, C); False = missing label")
    e.add_argument("--label-smoothing", type=float, default=0.0,
                   help="Keras's rule z -> z(1 - s) + s/2, s in [0, 1]")
    e.add_argument("--reduction", choices=("mean", "sum", "weighted_mean"), default="mean",
                   help="mean over unmasked elements, sum, or sum(w·loss)/sum(w)")
    e.add_argument("--per-class", action="store_true", help="report each class too")
    e.add_argument("--backend", choices=_backends.CLI_BACKENDS, default="numpy",
                   help="the array library that computes")
    e.add_argument("--device", help="torch: cpu|cuda[:i]; cupy: i; jax: platform[:i]; "
                   "tensorflow: cpu|gpu[:i]")
    e.add_argument("--chunk-rows", type=int, default=1 << 20,
                   help="rows read and evaluated at a time (bounds the memory used)")
    e.add_argument("--scheduler", help="Dask scheduler address, or 'local' for a LocalCluster")
    e.add_argument("--format", choices=("table", "json", "csv"), default=None,
                   help="the report's format (JSON: NaN and infinities as null; CSV: one "
                   "row per class with --per-class); default: from --output's extension "
                   "(.json, .csv), else table")
    e.add_argument("--output", help="also write the report to this file (atomically); its "
                   "extension sets the format")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    p.subcommands = {"eval": e}
    return p


class _StdoutClosed(Exception):
    """The reader of stdout went away."""


def _emit(text: str) -> None:
    """The report on stdout. A closed pipe (``wce-xp eval ... | head``) ends quietly, as
    Unix tools do; any other write error (a full device) is one line and exit 2."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        # nothing more reaches the broken stdout, not even at interpreter exit
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if isinstance(exc, BrokenPipeError):
            raise _StdoutClosed from None
        raise InputError(f"cannot write the report ({exc.strerror or exc})") from None



def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        parser = build_parser()
        if not argv:
            parser.print_help(sys.stderr)
            return 2
        if "--version" in argv and "--verbose" in argv:
            buf = io.StringIO()
            show_config(buf)
            _emit(buf.getvalue())
            return 0
        if argv == ["eval"]:  # the command without its files: its usage and examples
            parser.subcommands["eval"].print_help(sys.stderr)
            return 2
        args = parser.parse_args(argv)
        if args.command == "demo":
            buf = io.StringIO()
            rc = demo(buf)
            _emit(buf.getvalue())
            return rc
        check_output(args)
        fmt = report_format(args)
        report = evaluate(args)
        text = {"json": to_json, "csv": to_csv}.get(fmt, lambda r: format_table(r, args))(report)
        if args.output:
            write_report(args.output, text)
        _emit(text)
    except InputError as exc:
        print(f"wce-xp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wce-xp: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("wce-xp: terminated", file=sys.stderr)
        return 143
    except _StdoutClosed:
        return 141
    except Exception as exc:  # a case not foreseen above: still one line, still exit 2
        if os.environ.get("WCE_XP_DEBUG"):
            raise
        msg = " ".join(str(exc).split())[:300]
        print(f"wce-xp: error: {type(exc).__name__}: {msg} (WCE_XP_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 2
    return 0
