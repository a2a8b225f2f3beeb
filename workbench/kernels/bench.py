"""Benchmark tables for the kernels: the bandwidth-floor prediction, recorded GPU results, and the timing helper.

At batch 1–64 a linear layer reads its weight once, so its time is at least ``bytes / bandwidth`` (the floor).
Compressed formats move fewer bytes: 2:4 ≈ 0.56×, FP8 0.5×, 2:4+FP8 ≈ 0.31×, 1-bit 0.0625× of bf16; the
predicted speedup over dense bf16 at the floor is the ratio of the bytes each must move (weights + x + output).

Every table is tidy: one row per shape × batch × format, columns
``out_features, in_features, batch, shape, format, bytes, time_us, gbps, speedup_vs_dense, speedup_vs_torch24,
floor_fraction, source, device``. ``source`` is ``"measured"`` (a GPU run of ``benchmarks/kernels.py``) or
``"predicted"`` (the floor at :data:`H100_COPY_TBPS`).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from workbench.kernels.packing import TRITON_FORMATS as FORMATS, packed_bytes  # the GPU kernels' formats

H100_COPY_TBPS = 3.0  # device copy measured on an H100 80GB, bytes read + written
SHAPES: tuple[tuple[int, int], ...] = ((4096, 4096), (4096, 11008), (11008, 4096), (8192, 8192))  # (out, in)
BATCHES: tuple[int, ...] = (1, 16, 64)
COMPUTE_BOUND = (8192, 8192, 8192)  # (out, in, batch)
# the kernels' targets: speedup over dense bf16 on an H100 at batch 1
TARGETS = {"2:4": 1.6, "fp8_e4m3": 1.8, "2:4+fp8_e4m3": 2.6, "binary": 8.0}
COLUMNS = [
    "out_features", "in_features", "batch", "shape", "format", "bytes", "time_us", "gbps",
    "speedup_vs_dense", "speedup_vs_torch24", "floor_fraction", "source", "device",
]


def results_path() -> Path:
    """``benchmarks/kernels_results.json`` beside the package (a source checkout)."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "kernels_results.json"


def traffic_bytes(fmt: str, out_features: int, in_features: int, batch: int, act_bytes: int = 2) -> int:
    """Bytes a linear layer must move: its weight in ``fmt`` + bf16 activations in + bf16 outputs."""
    return packed_bytes(fmt, (out_features, in_features)) + act_bytes * batch * (in_features + out_features)


def predicted_table(tbps: float = H100_COPY_TBPS, shapes=SHAPES, batches=BATCHES) -> pd.DataFrame:
    """The bandwidth-floor prediction for every shape × batch × format (dense bf16 included)."""
    rows = []
    for n, k in shapes:
        for m in batches:
            dense = traffic_bytes("dense", n, k, m)
            for fmt in ("dense", *FORMATS):
                b = traffic_bytes(fmt, n, k, m)
                rows.append(
                    dict(
                        out_features=n, in_features=k, batch=m, shape=f"{n}×{k}", format=fmt, bytes=b,
                        time_us=b / (tbps * 1e12) * 1e6, gbps=tbps * 1e3, speedup_vs_dense=dense / b,
                        speedup_vs_torch24=float("nan"), floor_fraction=1.0, source="predicted",
                        device=f"bandwidth floor at {tbps:g} TB/s",
                    )
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def load_results(path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Recorded GPU results (table, metadata) if ``path`` (default :func:`results_path`) exists, else the prediction.

    Metadata keys: ``source`` ("measured" / "predicted"), ``device``, ``copy_tbps``, ``note``.
    """
    p = Path(path) if path is not None else results_path()
    if p.is_file():
        doc = json.loads(p.read_text())
        df = pd.DataFrame(doc["rows"])
        for c in COLUMNS:
            if c not in df:
                df[c] = float("nan")
        meta = {k: v for k, v in doc.items() if k != "rows"}
        meta.setdefault("source", "measured")
        return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]], meta
    meta = {
        "source": "predicted",
        "device": "none (no GPU results recorded)",
        "copy_tbps": H100_COPY_TBPS,
        "note": "No GPU timings have been recorded: this is the bandwidth-floor prediction "
        f"(bytes moved / {H100_COPY_TBPS:g} TB/s, the H100 device-copy rate), not a measurement.",
    }
    return predicted_table(), meta


def median_time_us(
    fn: Callable[[], Any], reps: int = 50, warmup: int = 5, flush: Callable[[], Any] | None = None, graph: bool = False
) -> float:
    """Median time of ``fn`` in µs.

    On a GPU: CUDA events around each call, ``flush`` (untimed) before each; with ``graph=True`` the call is captured
    once in a CUDA graph and the replays are timed, so Python and launch overhead (tens of µs for a Python-level
    dispatch, more than a whole 4096×4096 GEMV) are left out and the number is the GPU's. Without a GPU: perf_counter.
    Warm-up calls run first (autotuning happens there, never inside a capture).
    """
    import time

    import torch

    for _ in range(warmup):
        fn()
    times = []
    if torch.cuda.is_available():
        call = fn
        if graph:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                fn()
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            call = g.replay
        torch.cuda.synchronize()
        for _ in range(reps):
            if flush is not None:
                flush()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def to_markdown(df: pd.DataFrame, floats: int = 2) -> str:
    """A markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                cells.append("" if v != v else f"{v:.{floats}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "H100_COPY_TBPS", "SHAPES", "BATCHES", "COMPUTE_BOUND", "TARGETS", "COLUMNS", "results_path", "traffic_bytes",
    "predicted_table", "load_results", "median_time_us", "to_markdown",
]
