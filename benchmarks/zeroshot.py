"""Benchmark of the zero-shot lab (CPU): ZSL accuracy and GZSL seen / unseen / harmonic mean of soft labels, DAP and
ESZSL on scikit-learn's digits, mean ± sd over unseen-class splits (3 of 10 digits held out) and seeds.

Every method sees the same splits and seeds. Settings are the lab's ``DEFAULTS``, fixed before any result was seen
(nothing is tuned on the unseen test classes). The baselines run on two feature sets: the 64 standardised pixels,
and the penultimate layer of the same architecture trained with hard labels on the seen classes only. Ratios are
against the best baseline measured in the same run.

    flock /tmp/wb-bench.lock python benchmarks/zeroshot.py [--model digits-mlp] [--splits 5] [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import pandas as pd


def fmt(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits-mlp")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    import torch

    import workbench
    from workbench.zeroshot import DEFAULTS, compare_methods, summarize, unseen_splits

    handle = workbench.load_model(args.model)
    splits = unseen_splits(args.splits, 3, seed=0)
    seeds = tuple(range(args.seeds))
    t0 = time.perf_counter()
    soft = compare_methods(handle, splits=splits, seeds=seeds, methods=("soft_labels",))
    pix = compare_methods(handle, splits=splits, seeds=seeds, methods=("dap", "eszsl"), features="pixels")
    net = compare_methods(handle, splits=splits, seeds=seeds, methods=("dap", "eszsl"), features="network")
    seconds = time.perf_counter() - t0
    runs = pd.concat([soft.runs, pix.runs, net.runs], ignore_index=True)
    runs["row"] = runs["method"] + " (" + runs["features"] + ")"
    runs.loc[runs.method == "soft_labels", "row"] = "soft labels (network)"
    table = summarize(runs, by="row")
    base = table[~table.row.str.startswith("soft")]
    best_h = base.H_mean.max()
    best_zsl = base.zsl_mean.max()
    load = os.getloadavg()
    print(f"### Zero-shot on digits ({args.model}, {args.splits} splits × {len(seeds)} seeds, 3 of 10 digits unseen)")
    print()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; total {seconds:.0f} s. Splits (unseen digits): "
          f"{', '.join('{' + ','.join(map(str, s.unseen)) + '}' for s in splits)}. Settings: "
          f"{', '.join(f'{k}={v}' for k, v in DEFAULTS.items())}.")
    print()
    print("| method (features) | ZSL acc | GZSL seen | GZSL unseen | GZSL H | H / best baseline H | "
          "ZSL / best baseline ZSL | AUSUC | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in table.itertuples():
        ratio_h = f"{r.H_mean / best_h:.2f}" if best_h > 0 else ("inf" if r.H_mean > 0 else "n/a")
        print(f"| {r.row} | {fmt(r.zsl_mean, r.zsl_sd)} | {fmt(r.seen_mean, r.seen_sd)} | "
              f"{fmt(r.unseen_mean, r.unseen_sd)} | {fmt(r.H_mean, r.H_sd)} | {ratio_h} | "
              f"{r.zsl_mean / best_zsl:.2f} | {fmt(r.ausuc_mean, r.ausuc_sd)} | {r.runs} |")
    print()
    per_split = runs.groupby(["split", "row"]).H.mean().unstack()
    print("GZSL H per split (mean over seeds):")
    print()
    print("| split | " + " | ".join(per_split.columns) + " |")
    print("|---|" + "---:|" * len(per_split.columns))
    for split, row in per_split.iterrows():
        print(f"| {split} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


if __name__ == "__main__":
    main()
