"""Overhead of the weight-distance tracker on a digits-cnn training step (target: under 5 %).

Times one SGD step (forward, backward, momentum update) on digits-cnn at batch 32 and 512 without a tracker, then
with ``WeightDistanceTracker.update`` after every step (every=1, the worst case), with the travelled distance on
top, and with log-spaced records (the default of ``train``). Two measurements: (1) within one loop, the step and
the tracker update that follows it are timed separately (medians), which is robust to load on a shared machine;
(2) end to end, configurations interleaved in rounds, each reported time the median over rounds. Prints markdown
tables of per-step times and ratios against the baseline measured in the same run.

    flock /tmp/bench.lock python benchmarks/dynamics.py [--rounds 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from workbench.data import digits_split
from workbench.dynamics import WeightDistanceTracker, reinitialize
from workbench.models.zoo import DigitsCNN


def run(batch: int, steps: int, mode: str, seed: int = 0) -> float:
    model = reinitialize(DigitsCNN(), seed).train()
    split = digits_split(images=True)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(split.x_train), (steps + 5, batch), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tracker = None
    if mode == "every=1":
        tracker = WeightDistanceTracker(model, every=1)
    elif mode == "every=1+travelled":
        tracker = WeightDistanceTracker(model, every=1, travelled=True)
    elif mode == "log-spaced (256)":
        rec = np.unique(np.round(np.geomspace(1, steps + 5, 256)).astype(int)).tolist()
        tracker = WeightDistanceTracker(model, record_steps=rec)
    t0 = 0.0
    for s in range(steps + 5):
        if s == 5:  # warm-up steps are not timed
            t0 = time.perf_counter()
        xb, yb = split.x_train[idx[s]], split.y_train[idx[s]]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        if tracker is not None:
            tracker.update(s + 1)
    return (time.perf_counter() - t0) / steps


def split_timing(batch: int, steps: int, travelled: bool, seed: int = 0) -> tuple[float, float]:
    """Within one loop: median time of the training step and of the tracker update that follows it (every=1)."""
    model = reinitialize(DigitsCNN(), seed).train()
    split = digits_split(images=True)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(split.x_train), (steps + 5, batch), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tracker = WeightDistanceTracker(model, every=1, travelled=travelled)
    step_t, upd_t = [], []
    for s in range(steps + 5):
        t0 = time.perf_counter()
        xb, yb = split.x_train[idx[s]], split.y_train[idx[s]]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        t1 = time.perf_counter()
        tracker.update(s + 1)
        t2 = time.perf_counter()
        if s >= 5:
            step_t.append(t1 - t0)
            upd_t.append(t2 - t1)
    return statistics.median(step_t), statistics.median(upd_t)


def tracker_only(repeats: int = 2000) -> float:
    model = DigitsCNN()
    tracker = WeightDistanceTracker(model, every=1)
    t0 = time.perf_counter()
    for s in range(1, repeats + 1):
        tracker.update(s)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ["none", "every=1", "every=1+travelled", "log-spaced (256)"]
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.rounds} interleaved rounds × {args.steps} steps, median per step\n")
    n_params = sum(p.numel() for p in DigitsCNN().parameters())
    print(f"tracker update alone (every=1, {n_params} parameters): {1e6 * tracker_only():.1f} µs\n")
    print("Same loop, step and tracker update timed separately (median per step; the stable measure):\n")
    print("| batch | tracker | step (ms) | tracker update (ms) | overhead |")
    print("|---:|---|---:|---:|---:|")
    for batch in (32, 512):
        for travelled in (False, True):
            st, up = split_timing(batch, args.steps * 2, travelled)
            name = "every=1+travelled" if travelled else "every=1"
            print(f"| {batch} | {name} | {1e3 * st:.3f} | {1e3 * up:.3f} | {100 * up / st:.1f} % |")
    print("\nEnd to end, configurations interleaved in rounds (median of the rounds' mean step time):\n")
    print("| batch | tracker | step (ms) | ratio vs no tracker | overhead |")
    print("|---:|---|---:|---:|---:|")
    for batch in (32, 512):
        times: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for m in modes:
                times[m].append(run(batch, args.steps, m))
        base = statistics.median(times["none"])
        for m in modes:
            t = statistics.median(times[m])
            print(f"| {batch} | {m} | {1e3 * t:.3f} | {t / base:.3f} | {100 * (t / base - 1):+.1f} % |", flush=True)


if __name__ == "__main__":
    main()
