"""What each private framework internal that wce_xp keeps is worth: the PyTorch rows of
the training matrix (CPU, (N, 10), ``none`` and ``mean``, forward and forward+backward)
with every internal, and with each one replaced by its public fallback, in separate
processes run in alternation. Writes the ``internals`` section of BENCHMARKS.md.

    python benchmarks/internals.py            # sizes 1e2 ... 1e6, three rounds
    python benchmarks/internals.py --quick    # one round
    python benchmarks/internals.py --no-write # print only

The internals (all in ``wce_xp._compat`` or read through it):

* ``function_apply``: ``torch._C._FunctionBase.apply`` without ``Function.apply``'s
  Python layer (fallback: ``Function.apply``);
* ``by_address``: C calls on the tensors' memory by address, storages held (fallback:
  the same kernels through ``Tensor.numpy()`` views);
* ``openmp``: the C kernels' threads run on PyTorch's OpenMP team through the runtime's
  ``GOMP_parallel`` (fallback: the kernels' own thread pool).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("all", "without function_apply", "without by_address", "without openmp")

_CHILD = r"""
import json, sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {root!r})
variant, sizes, quick = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
import numpy as np, torch
import wce_xp
from wce_xp import _compat
from wce_xp._native import _numpy, _torch
if variant == "without function_apply":
    _compat.function_apply = lambda f: f.apply
elif variant == "without by_address":
    _torch._c_operands = lambda *a: None
    _torch.labels_in_unit = lambda z: _numpy.in_range(z.detach().numpy(), 0.0, 1.0)
elif variant == "without openmp":
    _compat.loaded_openmp_parallel = lambda: 0
from benchmarks.training import _data, _t
pw = torch.tensor(2.0)
f = wce_xp.binary_cross_entropy_with_logits
out = {{}}
for n in sizes:
    xn, zn = _data((n // 10, 10))
    x, z = torch.from_numpy(xn), torch.from_numpy(zn)
    for red in ("none", "mean"):
        for mode in ("forward", "forward+backward"):
            def run(red=red, mode=mode):
                if mode == "forward":
                    with torch.no_grad():
                        return f(x, z, pos_weight=pw, reduction=red)
                xg = x.detach().requires_grad_()
                o = f(xg, z, pos_weight=pw, reduction=red)
                (o if red == "mean" else o.sum()).backward()
            out[f"{{n}}|{{red}}|{{mode}}"] = _t(run, n >= 10**7, quick)
print(json.dumps(out))
"""


def _child(variant: str, sizes: list[int], quick: bool) -> dict[str, float]:
    code = _CHILD.format(src=str(ROOT / "src"), root=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code, variant, json.dumps(sizes),
                          "1" if quick else "0"], capture_output=True, text=True, check=True)
    times: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return times


def measure(sizes: list[int], rounds: int, quick: bool) -> dict[str, dict[str, float]]:
    """Median time per cell and variant over ``rounds`` alternating rounds."""
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for i in range(rounds):
        for v in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            runs[v].append(_child(v, sizes, quick))
            print(f"round {i + 1}: {v}", flush=True)
    return {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for v, rs in runs.items()}


def report(med: dict[str, dict[str, float]]) -> str:
    """Time with each internal replaced by its fallback over the time with all of them
    (above 1: the internal gains), per cell."""
    cells = list(med["all"])
    head = "| n | reduction | mode | " + " | ".join(v.removeprefix("without ")
                                                   for v in VARIANTS[1:]) + " |"
    lines = [head, "|" + "---|" * (3 + len(VARIANTS) - 1)]
    for k in cells:
        n, red, mode = k.split("|")
        ratios = [med[v][k] / med["all"][k] for v in VARIANTS[1:]]
        lines.append(f"| {float(n):.0e} | {red} | {mode} | "
                     + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    best = {v: max(med[v][k] / med["all"][k] for k in cells) for v in VARIANTS[1:]}
    lines.append("")
    lines.append("Largest gain of each (time without it over time with it): " + ", ".join(
        f"{v.removeprefix('without ')} {g:.2f}x" for v, g in best.items()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sizes = [10**k for k in range(2, 7)]
    med = measure(sizes, 1 if args.quick else args.rounds, args.quick)
    text = report(med)
    print(text)
    if not args.no_write:
        import datetime

        from benchmarks.bench import machine, write_section

        day = datetime.date.today().isoformat()
        head = (f"### Private internals: what each is worth — measured {day}\n\n"
                "`benchmarks/internals.py`: PyTorch CPU, (N, 10) float32, `pos_weight` a "
                "tensor, default threads, rounds of one process per variant in alternating "
                "order, the median per cell. Each figure is the time with that internal "
                "replaced by its public fallback over the time with every internal (above "
                "1: the internal gains).")
        write_section("internals", f"{head}\n\nMachine: {machine()}\n\n{text}\n")
        (ROOT / "benchmarks" / "results" / "internals.json").write_text(json.dumps(med))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
