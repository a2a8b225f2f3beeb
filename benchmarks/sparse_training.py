"""Sparse training benchmark: test accuracy against sparsity for block sizes 4/8/16 and N:M, each method, mean ± sd
over seeds, against the dense model trained by the same loop with the same budget in the same run.

    python benchmarks/sparse_training.py                       # the default grid (digits-gru and digits-cnn)
    python benchmarks/sparse_training.py --seeds 0 1 2 --steps 400

Everything trains from scratch (``reinit=True``) with SGD (lr 0.1, momentum 0.9, batch 32) for ``--steps`` updates;
block pruning's schedule is start 10 % / ramp 40 % / end 70 % of the steps, group lasso cuts at 70 % (λ = 1e-4),
augmented re-chooses the mask every 20 steps. Prints a markdown table (ratio = accuracy / dense accuracy) with the
machine's load average, and writes every run to ``data/results/sparse_training.csv`` (the notebook reads it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workbench as wb  # noqa: E402
from workbench.dynamics import train  # noqa: E402
from workbench.sparse_training import METHODS, train_sparse  # noqa: E402

GRID = {
    "digits-gru": [(s, m) for s in ("block4x4@80%", "block8x8@80%", "block16x16@80%", "2:4", "4:8") for m in METHODS],
    "digits-cnn": [(s, m) for s in ("2:4", "unstructured 10%") for m in ("fixed_mask", "augmented")],
}
OUT = ROOT / "data" / "results" / "sparse_training.csv"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--models", nargs="+", default=list(GRID))
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    rows = []
    common = dict(steps=args.steps, lr=0.1, batch_size=32, eval_every=1000.0, progress=False)
    for model in args.models:
        h = wb.load_model(model)
        for seed in args.seeds:
            t = time.perf_counter()
            d = train(h, seed=seed, track_every=args.steps, **common)
            rows.append(dict(model=model, structure="dense", method="dense", seed=seed, sparsity=0.0,
                             ever_entered=1.0, test_acc=d.test_accuracy, seconds=time.perf_counter() - t))
            print(rows[-1], flush=True)
            for structure, method in GRID[model]:
                t = time.perf_counter()
                r = train_sparse(h, structure, method, seed=seed, **common)
                rows.append(dict(model=model, structure=structure, method=method, seed=seed, sparsity=r.sparsity,
                                 ever_entered=r.ever_entered, test_acc=r.accuracy,
                                 seconds=time.perf_counter() - t))
                print(rows[-1], flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(args.out, index=False, float_format="%.6g")
    runs = pd.DataFrame(rows)
    runs.to_csv(args.out, index=False, float_format="%.6g")
    summary = (runs.groupby(["model", "structure", "method"], sort=False)
               .agg(sparsity=("sparsity", "mean"), ever_entered=("ever_entered", "mean"), mean=("test_acc", "mean"),
                    sd=("test_acc", "std"), n=("seed", "count"), seconds=("seconds", "mean")).reset_index())
    dense = summary[summary.method == "dense"].set_index("model")["mean"]
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; steps {args.steps}; seeds {args.seeds}\n")
    print("| model | structure | method | sparsity | weights ever in mask | test accuracy (mean ± sd) | vs dense "
          "(points) | ratio | s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in summary.itertuples():
        base = dense[r.model]
        print(f"| {r.model} | {r.structure} | {r.method} | {r.sparsity:.3f} | {r.ever_entered:.3f} | "
              f"{r.mean:.4f} ± {0.0 if pd.isna(r.sd) else r.sd:.4f} | {100 * (r.mean - base):+.1f} | "
              f"{r.mean / base:.3f} | {r.seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
