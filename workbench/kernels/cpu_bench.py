"""The CPU benchmark of :mod:`workbench.kernels.cpu`: time per layer shape × batch × method, against torch's float32
``F.linear`` and torch's own int8 / int4 weight-only CPU kernels measured in the same run, and each figure's bytes
moved against the machine's copy bandwidth measured in the same run (a STREAM-like ``copy``, Bandwidth = bytes read
+ written / time; McCalpin 1995).

Table (tidy, one row per shape × batch × method), columns :data:`COLUMNS`:
``best_us`` the fastest repetition (as STREAM reports: on a shared, loaded machine the median mostly measures
the scheduler), ``time_us`` the median; every ratio below uses ``best_us``. ``bytes`` = weight bytes as stored + float32 x in + float32 y out; ``gbps`` =
bytes / time; ``bw_fraction`` = gbps / measured copy bandwidth (1.0 = at the memory limit: the batch-1 floor);
``speedup_vs_f32`` = F.linear's time / this time; ``vs_torch_int8`` = torch's int8 weight-only time / this time (int8
rows); ``path`` the :func:`workbench.kernels.linear_path` that ran (or the torch op). ``note``: why a figure is
missing or what bounds it.

Methods: ``f32`` (``F.linear``, float32 weight), ``torch_int8`` (``aten._weight_int8pack_mm``, float32 x; and
``torch_int8_bf16``: bf16 x and scales, its faster case; ``vs_torch_int8`` compares with the faster), ``torch_int4``
(``aten._weight_int4pack_mm_for_cpu``, group 128), ours: ``int8``, ``fp8_e4m3``, ``2:4`` (bf16 values),
``2:4+fp8_e4m3``, ``binary`` (real activations), ``xnor`` (binary weights and activations: XNOR-popcount, numba) and
``xnor_torch`` (the same product as ±1 int8 ``torch._int_mm``).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

SHAPES: dict[str, tuple[int, int]] = {  # (out_features, in_features)
    "digits-cnn fc1": (64, 512),
    "MiniLM attn 384×384": (384, 384),
    "MiniLM ffn up 1536×384": (1536, 384),
    "MiniLM ffn down 384×1536": (384, 1536),
    "4096×4096": (4096, 4096),
}
BATCHES: tuple[int, ...] = (1, 8, 64, 512)
QUICK_SHAPES = ("MiniLM attn 384×384", "MiniLM ffn up 1536×384")
QUICK_BATCHES = (1, 64)
METHODS: tuple[str, ...] = (
    "f32", "torch_int8", "torch_int8_bf16", "torch_int4", "int8", "fp8_e4m3", "2:4", "2:4+fp8_e4m3", "binary", "xnor", "xnor_torch",
)
COLUMNS = [
    "layer", "out_features", "in_features", "batch", "method", "path", "best_us", "time_us", "bytes", "gbps", "bw_fraction",
    "speedup_vs_f32", "vs_torch_int8", "note",
]
SLOW_S = 1.5  # a method whose previous batch took longer than this is skipped at larger batches (said in `note`)


def results_path() -> Path:
    """``benchmarks/kernels_cpu_results.json`` beside the package (a source checkout)."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "kernels_cpu_results.json"


FLUSH_MB = 64  # written between repetitions: twice a 32 MB L3, so every weight is read from memory (cold)


def time_us(
    fn: Callable[[], Any], budget_s: float = 0.25, min_reps: int = 3, max_reps: int = 20, flush: torch.Tensor | None = None
) -> tuple[float, float]:
    """(best, median) wall time of ``fn`` in µs: one warm-up call, then repetitions until ``budget_s`` of timed work is
    spent; ``flush`` (a large tensor) is overwritten, untimed, before each repetition."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = max(min_reps, min(max_reps, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        if flush is not None:
            flush.add_(1.0)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e6, statistics.median(times) * 1e6


def copy_bandwidth_gbps(mbytes: int = 256, reps: int = 5) -> float:
    """STREAM-like copy: ``dst.copy_(src)`` of ``mbytes`` MB float32, (read + write bytes) / best time, GB/s."""
    n = mbytes * (1 << 20) // 4
    src = torch.ones(n)
    dst = torch.empty(n)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best / 1e9


def machine() -> dict[str, Any]:
    """CPU model, core count, SIMD flags, load average, torch/numba versions."""
    info: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu"] = model
        info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_vpopcntdq") if f in flags]
    except OSError:
        info["cpu"] = "?"
    info["cores"] = os.cpu_count()
    try:
        info["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        info["load_avg"] = None
    return info


def _int4_operands(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's CPU int4 weight-only operands: packed uint4 codes and ``[K/group, N, 2]`` scales and zeros."""
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    lo, hi = g.amin(-1), g.amax(-1)
    scale = ((hi - lo) / 15).clamp_min(1e-8)
    q = torch.clamp(torch.round((g - lo[..., None]) / scale[..., None]), 0, 15).to(torch.int32).reshape(n, k)
    zero = lo + 8 * scale  # torch dequantizes (q − 8)·scale + zero
    sz = torch.stack([scale, zero], -1).transpose(0, 1).contiguous()
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1), sz


