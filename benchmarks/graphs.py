"""Benchmark of the graph lab (CPU): dense vs thresholded DCNN diffusion from 10³ to 10⁶ nodes.

Synthetic stochastic block models (``make_sbm(n)``: 4 blocks, expected degree 10, mixing 0.3, 16 Gaussian features,
seed 0). For each N and form (dense reference, thresholded at ε) a separate process builds the graph, computes the
diffusion features ``P⁰X … P^H X`` and trains the DCNN with the project's ``train`` loop on ``splits`` stratified
half/half splits (batch 256, lr 0.1, at least 400 updates; torch on one thread). Reported per run: diffusion time,
stored kernel bytes, tracemalloc peak during the diffusion, the process's peak resident memory (``ru_maxrss``:
Python, torch, the graph, the features and training included), test accuracy mean ± std and training time. Label
propagation and logistic regression on the features run in the thresholded process as reference accuracies.

A dense run is refused, without allocating, when its estimate exceeds the memory available (the lab's
``MemoryBudgetError``); sizes above ``--dense-max`` are not run because the O(N³) dense products take too long on a
shared 2-core machine (their memory estimate is printed). Ratios are dense / thresholded in the same run.

    flock /tmp/wb-bench.lock python benchmarks/graphs.py [--sizes 1000 3000 10000 100000 1000000] [--hops 2]
        [--threshold 0.005] [--dense-max 10000] [--splits 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def one(n: int, form: str, hops: int, threshold: float, splits: int, seed: int) -> dict:

    import torch

    torch.set_num_threads(1)  # tiny per-step ops: threads only contend on a shared machine (BLAS keeps its own)
    from workbench.errors import MemoryBudgetError
    from workbench.graphs import DCNN, accuracy_table, make_sbm, node_classification
    from workbench.graphs.diffusion import dense_bytes_estimate

    t0 = time.perf_counter()
    g = make_sbm(n, seed=seed)
    t_graph = time.perf_counter() - t0
    t = None if form == "dense" else threshold
    model = DCNN(hops, g.x.shape[1], g.n_classes, threshold=t)
    row = {"n": n, "edges": g.n_edges, "form": form, "hops": hops, "threshold": t, "seconds_build": t_graph,
           "estimate_bytes": dense_bytes_estimate(n, hops, g.x.shape[1]) if form == "dense" else None}
    try:
        z = model.diffuse(g)
    except MemoryBudgetError as e:
        row.update(refused=True, message=str(e), maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return row
    mem = dict(model.memory)
    n_train = n // 2
    batch = 256
    epochs = max(2.0, 400 * batch / n_train)
    methods = ["dcnn"] + (["label_propagation", "logistic"] if form == "thresholded" else [])
    t0 = time.perf_counter()
    df = node_classification(g, method=methods, hops=hops, threshold=t, splits=splits, epochs=epochs,
                             batch_size=batch, lr=0.1, seed=seed, diffusion=(z, mem))
    acc = accuracy_table(df).set_index("method")
    row.update(refused=False, seconds_diffuse=mem["seconds"], kernel_bytes=mem["kernel_bytes"],
               peak_bytes=mem["peak_bytes"], nnz=mem["nnz"], accuracy=float(acc.loc["dcnn", "accuracy"]),
               accuracy_std=float(acc.loc["dcnn", "accuracy_std"]),
               seconds_train=float(df[df.method == "dcnn"].seconds_train.mean()), epochs=epochs,
               seconds_classify=time.perf_counter() - t0,
               maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    for m in methods[1:]:
        row[f"accuracy_{m}"] = float(acc.loc[m, "accuracy"])
    del z, df
    return row


def gib(b) -> str:
    return "–" if b is None else f"{b / 2**30:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 100000, 1000000])
    ap.add_argument("--hops", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.005)
    ap.add_argument("--dense-max", type=int, default=10000)
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", nargs=2, metavar=("N", "FORM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.hops, args.threshold, args.splits, args.seed)))
        return

    from workbench.graphs.diffusion import available_memory, dense_bytes_estimate

    load = os.getloadavg()
    print(f"# graphs benchmark: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, available {available_memory() / 2**30:.1f} GiB",
          file=sys.stderr)
    rows = []
    for n in args.sizes:
        for form in ("dense", "thresholded"):
            if form == "dense" and n > args.dense_max:
                est = dense_bytes_estimate(n, args.hops, 16)
                rows.append({"n": n, "form": form, "refused": True, "estimate_bytes": est,
                             "message": ("refused: estimate above the memory available" if est > available_memory()
                                         else f"not run: fits in memory but the O(N³) products exceed the time "
                                              f"budget (N > --dense-max {args.dense_max})")})
                print(f"N={n} dense: {rows[-1]['message']} (estimate {gib(est)} GiB)", file=sys.stderr)
                continue
            cmd = [sys.executable, __file__, "--one", str(n), form, "--hops", str(args.hops), "--threshold",
                   str(args.threshold), "--splits", str(args.splits), "--seed", str(args.seed)]
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"N={n} {form} failed")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["wall"] = time.perf_counter() - t0
            rows.append(row)
            print(f"N={n} {form}: {json.dumps(row)}", file=sys.stderr)
    by = {(r["n"], r["form"]): r for r in rows}
    print(f"hops H={args.hops}, threshold ε={args.threshold:g}, synthetic SBM (4 blocks, degree 10, 16 features), "
          f"{args.splits} splits; load avg {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print()
    print("| N | form | diffusion s | kernel GiB | tracemalloc peak GiB | process max RSS GiB | DCNN accuracy | "
          "train s/split | memory ratio dense/thr | time ratio dense/thr | LP acc | logistic acc |")
    print("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        d, t = by.get((n, "dense")), by.get((n, "thresholded"))
        for r in (d, t):
            if r is None:
                continue
            if r.get("refused"):
                short = ("refused: estimate above the memory available" if r["message"].startswith("refused")
                         else "not run: O(N³) time (fits in memory)")
                print(f"| {n:,} | {r['form']} | – | est. {gib(r['estimate_bytes'])} | – | – | {short} | – | – | – | "
                      f"– | – |")
                continue
            ratio_m = ratio_t = "–"
            if r["form"] == "thresholded" and d is not None:
                dk = d.get("kernel_bytes") or d.get("estimate_bytes")
                ratio_m = f"{dk / r['kernel_bytes']:.0f}×" + ("" if d.get("kernel_bytes") else " (est.)")
                if d.get("seconds_diffuse"):
                    ratio_t = f"{d['seconds_diffuse'] / r['seconds_diffuse']:.0f}×"
            print(f"| {n:,} | {r['form']} | {r['seconds_diffuse']:.3g} | {gib(r['kernel_bytes'])} | "
                  f"{gib(r['peak_bytes'])} | {gib(r['maxrss'])} | {r['accuracy']:.1%} ± {r['accuracy_std']:.1%} | "
                  f"{r['seconds_train']:.3g} | {ratio_m} | {ratio_t} | "
                  f"{r.get('accuracy_label_propagation', float('nan')):.1%} | "
                  f"{r.get('accuracy_logistic', float('nan')):.1%} |".replace("nan%", "–"))


if __name__ == "__main__":
    main()
