"""SET at the papers' scale and SET's thread choice (issue 22, CPU).

1. ``--part scale``: SET on a 784-H-10 truly sparse MLP (ε = 20, ζ = 0.3, All-ReLU, batch 32, SGD momentum 0.9) on the
   digits upscaled to 28×28 = 784 features (scikit-learn's 8×8 digits, bilinear, ``align_corners=False``: the
   same 1,437 / 360 split, no new information, only a paper-sized input layer). H = 1,000,000 for the headline
   run (full training set, a few epochs, each timed) and H = 10k / 30k / 100k / 300k for the memory series (two
   epochs on 512 training samples, so one prune/regrow step runs). Each configuration runs in its own process so
   its peak resident memory (``ru_maxrss``) is its own; "above start" subtracts the process's peak after imports
   and data. Memory ∝ connections shows as a constant bytes-per-connection along the series.
2. ``--part threads``: one SET epoch (training + prune/regrow step) of 784-H-H-10 at H = 1k / 10k / 100k on 256
   synthetic samples (batch 32; the configuration of ``benchmarks/topology.py``), with the thread count
   ``train_set(threads="auto")`` chooses (:func:`workbench.topology.set_training.choose_threads`, its probe timed
   inside the epoch) against 1 and 2 threads forced; after one untimed full epoch per thread count, repetitions
   (an even number, at least ``--reps``, up to 26 for short epochs) interleaved on one model as 2, auto, 1 and 2, 1,
   auto alternately, so that "auto" and "1" follow a two-thread epoch equally often, with a 0.5 s pause after each
   (OpenMP's worker keeps spinning a while after a two-thread epoch), medians.
3. ``--part reference``: the same epoch at H = 10,000 run by Mocanu's reference algorithm
   (``SET-MLP-Sparse-Python-Data-Structures/set_mlp_sparse_data_structures.py``: scipy CSR float64 forward and input
   gradient, the per-connection weight-gradient loop of its Cython ``backpropagation_updates_Cython`` compiled here
   with numba instead of Cython, the sparse momentum update, ``weightsEvolution_Amar`` with its row-pair membership
   test on int64 keys) on the identical inputs and initial topology, against ``train_set``'s epoch with the automatic
   thread choice. The reference computes in float64 with ReLU, a sigmoid output and MSE as its script does; ours in
   float32 with All-ReLU and cross-entropy (the loss is a negligible part of the time).

Results go to ``data/results/set_scale.csv`` (one row per measured configuration, column ``part``) and a markdown
table to stdout.

    flock /tmp/wb-bench.lock python benchmarks/topology_scale_set.py --part scale threads reference
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "data" / "results" / "set_scale.csv"


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def digits784():
    """The digits split with every 8×8 image bilinearly upscaled to 28×28 (784 features)."""
    import torch.nn.functional as F

    from workbench.data import digits_split

    s = digits_split()

    def up(x):
        return F.interpolate(x.reshape(-1, 1, 8, 8), size=(28, 28), mode="bilinear",
                             align_corners=False).reshape(-1, 784).contiguous()

    return SimpleNamespace(x_train=up(s.x_train), y_train=s.y_train, x_test=up(s.x_test), y_test=s.y_test)


# ------------------------------------------------------------------------------------------------ 1. scale
def run_scale(hidden: int, epochs: int, samples: int) -> dict:
    """One SET run of 784-hidden-10 in this process; per-epoch rows and the peak memory."""
    from workbench.topology import Topology, train_set
    from workbench.topology.sparse_layers import set_memory_estimate

    data = digits784()
    if samples < len(data.x_train):
        data.x_train, data.y_train = data.x_train[:samples].clone(), data.y_train[:samples].clone()
    sizes = (784, hidden, 10)
    base = maxrss()
    t0 = time.perf_counter()
    run = train_set(sizes, epochs=epochs, epsilon=20, zeta=0.3, batch_size=32, data=data, seed=0,
                    progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    peak = maxrss()
    assert all(isinstance(t, Topology) for t in run.snapshots) and len(run.snapshots) == epochs + 1
    est = set_memory_estimate(sizes, 20, 32, snapshots=epochs + 1)
    return dict(hidden=hidden, epochs=epochs, samples=len(data.x_train), connections=run.model.n_connections,
                history=run.history.to_dict("records"), wall_s=wall, peak_bytes=peak, base_bytes=base,
                estimate_bytes=est["total"], snapshot_connections=int(run.snapshots[-1].masks[0].nnz))


def bench_scale(series, big: int, big_epochs: int, timeout: int) -> list[dict]:
    rows = []
    configs = [(h, 2, 512) for h in series] + ([(big, big_epochs, 10**9)] if big else [])
    for h, ep, n in configs:
        t0 = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, __file__, "--one-scale", str(h), str(ep), str(n)],
                                 capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            print(f"  H={h}: no result within {timeout} s", file=sys.stderr, flush=True)
            rows.append(dict(part="scale", hidden=h, status=f"timeout after {timeout} s"))
            continue
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        above = rec["peak_bytes"] - rec["base_bytes"]
        for r in rec["history"]:
            rows.append(dict(part="scale", hidden=h, sizes=f"784-{h}-10", samples=rec["samples"],
                             connections=rec["connections"], epoch=r["epoch"], train_s=r["seconds"],
                             evolve_s=r["evolve_seconds"], threads=r["threads"], test_accuracy=r["test_accuracy"],
                             train_loss=r["train_loss"], peak_rss_gib=rec["peak_bytes"] / 2**30,
                             above_start_gib=above / 2**30, bytes_per_connection=above / rec["connections"],
                             estimate_gib=rec["estimate_bytes"] / 2**30, run_wall_s=rec["wall_s"],
                             status="ok", load=load()))
        print(f"  H={h}: {rec['connections']:,} connections, {time.perf_counter() - t0:.0f} s, peak "
              f"{rec['peak_bytes'] / 2**30:.2f} GiB ({above / rec['connections']:.0f} B/connection above start), "
              f"accuracy {[round(r['test_accuracy'], 3) for r in rec['history']]}", file=sys.stderr, flush=True)
    return rows


def scale_table(rows: list[dict]) -> list[str]:
    df = pd.DataFrame([r for r in rows if r.get("status") == "ok"])
    lines = ["### SET 784-H-10 on digits upscaled to 28×28 (784 features), ε = 20, ζ = 0.3, batch 32", "",
             "| hidden H | connections | training samples | epoch | train s | prune/regrow s | threads | "
             "test accuracy | peak RSS GiB | above start GiB | bytes / connection | estimate GiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in df.itertuples():
        lines.append(f"| {r.hidden:,} | {r.connections:,} | {r.samples:,} | {r.epoch} | {r.train_s:.1f} | "
                     f"{r.evolve_s:.1f} | {r.threads} | {r.test_accuracy:.3f} | {r.peak_rss_gib:.2f} | "
                     f"{r.above_start_gib:.2f} | {r.bytes_per_connection:.0f} | {r.estimate_gib:.2f} |")
    for r in rows:
        if r.get("status", "ok") != "ok":
            lines.append(f"| {r['hidden']:,} | – | – | – | {r['status']} | – | – | – | – | – | – | – |")
    return lines + [""]


# ---------------------------------------------------------------------------------------------- 2. threads
def synthetic(samples: int = 256, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 784, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    return x, y


def epoch_once(model, opt, x, y, batch: int, rng, threads) -> tuple[float, int]:
    """One SET epoch as ``train_set`` runs it (thread choice, batches, prune/regrow step); seconds and threads."""
    import torch

    from workbench.topology.set_training import _threads, choose_threads, set_prune_regrow

    loss_fn = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    n = choose_threads(model.n_connections, batch) if threads == "auto" else threads
    with _threads(n):
        for i in range(0, len(x), batch):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[i:i + batch]), y[i:i + batch]).backward()
            opt.step()
        for layer in model.layers:
            set_prune_regrow(layer, 0.3, rng, 0.1, opt)
    return time.perf_counter() - t0, n


def run_threads(hidden: int, reps: int, batch: int = 32) -> dict:
    import torch

    from workbench.topology import SparseMLP

    x, y = synthetic()
    model = SparseMLP([784, hidden, hidden, 10], epsilon=20, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    rng = np.random.default_rng(0)
    epoch_once(model, opt, x[:batch], y[:batch], batch, rng, 1)  # warm-up (first-call set-up), not timed
    times: dict[str, list[float]] = {"auto": [], "1": [], "2": []}
    chosen = []
    reps = max(reps, min(25, int(1e7 // model.n_connections)))  # short epochs: more repetitions against the noise
    reps += reps % 2
    for mode in (1, 2, 1):  # one full untimed epoch each first: page faults of the first full-size epoch
        epoch_once(model, opt, x, y, batch, rng, mode)
        time.sleep(0.5)
    for r in range(reps):
        # two threads first, then the one-thread modes in alternating order: "auto" and "1" each follow the
        # two-thread epoch equally often (its after-effects: OpenMP spinning, the worker's malloc arena)
        for mode in ((2, "auto", 1) if r % 2 == 0 else (2, 1, "auto")):
            s, n = epoch_once(model, opt, x, y, batch, rng, mode)
            time.sleep(0.5)  # let OpenMP's idle worker stop spinning, so no epoch pays for the one before it
            times[str(mode)].append(s)
            if mode == "auto":
                chosen.append(n)
    return dict(hidden=hidden, connections=model.n_connections, times=times, chosen=chosen, load=load(), reps=reps)


def bench_threads(hiddens, reps: int) -> list[dict]:
    rows = []
    for h in hiddens:
        out = subprocess.run([sys.executable, __file__, "--one-threads", str(h), str(reps)], capture_output=True,
                             text=True, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        med = {k: statistics.median(v) for k, v in rec["times"].items()}
        best = min(med["1"], med["2"])
        rows.append(dict(part="threads", hidden=h, sizes=f"784-{h}-{h}-10", samples=256,
                         connections=rec["connections"], auto_s=med["auto"], one_thread_s=med["1"],
                         two_threads_s=med["2"], auto_over_best=med["auto"] / best,
                         chosen=",".join(str(c) for c in sorted(set(rec["chosen"]))), reps=rec["reps"],
                         all_times=json.dumps(rec["times"]), status="ok", load=rec["load"]))
        print(f"  threads H={h}: auto {med['auto']:.3f} s ({rec['chosen']}), 1: {med['1']:.3f} s, "
              f"2: {med['2']:.3f} s, auto/best {med['auto'] / best:.2f}; load {rec['load']}", file=sys.stderr,
              flush=True)
    return rows


def threads_table(rows: list[dict]) -> list[str]:
    lines = ["### SET epoch time and the thread choice: 784-H-H-10, 256 synthetic samples, batch 32, one epoch + "
             "prune/regrow (medians of interleaved repetitions)", "",
             "| hidden H | connections | auto s (threads chosen) | 1 thread s | 2 threads s | 2 threads / 1 thread | "
             "auto / faster | within 10 %? | load avg (1/5/15 min) |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['hidden']:,} | {r['connections']:,} | {r['auto_s']:.3f} ({r['chosen']}) | "
                     f"{r['one_thread_s']:.3f} | {r['two_threads_s']:.3f} | "
                     f"{r['two_threads_s'] / r['one_thread_s']:.2f} | {r['auto_over_best']:.2f} | "
                     f"{'yes' if r['auto_over_best'] <= 1.10 else 'no'} | {r['load']} |")
    return lines + [""]


# -------------------------------------------------------------------------------------------- 3. reference
def _ref_kernel():
    import numba

    @numba.njit(cache=False)
    def backpropagation_updates(a, delta, rows, cols, out):  # the reference's Cython loop, line for line
        for i in range(out.shape[0]):
            s = 0.0
            for j in range(a.shape[0]):
                s += a[j, rows[i]] * delta[j, cols[i]]
            out[i] = s / a.shape[0]

    return backpropagation_updates


class ReferenceSETMLP:
    """Mocanu's SET-MLP (scipy sparse data structures) for one epoch: ReLU hidden layers, sigmoid output with MSE as in
    the reference script; weights ``n_in × n_out`` CSR float64 taken from a :class:`SparseMLP`'s connections."""

    def __init__(self, model, kernel, zeta: float = 0.3, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 2e-4) -> None:
        from scipy.sparse import coo_matrix

        self.kernel, self.zeta, self.lr, self.momentum, self.wd = kernel, zeta, lr, momentum, weight_decay
        self.dims = model.sizes
        self.w, self.b, self.pdw, self.pdd = {}, {}, {}, {}
        for i, layer in enumerate(model.layers, start=1):
            keys, vals = layer.connection_keys(), layer.connection_values().astype(np.float64)
            self.w[i] = coo_matrix((vals, (keys % layer.in_features, keys // layer.in_features)),
                                   shape=(layer.in_features, layer.out_features)).tocsr()
            self.b[i] = np.zeros(layer.out_features)
        self.n_layers = len(self.dims)

    def _forward(self, x):
        z, a = {}, {1: x}
        for i in range(1, self.n_layers):
            z[i + 1] = a[i] @ self.w[i] + self.b[i]
            if i + 1 < self.n_layers:
                zz = z[i + 1]
                zz[zz < 0] = 0  # Relu.activation works in place: z and a are one array, as in the reference
                a[i + 1] = zz
            else:
                a[i + 1] = 1 / (1 + np.exp(-z[i + 1]))
        return z, a

    def _backprop(self, z, a, y):
        from scipy.sparse import coo_matrix

        s = a[self.n_layers]
        delta = (s - y) * (1 / (1 + np.exp(-s))) * (1 - 1 / (1 + np.exp(-s)))  # MSE.delta with Sigmoid.prime(a)
        dw = coo_matrix(self.w[self.n_layers - 1])
        self.kernel(a[self.n_layers - 1], delta, dw.row, dw.col, dw.data)
        updates = {self.n_layers - 1: (dw.tocsr(), delta)}
        for i in reversed(range(2, self.n_layers)):
            prime = z[i].copy()
            prime[prime < 0] = 0
            prime[prime > 0] = 1
            delta = (delta @ self.w[i].transpose()) * prime
            dw = coo_matrix(self.w[i - 1])
            self.kernel(a[i - 1], delta, dw.row, dw.col, dw.data)
            updates[i - 1] = (dw.tocsr(), delta)
        for k, (dw, delta) in updates.items():
            if k not in self.pdw:
                self.pdw[k] = -self.lr * dw
                self.pdd[k] = -self.lr * np.mean(delta, 0)
            else:
                self.pdw[k] = self.momentum * self.pdw[k] - self.lr * dw
                self.pdd[k] = self.momentum * self.pdd[k] - self.lr * np.mean(delta, 0)
            self.w[k] += self.pdw[k] - self.wd * self.w[k]
            self.b[k] += self.pdd[k] - self.wd * self.b[k]

    def evolve(self):
        """weightsEvolution_Amar. Its ``array_intersect`` (row-pair membership through a structured-dtype view and
        ``np.in1d``, removed from numpy 2) is computed here on int64 keys ``row · n_cols + col`` with ``np.isin``:
        the same answer, and much faster than numpy 2's structured sort, so the reference is not handicapped."""
        from scipy.sparse import coo_matrix

        def intersect(a, b):
            return np.isin(a[:, 0].astype(np.int64) * 2**32 + a[:, 1], b[:, 0].astype(np.int64) * 2**32 + b[:, 1])

        for i in range(1, self.n_layers):
            wcoo = self.w[i].tocoo()
            vals_w, rows_w, cols_w = wcoo.data, wcoo.row, wcoo.col
            pdcoo = self.pdw[i].tocoo()
            vals_pd, rows_pd, cols_pd = pdcoo.data, pdcoo.row, pdcoo.col
            values = np.sort(self.w[i].data)
            first_zero = np.abs(values).argmin()
            last_zero = values.shape[0] - np.abs(values)[::-1].argmin()
            largest_neg = values[int((1 - self.zeta) * first_zero)]
            smallest_pos = values[int(min(values.shape[0] - 1, last_zero + self.zeta * (values.shape[0] - last_zero)))]
            keep = (vals_w > smallest_pos) | (vals_w < largest_neg)
            vals_new, rows_new, cols_new = vals_w[keep], rows_w[keep], cols_w[keep]
            flag = intersect(np.stack((rows_pd, cols_pd), axis=-1), np.stack((rows_new, cols_new), axis=-1))
            self.pdw[i] = coo_matrix((vals_pd[flag], (rows_pd[flag], cols_pd[flag])),
                                     (self.dims[i - 1], self.dims[i])).tocsr()
            length = vals_w.shape[0] - rows_new.size
            random_vals = np.random.randn(length) / 10
            while length > 0:
                ik = np.random.randint(0, self.dims[i - 1], size=length, dtype="int32")
                jk = np.random.randint(0, self.dims[i], size=length, dtype="int32")
                cand = np.unique(np.stack((ik, jk), axis=-1), axis=0)
                old = np.stack((rows_new, cols_new), axis=-1).astype(np.int32)
                fresh = ~intersect(cand, old)
                rows_new = np.append(rows_new, cand[fresh][:, 0])
                cols_new = np.append(cols_new, cand[fresh][:, 1])
                length = vals_w.shape[0] - rows_new.size
            vals_new = np.append(vals_new, random_vals)
            self.w[i] = coo_matrix((vals_new, (rows_new, cols_new)), (self.dims[i - 1], self.dims[i])).tocsr()

    def epoch(self, x, y, batch: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        for j in range(x.shape[0] // batch):
            z, a = self._forward(x[j * batch:(j + 1) * batch])
            self._backprop(z, a, y[j * batch:(j + 1) * batch])
        t1 = time.perf_counter()
        self.evolve()
        return t1 - t0, time.perf_counter() - t1


def run_reference(hidden: int, reps: int, batch: int = 32) -> dict:
    import torch

    from workbench.topology import SparseMLP

    x, y = synthetic()
    model = SparseMLP([784, hidden, hidden, 10], epsilon=20, seed=0)
    kernel = _ref_kernel()
    np.random.seed(0)
    ref = ReferenceSETMLP(model, kernel)
    xd, yd = x.numpy().astype(np.float64), np.eye(10)[y.numpy()]
    ref.epoch(xd[:batch], yd[:batch], batch)  # warm-up: numba compilation and first calls, not timed
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    rng = np.random.default_rng(0)
    epoch_once(model, opt, x[:batch], y[:batch], batch, rng, 1)
    ours, theirs, their_train, chosen = [], [], [], []
    for _ in range(reps):
        tr, ev = ref.epoch(xd, yd, batch)
        theirs.append(tr + ev)
        their_train.append(tr)
        time.sleep(0.5)
        s, n = epoch_once(model, opt, x, y, batch, rng, "auto")
        time.sleep(0.5)
        ours.append(s)
        chosen.append(n)
    return dict(hidden=hidden, connections=model.n_connections, ours=ours, reference=theirs,
                reference_train=their_train, chosen=chosen, load=load())


def bench_reference(hidden: int, reps: int) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, "--one-reference", str(hidden), str(reps)], capture_output=True,
                         text=True, check=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    o, t = statistics.median(rec["ours"]), statistics.median(rec["reference"])
    t_train = statistics.median(rec["reference_train"])
    print(f"  reference H={hidden}: ours {o:.3f} s, reference {t:.3f} s, ours / reference {o / t:.2f}",
          file=sys.stderr, flush=True)
    return [dict(part="reference", hidden=hidden, sizes=f"784-{hidden}-{hidden}-10", samples=256,
                 connections=rec["connections"], auto_s=o, reference_s=t, reference_train_s=t_train,
                 reference_evolve_s=t - t_train, ours_over_reference=o / t,
                 chosen=",".join(str(c) for c in rec["chosen"]), reps=reps,
                 all_times=json.dumps(dict(ours=rec["ours"], reference=rec["reference"])), status="ok",
                 load=rec["load"])]


def reference_table(rows: list[dict]) -> list[str]:
    lines = ["### SET epoch against the reference algorithm (Mocanu's scipy-sparse SET-MLP, weight-gradient loop "
             "compiled with numba), identical inputs and initial topology, 784-H-H-10, 256 synthetic samples, "
             "batch 32", "",
             "| hidden H | connections | train_set epoch s (threads chosen) | reference epoch s (training + "
             "evolution) | ours / reference | load avg |", "|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['hidden']:,} | {r['connections']:,} | {r['auto_s']:.3f} ({r['chosen']}) | "
                     f"{r['reference_s']:.3f} ({r['reference_train_s']:.3f} + {r['reference_evolve_s']:.3f}) | "
                     f"{r['ours_over_reference']:.2f} | {r['load']} |")
    return lines + [""]


# ------------------------------------------------------------------------------------------------------ main
def save(rows: list[dict]) -> None:
    """Replace this run's (part, hidden size) rows in data/results/set_scale.csv (other rows are kept)."""
    new = pd.DataFrame(rows)
    if RESULTS.exists():
        old = pd.read_csv(RESULTS)
        measured = set(zip(new.part, new.hidden))
        old = old[[(p, h) not in measured for p, h in zip(old.part, old.hidden)]]
        new = pd.concat([old, new], ignore_index=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(RESULTS, index=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", nargs="+", default=["scale", "threads", "reference"],
                   choices=["scale", "threads", "reference"])
    p.add_argument("--series", type=int, nargs="*", default=[10_000, 30_000, 100_000, 300_000])
    p.add_argument("--big", type=int, default=1_000_000, help="hidden neurons of the headline run (0: none)")
    p.add_argument("--big-epochs", type=int, default=3)
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per scale run")
    p.add_argument("--thread-sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--reference-size", type=int, default=10_000)
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--one-scale", nargs=3, type=int, help=argparse.SUPPRESS)
    p.add_argument("--one-threads", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--one-reference", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one_scale:
        print(json.dumps(run_scale(*args.one_scale)))
        return
    if args.one_threads:
        print(json.dumps(run_threads(*args.one_threads)))
        return
    if args.one_reference:
        print(json.dumps(run_reference(*args.one_reference)))
        return
    import torch

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); load average at start {load()}\n")
    rows: list[dict] = []
    lines: list[str] = []
    if "threads" in args.part:
        r = bench_threads(args.thread_sizes, args.reps)
        rows += r
        lines += threads_table(r)
    if "reference" in args.part:
        r = bench_reference(args.reference_size, args.reps)
        rows += r
        lines += reference_table(r)
    if "scale" in args.part:
        r = bench_scale(args.series, args.big, args.big_epochs, args.timeout)
        rows += r
        lines += scale_table(r)
    if not args.no_save:
        save(rows)
    print("\n".join(lines))
    print(f"load average at end {load()}")


if __name__ == "__main__":
    main()
