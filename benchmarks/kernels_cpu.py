"""CPU benchmark of workbench.kernels.linear: compressed weights and the XNOR-popcount GEMM against torch float32
F.linear and torch's own int8 / int4 weight-only CPU kernels, in the same run, with each figure's bytes moved against
the copy bandwidth measured in the same run (see workbench/kernels/cpu_bench.py for the table's columns).

    flock /tmp/wb-bench.lock python benchmarks/kernels_cpu.py --json benchmarks/kernels_cpu_results.json
    python benchmarks/kernels_cpu.py --quick            # two MiniLM shapes at batch 1 and 64

Prints markdown: the machine (CPU, SIMD, load average before and after), the copy bandwidth, the full table and the
targets of issue 23 (binary ≥ 8× float32 at batch 64 on 4096×4096; int8 at batch 1 within 1.2× of torch's int8 and
≥ 2× float32; batch-1 figures at ≥ 50 % of the copy bandwidth).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from workbench.kernels import cpu_bench as B  # noqa: E402
from workbench.kernels.bench import to_markdown  # noqa: E402


def targets(df) -> list[str]:
    """The issue's targets, each with the measured figure and PASS / MISS."""
    def one(layer, batch, method, col):
        r = df[(df.layer == layer) & (df.batch == batch) & (df.method == method)]
        return float(r[col].iloc[0]) if len(r) else float("nan")

    big = "4096×4096"
    out = []
    xn = one(big, 64, "xnor", "speedup_vs_f32")
    out.append(f"- binary (XNOR-popcount) at batch 64 on {big}: {xn:.1f}× float32 (target ≥ 8): {'PASS' if xn >= 8 else 'MISS'}")
    v8 = one(big, 1, "int8", "vs_torch_int8")
    f8 = one(big, 1, "int8", "speedup_vs_f32")
    out.append(f"- int8 weight-only at batch 1 on {big}: {v8:.2f}× torch's int8 kernel (target ≥ 1/1.2 = 0.83): "
               f"{'PASS' if v8 >= 1 / 1.2 else 'MISS'}; {f8:.2f}× float32 (target ≥ 2): {'PASS' if f8 >= 2 else 'MISS'}")
    b1 = df[(df.batch == 1) & ~df.method.isin(["torch_int8", "torch_int8_bf16", "torch_int4"])]
    low = b1[b1.bw_fraction < 0.5]
    out.append(f"- batch-1 figures at ≥ 50 % of copy bandwidth: {len(b1) - len(low)} of {len(b1)}; below: "
               + ", ".join(f"{r.layer} {r.method} {100 * r.bw_fraction:.0f} %" for r in low.itertuples()))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two MiniLM shapes at batch 1 and 64")
    ap.add_argument("--json", type=Path, help="write the table and metadata here")
    ap.add_argument("--budget", type=float, default=0.25, help="seconds of timed work per figure")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    load_before = os.getloadavg()
    shapes = {k: B.SHAPES[k] for k in B.QUICK_SHAPES} if args.quick else B.SHAPES
    batches = B.QUICK_BATCHES if args.quick else B.BATCHES
    df, meta = B.bench_table(shapes, batches, budget_s=args.budget,
                             progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    meta["load_avg_before"] = [round(v, 2) for v in load_before]
    meta["quick"] = args.quick
    print(f"## CPU kernels ({meta['date']})\n")
    print(f"Machine: {meta['cpu']}, {meta['cores']} cores, SIMD {', '.join(meta.get('simd', []))}; torch "
          f"{meta['torch']}, numba {meta['numba']}, {args.threads} threads. Load average before "
          f"{meta['load_avg_before']}, after {meta['load_avg']} (shared machine: loaded).")
    print(f"Copy bandwidth (STREAM-like, 256 MB): {meta['copy_gbps']:.1f} GB/s. Weights cold (64 MB written "
          "between repetitions). Times: best of repetitions.\n")
    cols = ["layer", "batch", "method", "path", "best_us", "time_us", "gbps", "bw_fraction", "speedup_vs_f32",
            "vs_torch_int8", "note"]
    print(to_markdown(df[cols]))
    print("\n### Targets\n")
    print("\n".join(targets(df)))
    if args.json:
        B.save_results(df, meta, args.json)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
