"""Transposable N:M masks at scale (issue 22): 8:16-T and 16:32-T on a 4096×4096 weight, the 2:4-T greedy's gap, and
the 2:4-T optimal against apex's ``m4n2_2d_best`` algorithm re-implemented here as the baseline. Prints markdown
tables and writes every measured row to ``data/results/masks_scale.csv``.

    flock /tmp/wb-bench.lock python benchmarks/masks_scale.py            # 4096² (and 1024² for the apex table)
    WORKBENCH_QUICK=1 python benchmarks/masks_scale.py                   # 512², a smoke run (CSV not written)

Weights (synthetic, seeded): Gaussian N(0, 1), and heavy-tailed Student-t with 2 degrees of freedom.

1. ``optimal`` (exact: successive shortest paths with Dijkstra per tile, numba, parallel over tiles) is the optimum;
   the b-matching LP is integral, so it is also the LP bound; it is checked against scipy's ``linprog`` (HiGHS) on
   sampled tiles. ``greedy`` is Hubara et al. 2021's greedy + repair + the 4-cycle local search; "greedy, no local
   search" the paper's greedy + repair alone. Gap = 1 − kept Σ|w| / optimal kept Σ|w|, over the whole weight.
2. apex baseline (NVIDIA apex ``contrib/sparsity`` ``m4n2_2d_best``, written here from its description): enumerate the
   90 valid 4×4 2:4-transposable patterns, score every 4×4 block (flattened to 16) by one matmul against the 90×16
   pattern matrix, argmax, gather the pattern; float32 as apex computes it. Best of 3 runs each, same weight.

TSENOR (Meng, Makni & Mazumder 2025, arXiv:2505.23949, NeurIPS 2025) reports "only 1-10% error compared to existing
methods" for its entropic-OT + rounding solver on GPU; that figure is printed beside ours, not re-measured.
"""

from __future__ import annotations

import csv
import itertools
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from workbench.config import quick_mode
from workbench.formats.masks import _to_tiles, is_transposable, numba_available, transposable_mask

from sparsity import lp_tile  # benchmarks/sparsity.py: the per-tile LP bound

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "data" / "results" / "masks_scale.csv"
TSENOR_ERROR = "1–10 % (published, GPU; arXiv:2505.23949)"
FIELDS = ["table", "weight", "size", "pattern", "method", "seconds", "kept", "gap_pct", "load_before", "load_after",
          "threads", "when"]


def load() -> float:
    return os.getloadavg()[0]


