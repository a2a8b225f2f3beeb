"""Benchmark of the metric lab (CPU): kNN accuracy and fit time of every learner, against scikit-learn's NCA.

1. ``compare_metrics`` on iris, wine, breast cancer and digits (standardized per split), k = 3, the same repeated
   stratified 70/30 splits for every method: Euclidean, scikit-learn's NCA (the baseline), the free-energy Monte
   Carlo, LMNN and ITML (metric-learn, when it runs here). Ratios of accuracy and fit time to NCA's, measured in the
   same run.
2. The same on the penultimate features of digits-cnn's 360 held-out images with the network in dense, int4 and
   binary formats.
3. Monte Carlo throughput (moves per second) on digits (1,257 training samples × 64 features).

Targets (issue 16): free energy at least as accurate as NCA on ≥ 3 of the 4 data sets (a tie within one sd counts);
fit time on digits within 3× of NCA's.

    flock /tmp/wb-bench.lock python benchmarks/metric.py [--splits 5] [--digits-steps 800]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def fmt_table(df, nca_time: dict[str, float]) -> list[str]:
    lines = ["| data set | method | kNN accuracy (mean ± sd) | Δ vs NCA | paired p | fit s | fit time / NCA | status |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in df.itertuples():
        if r.status != "ok":
            lines.append(f"| {r.dataset} | {r.method} | – | – | – | – | – | {r.status} |")
            continue
        ratio = r.fit_seconds / nca_time[r.dataset] if nca_time.get(r.dataset) else float("nan")
        lines.append(f"| {r.dataset} | {r.method} | {100 * r.accuracy_mean:.2f} ± {100 * r.accuracy_sd:.2f} | "
                     f"{100 * r.diff_vs_nca:+.2f} | {r.p_vs_nca:.3f} | {r.fit_seconds:.3f} | {ratio:.2f} | ok |")
    return lines


def verdict(df) -> list[str]:
    out = []
    wins = 0
    for name, part in df.groupby("dataset", sort=False):
        p = part.set_index("method")
        if "free_energy" not in p.index or "nca" not in p.index:
            continue
        fe, nca = p.loc["free_energy"], p.loc["nca"]
        ok = fe.accuracy_mean >= nca.accuracy_mean or abs(fe.accuracy_mean - nca.accuracy_mean) <= max(
            fe.accuracy_sd, nca.accuracy_sd)
        wins += bool(ok)
        out.append(f"- {name}: free energy {100 * fe.accuracy_mean:.2f} ± {100 * fe.accuracy_sd:.2f} vs NCA "
                   f"{100 * nca.accuracy_mean:.2f} ± {100 * nca.accuracy_sd:.2f}: "
                   f"{'at least as accurate (tie within one sd counts)' if ok else 'less accurate'}; fit time "
                   f"{fe.fit_seconds / nca.fit_seconds:.2f}× NCA's")
    return out, wins


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--digits-steps", type=int, default=800)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--formats", nargs="*", default=["dense", "int4", "binary"])
    ap.add_argument("--datasets", nargs="*", default=["iris", "wine", "breast_cancer", "digits"])
    args = ap.parse_args()

    import torch

    from workbench.metric import compare_metrics, fit_metric, load_dataset, metric_learn_status

    print(f"# metric benchmark · {platform.machine()} · torch {torch.__version__} · {os.cpu_count()} cores · "
          f"torch threads {torch.get_num_threads()} · load avg {os.getloadavg()}")
    print(f"metric-learn: {metric_learn_status()}\n")
    methods = ["euclidean", "nca", "free_energy", "lmnn", "itml"]
    t0 = time.perf_counter()
    parts = []
    for name in args.datasets:
        steps = args.digits_steps if name == "digits" else args.steps
        parts.append(compare_metrics([name], methods, k=3, splits=args.splits, progress=False,
                                     options={"free_energy": {"steps": steps}}))
        print(f"  {name} done at {time.perf_counter() - t0:.0f} s · load avg {os.getloadavg()}", flush=True)
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    nca_time = df[df.method == "nca"].set_index("dataset")["fit_seconds"].to_dict()
    print(f"\n## scikit-learn data sets, k = 3, {args.splits} stratified 70/30 splits (free-energy steps: "
          f"{args.steps}, digits {args.digits_steps})\n")
    print("\n".join(fmt_table(df, nca_time)))
    lines, wins = verdict(df)
    print("\n" + "\n".join(lines))
    print(f"\nTarget ≥ 3 of 4 data sets: {wins} of {len(lines)}.")

    feats = {f"digits-cnn:{f}": load_dataset(f"digits-cnn:{f}") for f in args.formats}
    if feats:
        cnn = compare_metrics(feats, methods, k=3, splits=args.splits, progress=False,
                              options={"free_energy": {"steps": args.steps}})
        nca_time = cnn[cnn.method == "nca"].set_index("dataset")["fit_seconds"].to_dict()
        print(f"\n## digits-cnn penultimate features (64) of the 360 held-out images, per format, k = 3, "
              f"{args.splits} splits\n")
        print("\n".join(fmt_table(cnn, nca_time)))

    X, y = load_dataset("digits")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:1257]
    Xs = X[idx]
    Xs = (Xs - Xs.mean(0)) / np.where(Xs.std(0) > 0, Xs.std(0), 1.0)
    m = fit_metric(Xs, y[idx], "free_energy", steps=args.digits_steps, progress=False)
    print(f"\nMonte Carlo throughput on digits (1,257 × 64, float32, incremental ΔE): "
          f"{m.info['moves_per_second']:.0f} moves/s ({m.info['moves']} moves in {m.info['seconds']:.2f} s, "
          f"acceptance {m.info['acceptance']:.2f}); load avg {os.getloadavg()}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
