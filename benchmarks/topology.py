"""Benchmarks of the topology lab (CPU).

1. NNSTD of two random 784-1000-1000-10 networks at 1 % density: the tie-exact :func:`nnstd` (sparse products,
   Hungarian, Bellman–Ford + SCC for ties) against the direct published procedure :func:`nnstd_published` (Python sets
   and loops) measured in the same run, and :func:`nnstd_matrix` of 4 nets on 1 vs 2 worker processes.
2. SET training, truly sparse (CSR values) vs masked-dense, at hidden sizes 1,000 / 10,000 / 100,000 (784-H-H-10,
   Erdős–Rényi ε = 20, synthetic data of width 784, 256 samples, batch 32, one epoch + one SET prune/regrow step).
   Each configuration runs in its own process so the peak resident memory (ru_maxrss) is its own. Configurations whose
   dense matrices cannot fit in the memory limit are not run; their computed need is reported instead.

    flock /tmp/bench.lock python benchmarks/topology.py [--sizes 1000 10000 100000] [--memory-limit-gb 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp


def random_net(sizes, density, seed):
    rng = np.random.default_rng(seed)
    return [sp.random(o, i, density=density, random_state=rng, format="csr", data_rvs=np.ones)
            for i, o in zip(sizes[:-1], sizes[1:])]


def bench_nnstd(repeats: int = 3) -> list[str]:
    from workbench.topology import nnstd, nnstd_matrix, nnstd_published

    sizes = [784, 1000, 1000, 10]
    a, b = random_net(sizes, 0.01, 1), random_net(sizes, 0.01, 2)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = nnstd(a, b)
        times.append(time.perf_counter() - t0)
    t_ours = min(times)
    t0 = time.perf_counter()
    pub = nnstd_published(a, b)
    t_pub = time.perf_counter() - t0
    nets = [random_net(sizes, 0.01, s) for s in range(4)]
    t0 = time.perf_counter()
    m1 = nnstd_matrix(nets, n_jobs=1)
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    m2 = nnstd_matrix(nets, n_jobs=2, parallel_min_neurons=0)
    t_par = time.perf_counter() - t0
    assert np.allclose(m1.distance, m2.distance)
    lines = [
        "### NNSTD, two random 784-1000-1000-10 nets at 1 % density",
        "",
        "| implementation | seconds | ratio to published | mean NNSTD | per layer | tie classes (of neurons) |",
        "|---|---:|---:|---:|---|---|",
        f"| published procedure, direct (Python sets, loops) | {t_pub:.2f} | 1.00 | {pub.mean:.4f} | "
        f"{', '.join(f'{d:.4f}' for d in pub.distances)} | (ignores ties) |",
        f"| tie-exact `nnstd` (best of {repeats}) | {t_ours:.2f} | {t_ours / t_pub:.3f} ({t_pub / t_ours:.1f}× faster) | "
        f"{res.mean:.4f} | {', '.join(f'{d:.4f}' for d in res.distances)} | "
        f"{', '.join(str(c) for c in res.layers.tie_classes)} of {', '.join(str(n) for n in res.layers.neurons)} |",
        "",
        f"`nnstd_matrix` of 4 such nets (6 pairs): {t_seq:.2f} s on 1 process, {t_par:.2f} s on 2 worker processes "
        f"(ratio {t_par / t_seq:.2f}).",
        "",
    ]
    return lines


# ------------------------------------------------------------------------------------------------------ SET
def dense_need_bytes(sizes) -> int:
    """Masked-dense training state: weight + grad + momentum (float32) + bool mask per dense entry, + biases."""
    entries = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    return entries * (4 * 3 + 1) + sum(sizes[1:]) * 12


def sparse_need_bytes(sizes, epsilon=20.0) -> int:
    from workbench.topology import erdos_renyi_density
    from workbench.topology.sparse_layers import STATE_BYTES_PER_CONNECTION

    nnz = sum(round(erdos_renyi_density(i, o, epsilon) * i * o) for i, o in zip(sizes[:-1], sizes[1:]))
    # values + grad + momentum (float32), key (int64), CSR order, columns, transpose permutation and columns (int32)
    return nnz * STATE_BYTES_PER_CONNECTION


def run_one(mode: str, hidden: int, samples: int, batch: int) -> dict:
    """One epoch of SET training in this process; returns times and peak memory."""
    import torch

    from workbench.topology import SparseMLP, set_prune_regrow

    torch.manual_seed(0)
    sizes = [784, hidden, hidden, 10]
    x = torch.randn(samples, 784)
    y = torch.randint(0, 10, (samples,))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    model = SparseMLP(sizes, mode=mode, epsilon=20, seed=0)
    t_init = time.perf_counter() - t0
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    loss_fn(model(x[:batch]), y[:batch]).backward()  # warm-up step (first-call set-up), not timed
    opt.zero_grad(set_to_none=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, samples, batch):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for layer in model.layers:
        set_prune_regrow(layer, 0.3, rng, optimizer=opt)
    t_set, c_set = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return dict(mode=mode, hidden=hidden, connections=model.n_connections, init_s=t_init, train_s=t_train,
                set_s=t_set, cpu_train_s=c_train, cpu_set_s=c_set, peak_bytes=peak, base_bytes=base, loss=float(loss))


def bench_set(hiddens, samples: int, batch: int, limit_gb: float) -> list[str]:
    rows = []
    for h in hiddens:
        sizes = [784, h, h, 10]
        for mode in ("sparse", "dense"):
            need = dense_need_bytes(sizes) if mode == "dense" else sparse_need_bytes(sizes)
            if need > limit_gb * 2**30:
                rows.append(dict(mode=mode, hidden=h, skipped=True, need=need))
                continue
            out = subprocess.run([sys.executable, __file__, "--one", mode, str(h), "--samples", str(samples),
                                  "--batch", str(batch)], capture_output=True, text=True, check=True)
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            rec["need"] = need
            rows.append(rec)
            print(f"  {mode} H={h}: {rec['train_s']:.2f} s train, {rec['set_s']:.2f} s SET, "
                  f"peak {rec['peak_bytes'] / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    lines = [
        f"### SET one epoch, 784-H-H-10, ε = 20, {samples} synthetic samples, batch {batch}",
        "",
        "| hidden H | mode | connections | train s / epoch | SET step s | epoch s | epoch time / sparse | "
        "epoch CPU s | peak RSS GiB | peak − start GiB | (peak − start) / sparse | computed training-state need GiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["hidden"], r["mode"]): r for r in rows}
    for h in hiddens:
        s = by[(h, "sparse")]
        for mode in ("sparse", "dense"):
            r = by[(h, mode)]
            if r.get("skipped"):
                lines.append(f"| {h:,} | {mode} | – | not run | – | – | – | – | – | – | – | {r['need'] / 2**30:,.1f} "
                             f"(exceeds the {limit_gb:g} GiB limit) |")
                continue
            ep = r["train_s"] + r["set_s"]
            ep_s = (s["train_s"] + s["set_s"]) if not s.get("skipped") else float("nan")
            lines.append(
                f"| {h:,} | {mode} | {r['connections']:,} | {r['train_s']:.2f} | {r['set_s']:.2f} | {ep:.2f} | "
                f"{ep / ep_s:.2f} | {r['cpu_train_s'] + r['cpu_set_s']:.2f} | {r['peak_bytes'] / 2**30:.2f} | "
                f"{(r['peak_bytes'] - r['base_bytes']) / 2**30:.2f} | "
                f"{(r['peak_bytes'] - r['base_bytes']) / (s['peak_bytes'] - s['base_bytes']):.2f} | "
                f"{r['need'] / 2**30:.2f} |")
    lines += ["", "Computed need = weights + gradients + momentum (float32) + bool mask per dense entry (masked-dense), or "
              "values + gradients + momentum (float32) + keys and CSR index arrays (int64) per connection (truly sparse). "
              f"One dense {hiddens[-1]:,} × {hiddens[-1]:,} float32 matrix alone is "
              f"{hiddens[-1] ** 2 * 4 / 2**30:.1f} GiB.", ""]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--memory-limit-gb", type=float, default=16.0)
    p.add_argument("--skip-nnstd", action="store_true")
    p.add_argument("--skip-set", action="store_true")
    p.add_argument("--one", nargs=2, metavar=("MODE", "HIDDEN"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.samples, args.batch)))
        return
    import torch

    print(f"Machine: {platform.machine()} {platform.system()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    lines: list[str] = []
    if not args.skip_nnstd:
        lines += bench_nnstd()
    if not args.skip_set:
        lines += bench_set(args.sizes, args.samples, args.batch, args.memory_limit_gb)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
