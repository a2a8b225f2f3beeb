"""Benchmark: SLIDE-style :class:`~workbench.hashing.slide.HashedSparseLinear` against a dense ``nn.Linear`` + full
softmax as the output layer of a synthetic extreme-classification task, at 10k / 100k / 1M outputs (CPU, 2 threads).

Data (synthetic, seeded, generated here): ``n`` classes with unit prototypes ``μ_c ~ N(0, I_d)/‖·‖`` and power-law
label frequencies ``p_c ∝ (c + 1)^-α`` (α = 1); an input is ``μ_y + σ ε/√d`` with ``ε ~ N(0, I_d)``. The model is the
output layer alone (``d`` inputs → ``n`` classes) trained with plain SGD, the same learning rate and batches for both
layers. Per epoch: seconds of training (hashing, retrieval, rebuilds, forward, backward, update: everything but the
evaluation), P@1 on a held-out sample of the same distribution with the exact dense logits (``full_logits``), the
active fraction (mean active neurons / n over the epoch's batches) and the rebuilds. Each (width, layer) runs in its
own process so that its peak resident memory (``ru_maxrss``) is its own. Ratios are against the dense layer measured
in the same run.

    flock /tmp/wb-bench.lock python benchmarks/large_outputs_slide.py [--widths 10000 100000 1000000] [--epochs 3]
        [--train 25600] [--csv data/results/large_outputs_slide.csv]

A width whose dense run would take longer than ``--dense-budget-s`` is trained for ``--dense-steps`` steps only and its
seconds per epoch extrapolated from them (marked ``extrapolated`` in the table); its P@1 is then not comparable.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_xc(n_classes: int, dim: int, n_train: int, n_test: int, alpha: float = 1.0, noise: float = 0.5,
            seed: int = 0):
    """``(x_train, y_train, x_test, y_test)``: the synthetic power-law extreme-classification task described above."""
    import torch

    g = torch.Generator().manual_seed(seed)
    protos = torch.nn.functional.normalize(torch.randn(n_classes, dim, generator=g), dim=1)
    p = torch.arange(1, n_classes + 1, dtype=torch.float64) ** -alpha
    y = torch.multinomial(p / p.sum(), n_train + n_test, replacement=True, generator=g)
    x = protos[y] + noise * torch.randn(n_train + n_test, dim, generator=g) / dim ** 0.5
    del protos
    return x[:n_train].contiguous(), y[:n_train], x[n_train:].contiguous(), y[n_train:]


def p_at_1(logits_fn, x, y) -> float:
    import torch

    n_out = len(logits_fn(x[:1])[0])
    chunk = max(1, min(512, 2 ** 26 // n_out))  # at most 256 MiB of float32 logits at a time

    with torch.no_grad():
        hits = sum(int((logits_fn(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum()) for i in range(0, len(x), chunk))
    return hits / len(x)


def run_one(args: argparse.Namespace) -> dict:
    """Train one layer at one width; print one JSON line per epoch."""
    import numba
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    from workbench.hashing.slide import HashedSparseLinear

    n = args.one_width
    xtr, ytr, xte, yte = make_xc(n, args.dim, args.train, args.test, seed=args.seed)
    torch.manual_seed(args.seed)
    if args.one_method == "dense":
        layer = torch.nn.Linear(args.dim, n)
        loss_fn = lambda h, t: F.cross_entropy(layer(h), t)  # noqa: E731
        logits_fn = layer
    else:
        layer = HashedSparseLinear(args.dim, n, K=args.K, L=args.L, rebuild_every=args.rebuild_every,
                                   seed=args.seed)
        loss_fn, logits_fn = layer.loss, layer.full_logits
    opt = torch.optim.SGD(layer.parameters(), lr=args.lr)
    # warm-up outside the timing: numba's cached kernels load and torch's allocator settles on a small twin layer
    twin = (HashedSparseLinear(args.dim, 1000, K=4, L=4, seed=args.seed) if args.one_method != "dense"
            else torch.nn.Linear(args.dim, 1000))
    twin_loss = twin.loss if args.one_method != "dense" else (lambda h, t: F.cross_entropy(twin(h), t))
    twin_loss(xtr[:args.batch], ytr[:args.batch] % 1000).backward()
    steps_per_epoch = len(xtr) // args.batch
    max_steps = steps_per_epoch
    if args.one_method == "dense" and args.one_max_steps:
        max_steps = min(max_steps, args.one_max_steps)
    rows = []
    gen = torch.Generator().manual_seed(args.seed + 1)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(xtr), generator=gen)
        fracs, t_train = [], 0.0
        layer.train()
        for s in range(max_steps):
            sel = order[s * args.batch:(s + 1) * args.batch]
            h, t = xtr[sel], ytr[sel]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(h, t)
            loss.backward()
            opt.step()
            t_train += time.perf_counter() - t0
            if args.one_method != "dense":
                fracs.append(layer.stats()["active_fraction"])
        sec = t_train * steps_per_epoch / max_steps
        layer.eval()
        # the exact evaluation costs test·n·d products (1 TFLOP at 1M outputs): above 100k, the last epoch only
        last = epoch == args.epochs or max_steps < steps_per_epoch
        acc = p_at_1(logits_fn, xte, yte) if (n <= 100_000 or last) else float("nan")
        row = {"width": n, "method": args.one_method, "epoch": epoch, "sec_per_epoch": sec,
               "ms_per_step": 1e3 * t_train / max_steps, "steps_timed": max_steps,
               "extrapolated": max_steps < steps_per_epoch, "p_at_1": acc,
               "active_fraction": sum(fracs) / len(fracs) if fracs else 1.0,
               "rebuilds": layer.stats()["rebuilds"] if args.one_method != "dense" else 0.0,
               "loss": float(loss.detach()), "K": args.K, "threads": args.threads,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if max_steps < steps_per_epoch:
            break  # an extrapolated dense width: one timed partial epoch is all we measure
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=25_600)
    ap.add_argument("--test", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=10.0)
    ap.add_argument("--K", type=int, default=0, help="hashes per table (0: floor(log2(width)) - 3, at least 6)")
    ap.add_argument("--L", type=int, default=32)
    ap.add_argument("--rebuild-every", type=int, default=100)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                    help="torch and numba threads of both layers; one full pass per setting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dense-budget-s", type=float, default=600.0)
    ap.add_argument("--dense-steps", type=int, default=10)
    ap.add_argument("--csv", default=str(ROOT / "data/results/large_outputs_slide.csv"))
    ap.add_argument("--one-width", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--one-method", default="", help=argparse.SUPPRESS)
    ap.add_argument("--one-max-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_width:
        if not args.K:
            args.K = max(6, args.one_width.bit_length() - 1 - 3)
        args.threads = args.threads[0]
        run_one(args)
        return

    import pandas as pd

    load = os.getloadavg()
    print(f"# large_outputs_slide: {platform.machine()}, {args.threads} threads, load avg at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rows = []
    for threads, n, method in ((t, n, m) for t in args.threads for n in args.widths for m in ("dense", "slide")):
            cmd = [sys.executable, __file__, "--one-width", str(n), "--one-method", method, "--threads", str(threads)]
            for k in ("epochs", "train", "test", "dim", "batch", "lr", "K", "L", "seed"):
                cmd += [f"--{k}", str(getattr(args, k))]
            cmd += ["--rebuild-every", str(args.rebuild_every)]
            # dense cost per step grows ~linearly with n: 1M outputs at 2.7 s/step would take hours; time a few steps
            est = 2.7e-6 * n * args.train / args.batch * args.epochs
            if method == "dense" and est > args.dense_budget_s:
                cmd += ["--one-max-steps", str(args.dense_steps)]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if proc.returncode != 0:
                print(f"# {n} {method} failed:\n{proc.stderr[-2000:]}", flush=True)
                continue
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    r["load_avg_1m"], r["threads"] = os.getloadavg()[0], threads
                    rows.append(r)
                    print(line, flush=True)
            print(f"# {n} {method} {threads} threads: {time.time() - t0:.0f} s wall", flush=True)
            df = pd.DataFrame(rows)  # written after every configuration: a run cut short keeps what it measured
            df["L"], df["rebuild_every"], df["lr"] = args.L, args.rebuild_every, args.lr
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(args.csv, index=False)
    print(summary(df))
    load = os.getloadavg()
    print(f"\nload avg at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def summary(df) -> str:
    """A markdown table: per width, the last epoch of each layer and the ratios against dense."""
    lines = ["| threads | outputs | dense s/epoch | SLIDE s/epoch | speed-up | dense P@1 | SLIDE P@1 | active fraction "
             "(mean over training) | rebuilds | dense peak MiB | SLIDE peak MiB | load avg |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (threads, n), g in df.groupby(["threads", "width"], sort=False):
        d, s = g[g.method == "dense"], g[g.method == "slide"]
        if d.empty or s.empty:
            continue
        dl, sl = d.iloc[-1], s.iloc[-1]
        dsec, ssec = d.sec_per_epoch.mean(), s.sec_per_epoch.mean()
        ext = " (extrapolated from %d steps)" % dl.steps_timed if bool(dl.extrapolated) else ""
        dp = "n/a" if bool(dl.extrapolated) else f"{dl.p_at_1:.3f}"
        lines.append(f"| {threads} | {n:,} | {dsec:.1f}{ext} | {ssec:.1f} | {dsec / ssec:.1f}× | {dp} | "
                     f"{sl.p_at_1:.3f} | "
                     f"{s.active_fraction.mean():.4f} | {int(sl.rebuilds)} | {dl.peak_rss_mb:.0f} | "
                     f"{sl.peak_rss_mb:.0f} | {g.load_avg_1m.mean():.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
