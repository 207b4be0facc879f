"""``wce-xp eval`` on 1e8-row .npz (stored and deflated) and Parquet files: peak resident
memory of the command (VmHWM, read inside the process) and agreement with the
in-memory library call. Rewrites BENCHMARKS.md [cli_formats].

    python benchmarks/cli_formats.py [--rows N] [--no-write]

Needs pyarrow. Writes about 3 GB of temporary files (WCE_BENCH_TMP picks the folder).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from bench import eval_measured, machine, write_section

import wce_xp

Q = 2.0


def _run(logits: str, labels: str) -> dict[str, Any]:
    rss, wall, rep = eval_measured(logits, labels)
    return {"peak_rss_MiB": rss, "wall_s": wall, "loss": rep["loss"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = args.rows
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, n).astype(np.float32)
    z = (rng.uniform(size=n) > 0.8).astype(np.float32)
    ref = float(wce_xp.weighted_cross_entropy_with_logits(z, x, Q, reduction="mean"))
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("WCE_BENCH_TMP")) as tmp:
        d = Path(tmp)
        np.savez(d / "stored.npz", logits=x, labels=z)
        np.savez_compressed(d / "deflated.npz", logits=x, labels=z)
        pq.write_table(pa.table({"logits": x, "labels": z}), d / "t.parquet",
                       row_group_size=1 << 20)
        del x, z
        for name, lo, la in (
            ("npz, stored", f"{d / 'stored.npz'}:logits", f"{d / 'stored.npz'}:labels"),
            ("npz, deflated", f"{d / 'deflated.npz'}:logits", f"{d / 'deflated.npz'}:labels"),
            ("parquet (row groups of 2**20)", f"{d / 't.parquet'}:logits",
             f"{d / 't.parquet'}:labels"),
        ):
            r = _run(lo, la)
            r["format"] = name
            r["rel_diff"] = abs(r["loss"] - ref) / ref
            rows.append(r)
            print(r)
    text = [f"Machine: {machine()}.", "",
            f"`wce-xp eval` on {n:.0e} rows x 1 class, float32 logits and labels in one file "
            "(two members or two columns), pos_weight 2, default chunks (2**20 rows). "
            "Peak resident memory of the command (VmHWM inside the process). Target: "
            "under 512 MiB, equal to the in-memory call.", "",
            "| format | peak RSS (MiB) | wall (s) | relative difference from the library |",
            "|---|---|---|---|"]
    for r in rows:
        text.append(f"| {r['format']} | {r['peak_rss_MiB']:.0f} | {r['wall_s']:.1f} | "
                    f"{r['rel_diff']:.1e} |")
    out = "\n".join(text) + "\n"
    print(out)
    if not args.no_write:
        write_section("cli_formats", "## Command line: streamed formats at 1e8 rows"
                      "\n\n" + out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
