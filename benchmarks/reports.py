"""Benchmark: a sweep of 8 compression reports with 1 and 2 local workers (processes, and threads), and the speed-up.

    flock /tmp/bench.lock python benchmarks/reports.py [--notebook PATH] [--out DIR]

Each configuration runs the same 8-run grid (one format per run, digits-mlp, quick mode) into a fresh folder, so
nothing is skipped. The baseline is 1 worker, measured in the same run. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = {"formats": [["2:4"], ["4:8-T"], ["fp8_e4m3"], ["fp8_e5m2"], ["int8"], ["int4"], ["binary"],
                    ["2:4+fp8_e4m3"]]}
FIXED = {"model": "digits-mlp", "output_error": False, "quick": True, "seed": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default=str(ROOT / "notebooks" / "reports" / "compression_report.ipynb"))
    parser.add_argument("--out", default=None, help="keep the sweeps here (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from workbench.reports import run_sweep

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="wb-bench-reports-"))
    configs = [("1 worker", 1, "processes"), ("2 workers (processes)", 2, "processes"),
               ("2 workers (threads)", 2, "threads")]
    rows = []
    for label, workers, pool in configs:
        out = base / f"{workers}-{pool}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        result = run_sweep(args.notebook, GRID, fixed=FIXED, output_dir=out, workers=workers, pool=pool,
                           progress=False)
        wall = time.perf_counter() - t0
        assert result.ok and len(result.names("complete")) == 8, result.runs
        per_run = sum(r["duration_s"] for r in result.runs) / len(result.runs)
        rows.append((label, wall, per_run))
    baseline = rows[0][1]
    print(f"Sweep of 8 compression reports (digits-mlp, one format each, quick mode); "
          f"{platform.machine()} CPU, {os.cpu_count()} cores, python {platform.python_version()}\n")
    print("| workers | wall time (s) | mean time per report (s) | speed-up vs 1 worker |")
    print("|---|---:|---:|---:|")
    for label, wall, per_run in rows:
        print(f"| {label} | {wall:.1f} | {per_run:.1f} | {baseline / wall:.2f}x |")
    if not args.out:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
