"""Benchmark of the sampling lab (CPU): per sampler, its update + sampling cost per step as a fraction of a uniform
training step, and the training time (wall clock, evaluation excluded, and steps) to reach the uniform sampler's final
test accuracy; then the sketch's relative error against the exact NW estimator as the number of tables grows.

Data sets: digits with the bundled ``digits-mlp`` and ``digits-cnn`` architectures (re-initialised), scikit-learn's
breast cancer and wine with an MLP (``workbench.sampling.sampling_handle``). Every sampler trains from the same
seeded initialisation with the same learning rate and number of steps; ratios are against the uniform sampler
measured in the same run. Settings are the lab's ``DEFAULTS`` (floor 0.1, K 5, L 32, pool 4× the batch).

    flock /tmp/wb-bench.lock python benchmarks/sampling.py [--seeds 3] [--datasets digits-cnn wine ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import pandas as pd

CONFIG = {  # per data set: batch size, epochs, learning rate (fixed before any result was seen)
    "digits-mlp": (64, 6, 0.05),
    "digits-cnn": (64, 6, 0.05),
    "breast-cancer": (32, 10, 0.05),
    "wine": (16, 10, 0.05),
}


def md(df: pd.DataFrame) -> str:
    """A markdown table (floats to 3 significant digits) without the optional tabulate dependency."""
    def cell(v) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", nargs="+", default=list(CONFIG))
    args = ap.parse_args()

    import torch

    from workbench.sampling import DEFAULTS, compare_samplers, sketch_error

    load0 = os.getloadavg()
    t_all = time.perf_counter()
    tta_rows, cost_rows = [], []
    for name in args.datasets:
        batch, epochs, lr = CONFIG[name]
        c = compare_samplers(name, seeds=range(args.seeds), batch_size=batch, epochs=epochs, lr=lr)
        tta = c.time_to_accuracy()
        uniform_step = float(c.costs[c.costs.sampler == "uniform"]["step_seconds"].median())
        for _, r in tta.iterrows():
            cst = c.costs[c.costs.sampler == r.sampler]
            tta_rows.append({"data": name, "sampler": r.sampler, "target acc": r.target, "reached": r.reached,
                             "steps": r.steps, "seconds": r.seconds, "× uniform time": r.seconds_vs_uniform,
                             "final acc": r.final_acc})
            cost_rows.append({"data": name, "batch": batch, "sampler": r.sampler,
                              "sampler ms/step": 1e3 * float(cst["sampler_seconds"].median()),
                              "uniform step ms": 1e3 * uniform_step,
                              "fraction of a uniform step": float(cst["sampler_seconds"].median()) / uniform_step,
                              "step ms (with sampler)": 1e3 * float(cst["step_seconds"].median())})
        print(f"# {name} done ({time.perf_counter() - t_all:.0f} s)", flush=True)
    tta_df = pd.DataFrame(tta_rows)
    cost_df = pd.DataFrame(cost_rows)
    err = sketch_error("digits-mlp", tables=(1, 2, 4, 8, 16, 32, 64, 128), hash_seeds=range(5), K=DEFAULTS["K"])
    curve = err.groupby("L").agg(mean_rel_error=("mean_rel_error", "mean"), sd=("mean_rel_error", "std"),
                                 median=("median_rel_error", "mean"), p90=("p90_rel_error", "mean")).reset_index()
    load1 = os.getloadavg()
    seconds = time.perf_counter() - t_all

    print(f"### Sampling: {args.seeds} seeds, data sets {', '.join(args.datasets)}")
    print()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average at start {load0[0]:.2f} / {load0[1]:.2f} / "
          f"{load0[2]:.2f}, at end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}; total {seconds:.0f} s. "
          f"Per data set (batch, epochs, lr): {CONFIG}. Sampler settings: floor {DEFAULTS['floor']}, "
          f"K {DEFAULTS['K']}, L {DEFAULTS['L']}, pool {DEFAULTS['pool']}× batch.")
    print()
    print("#### Sampler cost per step (update + sampling; median over seeds) as a fraction of a uniform step")
    print()
    print(md(cost_df))
    print()
    print("#### Time to the uniform sampler's final test accuracy (mean over the seeds that reached it; seconds "
          "are training wall time without evaluation)")
    print()
    print(md(tta_df))
    print()
    print(f"#### Sketch vs exact NW estimator on digits (losses after 60 uniform steps of digits-mlp, half the "
          f"samples seen, K={DEFAULTS['K']}, 5 hash seeds)")
    print()
    print(md(curve))


if __name__ == "__main__":
    main()
