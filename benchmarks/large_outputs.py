"""Benchmark of the large-outputs lab (CPU): sampled softmax with uniform / unigram / LSH negatives against the full
softmax, measured in the same run, on 2 cores.

1. Step costs (no training): seconds of one training step of the output layer per width 1k..300k, full vs LSH
   (and dense vs hashed when ``workbench.hashing.slide`` is importable): the crossover with a dense multiply.
2. Training on the **synthetic** power-law extreme-classification data (:func:`workbench.hashing.xc.synthetic_xc`)
   at 10k and 100k classes: P@1 and seconds per epoch for full / uniform / unigram / LSH (bag-of-embeddings encoder,
   64 hidden, batch 256, plain SGD, 64 negatives, K=8, L=16, tables rebuilt every 50 steps).
3. 1M classes (in its own process, so the peak resident memory is its own): LSH trains a fraction of an epoch, and a
   few full-softmax steps give its seconds per step; peak memory recorded.
4. The **real** next-token task over installed docstrings (30,522 MiniLM tokens), first 100k training windows.
5. ``HashedSparseLinear`` (SLIDE) against dense ``nn.Linear`` + full softmax at 10k / 100k / 1M outputs:
   ``benchmarks/large_outputs_slide.py``, run as a subprocess (its own processes per width; part ``slide``).

Writes ``data/results/large_outputs.csv`` (training rows), ``large_outputs_steps.csv`` (step costs),
``large_outputs_1m.csv``, ``large_outputs_docstrings.csv`` and ``large_outputs_meta.json`` (machine, CPU vector
extensions, what torch runs, load averages), and prints markdown tables for ``benchmarks/RESULTS.md``.

    flock /tmp/wb-bench.lock python benchmarks/large_outputs.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "results"


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def slide_available() -> bool:
    try:
        import workbench.hashing.slide  # noqa: F401
    except ImportError:
        return False
    return True


def meta() -> dict:
    from workbench.kernels.cpu_bench import machine

    info = machine()
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    info["threads"] = torch.get_num_threads()
    return info


def md(frame: pd.DataFrame, cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_steps(quick: bool) -> pd.DataFrame:
    from workbench.hashing.large_outputs import step_costs

    widths = (1_000, 10_000) if quick else (1_000, 3_000, 10_000, 30_000, 100_000, 300_000)
    kinds = ["full", "uniform", "lsh"] + (["dense", "hashed"] if slide_available() else [])
    frames = []
    for k in kinds:
        try:
            frames.append(step_costs(widths, (k,) if k in ("full", "dense") else ("full", k), repeats=3))
        except Exception as exc:  # a layer that fails is reported, the rest still runs
            print(f"step_costs {k}: {type(exc).__name__}: {exc}", flush=True)
    out = pd.concat(frames, ignore_index=True).drop_duplicates(["kind", "width"])
    out["load_avg"] = load()
    return out


def run_training(widths, kinds, epochs, n_train, eval_samples, path: Path, **kw) -> pd.DataFrame:
    from workbench.hashing.large_outputs import train_output_layer
    from workbench.hashing.xc import synthetic_xc

    frames = []
    for w in widths:
        data = synthetic_xc(int(w), n_train, seed=0)
        for k in kinds:
            t = time.perf_counter()
            try:
                df = train_output_layer(data, k, epochs=epochs, eval_samples=eval_samples, **kw)
            except Exception as exc:
                print(f"train {k} at {w}: {type(exc).__name__}: {exc}", flush=True)
                continue
            df["load_avg"] = load()
            frames.append(df)
            print(f"  {k:8s} {w:>8d}: {time.perf_counter() - t:.0f} s, P@1 {df['p_at_1'].iloc[-1]:.4f}, "
                  f"load {load()}", flush=True)
            pd.concat(frames, ignore_index=True).to_csv(path, index=False)  # partial results survive
    return pd.concat(frames, ignore_index=True)


def million(quick: bool) -> None:
    """Runs in its own process: LSH on 1M classes for a fraction of an epoch, then a few full-softmax steps."""
    from workbench.hashing.large_outputs import train_output_layer
    from workbench.hashing.xc import synthetic_xc

    n = 100_000 if quick else 1_000_000
    data = synthetic_xc(n, 2 * n, 256, seed=0)
    frames = []
    for kind, epochs in (("lsh", 0.02 if quick else 0.05), ("full", 20 * 256 / len(data.y_train))):
        df = train_output_layer(data, kind, epochs=epochs, eval_samples=256, rebuild_every=200)
        df["load_avg"] = load()
        frames.append(df)
        print(f"  1M {kind}: {df[['step', 'seconds_per_step', 'p_at_1', 'peak_rss_mb']].iloc[-1].to_dict()}",
              flush=True)
    pd.concat(frames, ignore_index=True).to_csv(OUT / "large_outputs_1m.csv", index=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--million-only", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 on a machine loaded past its cores: "
                    "2 threads contending with other work ran the sampling steps 10x slower, measured)")
    ap.add_argument("--widths", type=int, nargs="*", default=None, help="synthetic widths to train (default 100k 10k)")
    ap.add_argument("--train-csv", default="large_outputs.csv", help="file under data/results for the training rows")
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: steps train million docstrings slide")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.million_only:
        million(args.quick)
        return
    info = meta()
    info["load_avg_start"] = load()
    print(f"machine: {json.dumps(info)}", flush=True)
    kinds = ["full", "uniform", "unigram", "lsh"] + (["dense", "hashed"] if slide_available() else [])
    sections = []
    if "steps" not in args.skip:
        steps = run_steps(args.quick)
        steps.to_csv(OUT / "large_outputs_steps.csv", index=False)
        sections.append("#### Step cost of the output layer (batch 256, 64 hidden; ratio = full step / this step)\n\n"
                        + md(steps, ["kind", "width", "seconds_per_step", "rebuild_seconds", "ratio", "load_avg"]))
        print(sections[-1], flush=True)
    if "train" not in args.skip:
        from workbench.hashing.large_outputs import speedups

        widths = args.widths or ((10_000,) if args.quick else (100_000, 10_000))
        table = run_training(widths, kinds, epochs=1 if args.quick else 2, n_train=20_000 if args.quick else 100_000,
                             eval_samples=500 if args.quick else 3000, path=OUT / args.train_csv)
        sp = speedups(table)
        sections.append("#### Synthetic power-law data: seconds per epoch and P@1 (speedup = full / kind, gap = full "
                        "P@1 − kind P@1 in points)\n\n" + md(sp, ["width", "kind", "seconds_per_epoch", "p_at_1",
                                                                  "speedup", "p_at_1_gap", "active_fraction",
                                                                  "peak_rss_mb"]))
        print(sections[-1], flush=True)
    if "million" not in args.skip:
        cmd = [sys.executable, __file__, "--million-only", "--threads", str(args.threads)] + (
            ["--quick"] if args.quick else [])
        subprocess.run(cmd, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if (OUT / "large_outputs_1m.csv").exists():
            m = pd.read_csv(OUT / "large_outputs_1m.csv")
            m = m[m["step"] > 0]
            sections.append("#### 1M classes (own process)\n\n" + md(m, ["kind", "width", "step", "seconds_per_step",
                                                                         "p_at_1", "param_mb", "peak_rss_mb",
                                                                         "load_avg"]))
            print(sections[-1], flush=True)
    if "docstrings" not in args.skip:
        from workbench.hashing.large_outputs import speedups, train_output_layer
        from workbench.hashing.xc import docstring_tokens

        data = docstring_tokens()
        n_sub = 20_000 if args.quick else 100_000
        data.x_train, data.y_train = data.x_train[:n_sub], data.y_train[:n_sub]
        frames = []
        for k in ["full", "uniform", "unigram", "lsh"]:
            df = train_output_layer(data, k, epochs=1, eval_samples=500 if args.quick else 3000)
            df["load_avg"] = load()
            frames.append(df)
            print(f"  docstrings {k}: P@1 {df['p_at_1'].iloc[-1]:.4f}", flush=True)
        real = pd.concat(frames, ignore_index=True)
        real.to_csv(OUT / "large_outputs_docstrings.csv", index=False)
        sections.append("#### Real task: next MiniLM token over installed docstrings (30,522 classes, 100k windows, "
                        "1 epoch)\n\n" + md(speedups(real), ["kind", "seconds_per_epoch", "p_at_1", "speedup",
                                                             "p_at_1_gap"]))
        print(sections[-1], flush=True)
    if "slide" not in args.skip:
        cmd = [sys.executable, str(Path(__file__).with_name("large_outputs_slide.py")), "--threads",
               str(args.threads)] + (["--widths", "10000", "--epochs", "1"] if args.quick else [])
        subprocess.run(cmd, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    info["load_avg_end"] = load()
    if not args.skip:
        (OUT / "large_outputs_meta.json").write_text(json.dumps(info, indent=1))
    print("\n\n".join(sections))
    print(f"\nload average at the end: {load()}")


if __name__ == "__main__":
    main()