def weight(kind: str, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "gaussian":
        return torch.randn(size, size, generator=g)
    z = torch.randn(size, size, generator=g)
    chi2 = torch.randn(size, size, 2, generator=g).pow(2).sum(-1)
    return z / (chi2 / 2).sqrt()  # Student-t, 2 degrees of freedom


def timed(fn, repeat: int = 1):
    best, out, before = float("inf"), None, load()
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out, before, load()


# ---------------------------------------------------------------------------------------------- apex baseline
def apex_patterns() -> torch.Tensor:
    """The 90 valid 4×4 patterns with two ones per row and column, (90, 16) float32 (enumerated here)."""
    rows = [r for r in itertools.product((0, 1), repeat=4) if sum(r) == 2]
    pats = [p for p in itertools.product(rows, repeat=4) if all(sum(col) == 2 for col in zip(*p))]
    assert len(pats) == 90
    return torch.tensor(pats, dtype=torch.float32).reshape(90, 16)


def apex_m4n2_2d_best(w: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """apex's algorithm: |w| blocks (flattened to 16) @ patterns.T, argmax per block, gather, back to (R, C)."""
    r, c = w.shape
    blocks = w.abs().reshape(r // 4, 4, c // 4, 4).permute(0, 2, 1, 3).reshape(-1, 16)
    best = torch.argmax(blocks @ patterns.T, dim=1)
    return patterns[best].reshape(r // 4, c // 4, 4, 4).permute(0, 2, 1, 3).reshape(r, c).bool()


def main() -> None:
    quick = quick_mode()
    size = 512 if quick else 4096
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), "
          f"numba {'yes' if numba_available() else 'no'}, python {sys.version.split()[0]}; quick={quick}; "
          f"load avg at start {os.getloadavg()}")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict] = []
    transposable_mask(torch.randn(64, 64), 16, 32)  # load the compiled kernels (numba's disk cache) once
    transposable_mask(torch.randn(64, 64), 16, 32, "greedy")
    transposable_mask(torch.randn(64, 64), 2, 4)

    print(f"\n### Transposable N:M masks on a {size}×{size} weight: time and kept-magnitude gap to the optimum "
          "(= the LP bound)\n")
    print("| weight | pattern | method | time (s) | kept Σ\\|w\\| | gap to optimum / LP bound | load avg | TSENOR |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("gaussian", "heavy-tailed t2"):
        w = weight("gaussian" if kind == "gaussian" else "t2", size)
        absw = w.abs().double()
        for n, m in ((2, 4), (8, 16), (16, 32)):
            res = {}
            for label, method, ls in (("optimal", "optimal", True), ("greedy + local search", "greedy", True),
                                      ("greedy, no local search", "greedy", False)):
                t, mask, lb, la = timed(lambda n=n, m=m, method=method, ls=ls: transposable_mask(
                    w, n, m, method, local_search=ls), repeat=3 if m == 4 else 1)
                assert is_transposable(mask, n, m, exact=True)
                res[label] = (t, float((absw * mask).sum()), lb, la, mask)
            opt = res["optimal"][1]
            tiles = _to_tiles(absw, m)
            idx = torch.randperm(len(tiles), generator=torch.Generator().manual_seed(1))[: (8 if quick else 40)]
            lp = np.array([lp_tile(tiles[i].numpy(), n) for i in idx])
            ours = (tiles[idx] * _to_tiles(res["optimal"][4], m)[idx]).sum((1, 2)).numpy()
            lp_gap = float(np.max(np.abs(ours - lp) / lp))
            for label, (t, kept, lb, la, _) in res.items():
                gap = (1 - kept / opt) * 100
                print(f"| {kind} | {n}:{m}-T | {label} | {t:.2f} | {kept:.6g} | {gap:.3f} % | {lb:.1f}→{la:.1f} | "
                      f"{TSENOR_ERROR if label == 'optimal' and m == 32 else ''} |", flush=True)
                rows.append(dict(table="scale", weight=kind, size=size, pattern=f"{n}:{m}-T", method=label,
                                 seconds=round(t, 4), kept=kept, gap_pct=round(gap, 5), load_before=round(lb, 2),
                                 load_after=round(la, 2), threads=threads, when=when))
            print(f"|  | {n}:{m}-T | (optimal vs scipy linprog on {len(idx)} sampled tiles: max relative gap "
                  f"{lp_gap:.1e}) | | | | | |")

    print("\n### 2:4-T optimal against apex's `m4n2_2d_best` (re-implemented: 90-pattern matmul), best of 3\n")
    print("| size | apex baseline (s) | ours, optimal (s) | ours / apex time | same kept Σ\\|w\\| | load avg |")
    print("|---|---|---|---|---|---|")
    pats = apex_patterns()
    for s in ((256, 512) if quick else (1024, 4096)):
        w = weight("gaussian", s)
        ta, ma, lb, _ = timed(lambda w=w: apex_m4n2_2d_best(w, pats), repeat=3)
        to, mo, _, la = timed(lambda w=w: transposable_mask(w, 2, 4), repeat=3)
        absw = w.abs().double()
        ka, ko = float((absw * ma).sum()), float((absw * mo).sum())
        print(f"| {s}² | {ta:.3f} | {to:.3f} | {to / ta:.2f}× | {'yes' if abs(ka - ko) <= 1e-9 * ko else f'{ko / ka:.6f}'} "
              f"| {lb:.1f}→{la:.1f} |", flush=True)
        for label, t, k in (("apex m4n2_2d_best (baseline)", ta, ka), ("optimal", to, ko)):
            rows.append(dict(table="apex", weight="gaussian", size=s, pattern="2:4-T", method=label,
                             seconds=round(t, 4), kept=k, gap_pct=round((1 - k / ko) * 100, 5),
                             load_before=round(lb, 2), load_after=round(la, 2), threads=threads, when=when))
    print(f"\nload avg at the end {os.getloadavg()}")
    if not quick:
        CSV.parent.mkdir(parents=True, exist_ok=True)
        with CSV.open("w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=FIELDS)
            out.writeheader()
            out.writerows(rows)
        print(f"wrote {CSV.relative_to(ROOT)} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