def bench_table(
    shapes: dict[str, tuple[int, int]] | None = None,
    batches: tuple[int, ...] = BATCHES,
    methods: tuple[str, ...] = METHODS,
    budget_s: float = 0.25,
    seed: int = 0,
    flush: bool = True,
    copy_mb: int = 256,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Time every shape × batch × method on this CPU; returns (table, metadata with the copy bandwidth, machine)."""
    import torch.nn.functional as F

    from workbench.kernels import linear, linear_path, pack
    from workbench.kernels.cpu import xnor_counts

    shapes = SHAPES if shapes is None else shapes
    g = torch.Generator().manual_seed(seed)
    bw = copy_bandwidth_gbps(copy_mb)
    meta = machine() | {"copy_gbps": bw, "date": time.strftime("%Y-%m-%d %H:%M"), "cold_weights": flush,
                        "timing": "best of repetitions (µs); median in time_us"}
    buf = torch.zeros(FLUSH_MB * (1 << 20) // 4) if flush else None
    rows = []
    for layer, (n, k) in shapes.items():
        w = torch.randn(n, k, generator=g) / k**0.5
        packed = {f: pack(w if f in ("int8", "fp8_e4m3") else w.bfloat16() if f == "2:4" else w, f)
                  for f in ("int8", "fp8_e4m3", "2:4", "2:4+fp8_e4m3", "binary")}
        w8, s8 = packed["int8"].values, packed["int8"].scale
        group = 128 if k % 128 == 0 else k
        w4 = _int4_operands(w, group) if "torch_int4" in methods and k % 32 == 0 else None
        slow: dict[str, float] = {}
        for m in batches:
            x = torch.randn(m, k, generator=g)
            xb, s8b = x.bfloat16(), s8.bfloat16()
            act_bytes = 4 * m * (k + n)
            calls: dict[str, tuple[Callable[[], Any], int, str]] = {
                "f32": (lambda: F.linear(x, w), 4 * n * k, "F.linear"),
                "torch_int8": (lambda: torch.ops.aten._weight_int8pack_mm(x, w8, s8), n * k + 4 * n,
                               "aten._weight_int8pack_mm"),
                "torch_int8_bf16": (lambda: torch.ops.aten._weight_int8pack_mm(xb, w8, s8b), n * k + 2 * n,
                                    "aten._weight_int8pack_mm bf16"),
            }
            if w4 is not None:
                calls["torch_int4"] = (lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(x, w4[0], group, w4[1]),
                                       n * k // 2 + w4[1].numel() * 4, f"aten._weight_int4pack_mm_for_cpu g{group}")
            for f, p in packed.items():
                calls[f] = ((lambda p=p: linear(x, p)), p.nbytes, linear_path(x, p))
            pb = packed["binary"]
            calls["xnor"] = (lambda: linear(x, pb, activations="binary"), pb.nbytes,
                             linear_path(x, pb, activations="binary"))
            calls["xnor_torch"] = (lambda: xnor_counts(x, pb, "cpu:xnor-torch").float() * pb.scale, pb.nbytes,
                                   "cpu:xnor-torch")
            for meth in methods:
                if meth not in calls:
                    continue
                fn, wbytes, path = calls[meth]
                note = ""
                if slow.get(meth, 0.0) > SLOW_S:
                    t_us = med = float("nan")
                    note = f"skipped: {slow[meth]:.1f} s at the previous batch"
                else:
                    if progress is not None:
                        progress(f"{layer} batch {m} {meth}")
                    t_us, med = time_us(fn, budget_s, flush=buf)
                    slow[meth] = t_us / 1e6
                byt = wbytes + act_bytes
                rows.append(dict(layer=layer, out_features=n, in_features=k, batch=m, method=meth, path=path,
                                 best_us=t_us, time_us=med, bytes=byt, gbps=byt / t_us / 1e3 if t_us == t_us else float("nan"),
                                 note=note))
    df = pd.DataFrame(rows)
    df["bw_fraction"] = df["gbps"] / bw
    key = ["layer", "batch"]
    base = df[df.method == "f32"].set_index(key)["best_us"]
    t8 = df[df.method.isin(["torch_int8", "torch_int8_bf16"])].groupby(key)["best_us"].min()
    idx = pd.MultiIndex.from_frame(df[key])
    df["speedup_vs_f32"] = base.reindex(idx).to_numpy() / df["best_us"].to_numpy()
    df["vs_torch_int8"] = float("nan")
    is8 = (df.method == "int8").to_numpy()
    df.loc[is8, "vs_torch_int8"] = t8.reindex(idx).to_numpy()[is8] / df["best_us"].to_numpy()[is8]
    return df[COLUMNS], meta


def save_results(df: pd.DataFrame, meta: dict[str, Any], path: str | Path) -> Path:
    """Write the table and its metadata as JSON (``{"meta": ..., "rows": [...]}``)."""
    p = Path(path)
    p.write_text(json.dumps({"meta": meta, "rows": json.loads(df.to_json(orient="records"))}, indent=1))
    return p


def load_results(path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The recorded CPU benchmark (default :func:`results_path`); an empty table with ``meta["source"] = "none"``
    when nothing was recorded."""
    p = Path(path) if path is not None else results_path()
    if not p.is_file():
        return pd.DataFrame(columns=COLUMNS), {"source": "none", "note": f"no CPU benchmark recorded at {p}"}
    doc = json.loads(p.read_text())
    df = pd.DataFrame(doc["rows"])
    for c in COLUMNS:
        if c not in df:
            df[c] = float("nan")
    return df[COLUMNS], doc["meta"] | {"source": "measured"}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per layer × batch: the speedup over float32 ``F.linear`` of each method (columns)."""
    order = [m for m in METHODS if m in set(df["method"])]
    if not len(df):
        return pd.DataFrame(columns=order)
    return df.pivot_table(index=["layer", "batch"], columns="method", values="speedup_vs_f32", sort=False)[order]


__all__ = [
    "SHAPES", "BATCHES", "QUICK_SHAPES", "QUICK_BATCHES", "METHODS", "COLUMNS", "results_path", "time_us",
    "copy_bandwidth_gbps", "machine", "bench_table", "save_results", "load_results", "summary",
]
