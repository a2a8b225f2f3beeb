"""NNSTD at the paper's scale: two 784-H-H-10 SET networks (H = 100,000), on the sparse exact path (CPU).

Topologies only (nothing is trained): Erdős–Rényi masks with SET's density ``ε (n_in + n_out) / (n_in · n_out)``,
ε = 20, drawn with :func:`workbench.topology.erdos_renyi_density` and :func:`~workbench.topology.random_empty_keys`
(SET's own initializer), seeded, synthetic. Two pairs:

* ``independent``: two networks from different seeds (what comparing two SET runs from scratch gives at init);
* ``related``: the second network is the first after one SET step (30 % of each layer's connections removed at random
  — untrained weights, so "closest to zero" is a random choice — and as many regrown at random), with its hidden
  neurons shuffled, so the distance is far from 1 and only the matching can find the correspondence.

The dense path (n × n Hungarian: time ∝ n³, memory ∝ n²) is measured on the same kind of networks at a few smaller H,
and projected to H by fitting ``seconds = c · n³`` and ``bytes = c' · n²`` on the largest measured size; the sparse path
is measured at those sizes too (and must give the same distances). Every configuration runs in its own process, so the
peak resident memory (``ru_maxrss``) is its own; ``cpu_seconds`` is the process's CPU time (all threads), less
sensitive than wall time to a shared machine's load (``base_gib``: the peak before the call, the networks and
imports; the projection scales the dense path's increment over it). Results: ``data/results/nnstd_scale.csv``.

    python benchmarks/topology_scale_nnstd.py [--hidden 100000] [--dense-sizes 500 1000 2000]

(it takes ``/tmp/wb-bench.lock`` itself, so that benchmarks do not overlap).
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "results" / "nnstd_scale.csv"
FIELDS = ["pair", "hidden", "path", "measured", "seconds", "cpu_seconds", "peak_gib", "base_gib", "mean_distance", "layer_distances",
          "tie_classes", "load_avg"]


def er_mask(n_in: int, n_out: int, rng: np.random.Generator) -> sp.csr_matrix:
    """SET's Erdős–Rényi initial topology (ε = 20) as a boolean out × in mask."""
    from workbench.topology import erdos_renyi_density, random_empty_keys

    nnz = max(1, int(round(erdos_renyi_density(n_in, n_out, 20.0) * n_in * n_out)))
    keys = random_empty_keys(n_in, n_out, nnz, np.empty(0, np.int64), rng)
    return sp.csr_matrix((np.ones(keys.size, bool), (keys // n_in, keys % n_in)), shape=(n_out, n_in))


def set_step(mask: sp.csr_matrix, rng: np.random.Generator, zeta: float = 0.3) -> sp.csr_matrix:
    """One SET prune/regrow step on an untrained topology: drop a random ``zeta`` of the connections, regrow as many
    at random empty positions."""
    from workbench.topology import random_empty_keys

    n_out, n_in = mask.shape
    c = mask.tocoo()
    keep = rng.random(c.nnz) >= zeta
    occ = np.sort(c.row[keep].astype(np.int64) * n_in + c.col[keep])
    new = random_empty_keys(n_in, n_out, int((~keep).sum()), occ, rng)
    keys = np.concatenate([occ, new])
    return sp.csr_matrix((np.ones(keys.size, bool), (keys // n_in, keys % n_in)), shape=mask.shape)


def networks(pair: str, hidden: int, seed: int = 0) -> tuple[list, list]:
    sizes = [784, hidden, hidden, 10]
    rng = np.random.default_rng(seed)
    a = [er_mask(i, o, rng) for i, o in zip(sizes[:-1], sizes[1:])]
    if pair == "independent":
        b = [er_mask(i, o, rng) for i, o in zip(sizes[:-1], sizes[1:])]
    else:
        b = [set_step(m, rng) for m in a]
        for k in range(len(b) - 1):  # shuffle the hidden neurons
            p = rng.permutation(b[k].shape[0])
            b[k] = b[k][p]
            b[k + 1] = b[k + 1][:, p]
    return a, b


def one(pair: str, hidden: int, path: str) -> dict:
    """Run one configuration (in this process) and return its row."""
    from workbench.topology import nnstd

    a, b = networks(pair, hidden)
    if path == "sparse":  # compile the scans outside the timing (numba caches them on disk anyway)
        nnstd(*networks(pair, 50), path="sparse")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    t0, c0 = time.perf_counter(), time.process_time()
    r = nnstd(a, b, path=path)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    return dict(pair=pair, hidden=hidden, path=path, measured=True, seconds=round(sec, 3),
                cpu_seconds=round(cpu, 3), peak_gib=round(peak, 3),
                base_gib=round(base, 3), mean_distance=r.mean, layer_distances=" ".join(f"{d:.6f}" for d in r.distances),
                tie_classes=" ".join(str(x) for x in r.layers["tie_classes"]),
                load_avg=" ".join(f"{x:.2f}" for x in os.getloadavg()))


def run_child(pair: str, hidden: int, path: str, timeout: float) -> dict | None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--one", pair, str(hidden), path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        print(f"  {pair} H={hidden} {path}: over {timeout:.0f} s, stopped", flush=True)
        return None
    row = json.loads(out.strip().splitlines()[-1])
    print(f"  {pair} H={hidden} {path}: {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} s CPU), peak {row['peak_gib']:.2f} GiB, "
          f"NNSTD {row['mean_distance']:.4f} ({row['layer_distances']}), load {row['load_avg']}", flush=True)
    return row


def write(path: Path, rows: list[dict]) -> None:
    """The rows so far (written after every configuration, so that a stopped run leaves what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=100_000)
    ap.add_argument("--dense-sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--pairs", nargs="+", default=["related", "independent"])
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--one", nargs=3, metavar=("PAIR", "HIDDEN", "PATH"))
    ap.add_argument("--no-lock", action="store_true", help="a quick check only: figures not for RESULTS.md")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return
    with open("/tmp/wb-bench.lock", "a") as lock:
        if not args.no_lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        print(f"{platform.machine()}, {os.cpu_count()} cores, load avg {os.getloadavg()}", flush=True)
        rows = []
        for pair in args.pairs:
            for h in args.dense_sizes:
                d = run_child(pair, h, "dense", args.timeout)
                s = run_child(pair, h, "sparse", args.timeout)
                if d and s and d["layer_distances"] != s["layer_distances"]:
                    raise SystemExit(f"dense and sparse differ at H={h}: {d['layer_distances']} vs "
                                     f"{s['layer_distances']}")
                rows += [x for x in (d, s) if x]
                write(args.out, rows)
            big = run_child(pair, args.hidden, "sparse", args.timeout)
            if big:
                rows.append(big)
            # the dense path projected from its largest measured size: time ∝ n³, memory ∝ n² (per layer, two
            # hidden layers of n neurons dominate)
            dense = [r for r in rows if r["pair"] == pair and r["path"] == "dense"]
            if dense:
                ref = max(dense, key=lambda r: r["hidden"])
                f = args.hidden / ref["hidden"]
                rows.append(dict(pair=pair, hidden=args.hidden, path="dense", measured=False,
                                 seconds=round(ref["seconds"] * f ** 3, 1),
                                 cpu_seconds=round(ref["cpu_seconds"] * f ** 3, 1),
                                 peak_gib=round((ref["peak_gib"] - ref["base_gib"]) * f ** 2, 1), base_gib="",
                                 mean_distance="", layer_distances="", tie_classes="",
                                 load_avg=f"projected from H={ref['hidden']}"))
            write(args.out, rows)
        print(f"load avg at the end {os.getloadavg()}", flush=True)
    print(f"wrote {args.out}")
    print("| pair | H | path | measured | seconds | CPU seconds | peak GiB | mean NNSTD | per layer | load avg |")
    print("|---|---:|---|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        md = f"{r['mean_distance']:.4f}" if r["mean_distance"] != "" else ""
        print(f"| {r['pair']} | {r['hidden']:,} | {r['path']} | {'yes' if r['measured'] else 'projected'} | "
              f"{r['seconds']:,} | {r['cpu_seconds']:,} | {r['peak_gib']} | {md} | {r['layer_distances']} | {r['load_avg']} |")


if __name__ == "__main__":
    main()
