"""Benchmark of the geometry lab (CPU): shift consistency of the bundled 32×32 digits models (max pool, blur pool,
APS) under circular and linear shifts, and Mix & Match (mixed-size) against fixed-size training, mean ± sd over
seeds, accuracy per test size with the FLOPs per image.

Part 1 uses the committed models (``digits32-cnn-max`` is the baseline the ratios refer to). Part 2 trains, per seed,
a fixed-size (32) and a mixed-size (16/24/32/40) GeometryCNN with max pooling for the same number of SGD steps at the
same pixels per step (``workbench.geometry.compare_fixed_mixed``); "BN recalibrated" recomputes the BatchNorm
statistics on the training digits at the test size (no weight changes). Settings were fixed before the run.

    flock /tmp/wb-bench.lock python benchmarks/geometry.py [--shifts 64] [--seeds 3] [--steps 300]

``--record PATH`` instead writes the Mix & Match comparison notebook 12 shows (``compare_fixed_mixed`` at test sizes
16/24/32/40/48, ``--steps`` and ``--seeds``) to a JSON file, the bundled one being
``data/results/12_mix_and_match.json`` (``--seeds 1 --steps 200``):

    python benchmarks/geometry.py --record data/results/12_mix_and_match.json --seeds 1 --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import pandas as pd


def fmt(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shifts", type=int, default=64, help="random circular shifts per image (plus (0, 0))")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--skip-mix", action="store_true")
    ap.add_argument("--record", default="", help="write notebook 12's Mix & Match table to this JSON file and stop")
    args = ap.parse_args()
    if args.record:
        record(args.record, tuple(range(args.seeds)), args.steps)
        return

    import torch

    import workbench
    from workbench.geometry import BUNDLED_MODELS, compare_fixed_mixed, shift_consistency, summarize_sizes

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load avg before: {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    rows = []
    for name in BUNDLED_MODELS:
        h = workbench.load_model(name)
        for mode, shifts in (("circular", args.shifts), ("linear", "all")):
            rows.append(shift_consistency(h, shifts=shifts, mode=mode).iloc[0])
    table = pd.DataFrame(rows)
    base = table[table["model"] == "digits32-cnn-max"].set_index("mode")
    table["inconsistent_vs_max"] = [
        (1 - r.consistency) / (1 - base.loc[r.mode, "consistency"])
        if base.loc[r.mode, "consistency"] < 1 else float("nan") for r in table.itertuples()]
    print(f"\n### Shift consistency of the bundled models ({time.perf_counter() - t0:.0f} s; circular: (0,0) + "
          f"{args.shifts - 1} random shifts of the 32×32 torus, linear: all 81 shifts with |dx|,|dy| ≤ 4, zero fill; "
          "360 test images)\n")
    print("| model | mode | accuracy | consistency | inconsistent images vs max | mean TV change of p | "
          "max TV change | worst-shift accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.model} | {r.mode} ({r.n_shifts} shifts) | {r.accuracy:.4f} | {r.consistency:.2%} | "
              f"{r.inconsistent_vs_max:.2f}× | {r.prob_change:.2e} | {r.max_prob_change:.3f} | {r.min_accuracy:.4f} |")

    if args.skip_mix:
        return
    t1 = time.perf_counter()
    seeds = tuple(range(args.seeds))
    frame = compare_fixed_mixed(seeds, steps=args.steps, test_sizes=(16, 24, 32, 40))
    plain, bn = summarize_sizes(frame), summarize_sizes(frame, "accuracy_bn")
    flops = frame.groupby("test_size")["flops"].first()
    print(f"\n### Mix & Match: fixed-size (32) vs mixed-size (16/24/32/40) training, {args.steps} steps, base batch 32 "
          f"at 32×32, linear lr rule, {len(seeds)} seeds ({time.perf_counter() - t1:.0f} s)\n")
    print("| test size | MFLOPs/image | fixed | mixed | mixed − fixed | fixed, BN recalibrated | mixed, BN "
          "recalibrated | mixed − fixed (BN recal.) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in sorted(frame["test_size"].unique()):
        def pick(t, training):
            r = t[(t["training"] == training) & (t["test_size"] == s)].iloc[0]
            return r.accuracy_mean, r.accuracy_sd
        f, m, fb, mb = pick(plain, "fixed"), pick(plain, "mixed"), pick(bn, "fixed"), pick(bn, "mixed")
        print(f"| {s} | {flops[s] / 1e6:.3f} | {fmt(*f)} | {fmt(*m)} | {m[0] - f[0]:+.3f} | {fmt(*fb)} | {fmt(*mb)} | "
              f"{mb[0] - fb[0]:+.3f} |")
    print("\nper seed (accuracy, as trained):\n")
    print("```")
    print(frame.pivot_table(index=["test_size"], columns=["training", "seed"], values="accuracy").round(3)
          .to_string())
    print("```")
    print(f"\nload avg after: {os.getloadavg()[0]:.2f}; total {time.perf_counter() - t0:.0f} s")


NOTEBOOK_TEST_SIZES = (16, 24, 32, 40, 48)


def record(path: str, seeds: tuple[int, ...], steps: int) -> None:
    """Write ``compare_fixed_mixed(seeds, steps=steps, test_sizes=NOTEBOOK_TEST_SIZES)`` with its settings as JSON."""
    import torch

    from workbench.geometry import DEFAULT_SIZES, compare_fixed_mixed

    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    frame = compare_fixed_mixed(seeds, steps=steps, test_sizes=NOTEBOOK_TEST_SIZES)
    seconds = time.perf_counter() - t0
    out = {"what": "workbench.geometry.compare_fixed_mixed: fixed-size (32) vs mixed-size training, max pooling",
           "seeds": list(seeds), "steps": steps, "train_sizes": list(DEFAULT_SIZES), "fixed_size": 32,
           "test_sizes": list(NOTEBOOK_TEST_SIZES), "torch": torch.__version__, "seconds": round(seconds, 1),
           "load_avg": round(load, 2), "table": frame.to_dict(orient="records")}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(frame)} rows in {seconds:.0f} s (load avg {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)")


if __name__ == "__main__":
    main()
