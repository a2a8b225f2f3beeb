"""Interleaved re-measurement of issue 23's int8 batch-1 target on 4096×4096: float32 F.linear, torch's int8
weight-only kernel (bf16 and float32 activations) and workbench's int8 CPU path, called round-robin (so a burst of
load hits all alike), weights cold (64 MB written before each call), best and median of the rounds, 2 threads.

    flock /tmp/wb-bench.lock python benchmarks/kernels_cpu_int8_b1.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from workbench.kernels import linear, linear_path, pack  # noqa: E402
from workbench.kernels.cpu_bench import copy_bandwidth_gbps  # noqa: E402


def main(rounds: int = 40) -> None:
    torch.set_num_threads(2)
    load = os.getloadavg()
    g = torch.Generator().manual_seed(0)
    n = k = 4096
    w = torch.randn(n, k, generator=g) / 64
    x = torch.randn(1, k, generator=g)
    p = pack(w, "int8")
    xb, sb = x.bfloat16(), p.scale.bfloat16()
    calls = {
        "f32 F.linear": (lambda: F.linear(x, w), 4 * n * k),
        "torch int8 (bf16 x)": (lambda: torch.ops.aten._weight_int8pack_mm(xb, p.values, sb), n * k),
        "torch int8 (f32 x)": (lambda: torch.ops.aten._weight_int8pack_mm(x, p.values, p.scale), n * k),
        f"workbench int8 ({linear_path(x, p)})": (lambda: linear(x, p), n * k),
    }
    flush = torch.zeros(16 << 20)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn, _ in calls.values():
        fn()
    bw = copy_bandwidth_gbps()
    for _ in range(rounds):
        for name, (fn, _) in calls.items():
            flush.add_(1.0)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    print(f"4096×4096, batch 1, {rounds} interleaved rounds, cold weights; copy bandwidth {bw:.1f} GB/s; load average "
          f"before {[round(v, 2) for v in load]}, after {[round(v, 2) for v in os.getloadavg()]}\n")
    print("| method | best µs | median µs | weight GB/s (best) | fraction of copy bw | f32 best / best |")
    print("|---|---|---|---|---|---|")
    f32 = min(times["f32 F.linear"])
    for name, (_, wbytes) in calls.items():
        b, m = min(times[name]), statistics.median(times[name])
        print(f"| {name} | {b * 1e6:.0f} | {m * 1e6:.0f} | {wbytes / b / 1e9:.1f} | {wbytes / b / 1e9 / bw:.2f} | "
              f"{f32 / b:.2f} |")


if __name__ == "__main__":
    main()
