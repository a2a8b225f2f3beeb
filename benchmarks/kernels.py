"""Benchmark the compressed-weight kernels against dense bf16 and torch's 2:4 path, with the copy bandwidth as floor.

On a CUDA GPU (run as ``python benchmarks/kernels.py [--json benchmarks/kernels_results.json]``):

- device copy bandwidth (bytes read + written) of a 1 GiB buffer, measured in the same run: the floor;
- for (out, in) in 4096×4096, 4096×11008, 11008×4096, 8192×8192 at batch 1, 16, 64, and 8192³ (compute bound):
  dense bf16 ``F.linear``; torch's 2:4 (``to_sparse_semi_structured``, cuSPARSELt); our kernels for ``"2:4"``,
  ``"fp8_e4m3"``, ``"2:4+fp8_e4m3"``, ``"binary"`` (``backend="triton"``; at 8192³ also ``"auto"``);
- each kernel's output is first checked against the fp32 torch reference (column ``check``);
- median time over reps with CUDA events, each call captured in a CUDA graph so the GPU time is measured without
  Python dispatch overhead (the eager time is recorded too, column ``eager_us``), L2 flushed between reps (a
  4096×4096 bf16 weight fits in H100's 50 MB L2);
  achieved GB/s on the bytes it must move (weights + bf16 x + bf16 out), speedup vs dense and vs torch 2:4, and the
  fraction of the measured copy bandwidth;
- ``xnor_gemm`` at 8192³ (int8: expand + cuBLAS int8 GEMM; mma: in-register expansion + int8 tensor cores;
  popcount) vs the bf16 GEMM of the same shape.

Without a GPU it says so and prints a tiny CPU sanity table of the reference path (not the kernels) and the
bandwidth-floor prediction, and exits 0. Run under ``flock /tmp/bench.lock`` on shared machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch
import torch.nn.functional as F

from workbench.kernels import FORMATS, linear, linear_reference, pack, pack_signs, xnor_gemm
from workbench.kernels.bench import (
    BATCHES,
    COMPUTE_BOUND,
    SHAPES,
    TARGETS,
    median_time_us,
    predicted_table,
    to_markdown,
    traffic_bytes,
)


def copy_tbps(reps: int = 20) -> float:
    """Device copy bandwidth in TB/s counting bytes read + written (1 GiB src → dst)."""
    src = torch.empty(2**29, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    t = median_time_us(lambda: dst.copy_(src), reps=reps)
    return 2 * src.numel() * src.element_size() / (t * 1e-6) / 1e12


def timed(fn, reps: int, flush) -> tuple[float, float, bool]:
    """(GPU time via a CUDA graph, eager time with Python dispatch, whether the graph capture worked), in µs."""
    eager = median_time_us(fn, reps=reps, flush=flush)
    try:
        return median_time_us(fn, reps=reps, flush=flush, graph=True), eager, True
    except Exception as e:  # noqa: BLE001 - an uncapturable path is timed eagerly and marked
        print(f"# CUDA graph capture failed ({type(e).__name__}: {e}); eager time used", flush=True)
        return eager, eager, False


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return ((y.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30)).item()


def bench_gpu(reps: int) -> tuple[list[dict], dict]:
    dev = torch.cuda.get_device_name()
    flush_buf = torch.empty(2**28, dtype=torch.int8, device="cuda")  # 256 MB > L2

    def flush():
        flush_buf.zero_()

    tbps = copy_tbps()
    print(f"# device: {dev}; torch {torch.__version__}; copy bandwidth {tbps:.2f} TB/s (read + written)", flush=True)
    rows = []
    cases = [(n, k, m) for n, k in SHAPES for m in BATCHES] + [COMPUTE_BOUND]
    for n, k, m in cases:
        torch.manual_seed(0)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        t_dense, e_dense, _ = timed(lambda: F.linear(x, w), reps, flush)
        t_24 = float("nan")
        try:
            from torch.sparse import to_sparse_semi_structured

            from workbench.kernels import unpack

            ws = to_sparse_semi_structured(unpack(pack(w, "2:4")))
            t_24, e_24, _ = timed(lambda: F.linear(x, ws), reps, flush)
        except Exception as e:  # noqa: BLE001 - record why the torch 2:4 path is missing
            print(f"# torch 2:4 unavailable at {n}x{k} batch {m}: {type(e).__name__}: {e}", flush=True)

        def row(fmt, t, check="", path="", bytes_fmt=None, eager=float("nan"), graphed=True):
            b = traffic_bytes(bytes_fmt or (fmt if fmt in FORMATS else "dense"), n, k, m)
            gbps = b / (t * 1e-6) / 1e9
            return dict(
                out_features=n, in_features=k, batch=m, shape=f"{n}×{k}", format=fmt, bytes=b, time_us=t, gbps=gbps,
                speedup_vs_dense=t_dense / t, speedup_vs_torch24=t_24 / t, floor_fraction=gbps / (tbps * 1e3),
                source="measured", device=dev, check=check, path=path, eager_us=eager, cuda_graph=graphed,
            )

        rows.append(row("dense", t_dense, path="F.linear bf16", eager=e_dense))
        if t_24 == t_24:
            rows.append(row("torch 2:4", t_24, path="to_sparse_semi_structured", bytes_fmt="2:4", eager=e_24))
        backends = ["triton"] + (["auto"] if m > 64 else [])
        for fmt in FORMATS:
            p = pack(w, fmt)
            for backend in backends:
                try:
                    out = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
                    y = linear(x, p, backend=backend, out=out if backend == "triton" else None)
                    err = _rel_err(y, linear_reference(x, p))
                    bound = 3e-2 if backend == "auto" and "fp8" in fmt else 1e-2  # auto fp8 paths also round x
                    check = f"{'ok' if err < bound and torch.isfinite(y).all() else 'FAIL'} ({err:.1e})"
                    t, eager, graphed = timed(lambda: linear(x, p, backend=backend), reps, flush)
                    from workbench.kernels import linear_path

                    name = fmt if backend == "triton" else f"{fmt} (auto)"
                    rows.append(row(name, t, check, linear_path(x, p, backend), bytes_fmt=fmt, eager=eager, graphed=graphed))
                except Exception as e:  # noqa: BLE001 - a failing kernel is a result to report, not a crash
                    print(f"# {fmt} {backend} at {n}x{k} batch {m} failed: {type(e).__name__}: {e}", flush=True)
        print(to_markdown(_short(rows[-(2 + len(FORMATS) * len(backends)):])), flush=True)

    # xnor_gemm at 8192^3 against the bf16 GEMM
    n = k = m = 8192
    a = pack_signs(torch.randn(m, k, device="cuda"))
    b = pack_signs(torch.randn(n, k, device="cuda"))
    xa = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    xb = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    t_gemm = median_time_us(lambda: xa @ xb.T, reps=max(5, reps // 5))
    ref = None
    for method in ("int8", "mma", "popcount"):
        try:
            y = xnor_gemm(a, b, k, backend="triton", method=method)
            if ref is None:
                ref = y
            check = "ok" if torch.equal(y, ref) else "FAIL (disagrees with int8)"
            if method == "int8":  # an exact spot check of the first rows against the ±1 float product
                from workbench.kernels import unpack_signs

                sa, sb = unpack_signs(a[:64], k), unpack_signs(b[:64], k)
                check = "ok" if torch.equal(y[:64, :64], (sa @ sb.T).to(torch.int32)) else "FAIL"
            t = median_time_us(lambda: xnor_gemm(a, b, k, backend="triton", method=method), reps=max(5, reps // 5))
            rows.append(
                dict(
                    out_features=n, in_features=k, batch=m, shape=f"{n}×{k}", format=f"xnor_gemm ({method})",
                    bytes=2 * m * (k // 8) + 4 * m * n, time_us=t, gbps=float("nan"), speedup_vs_dense=t_gemm / t,
                    speedup_vs_torch24=float("nan"), floor_fraction=float("nan"), source="measured", device=dev,
                    check=check, path=f"triton:{method}",
                )
            )
        except Exception as e:  # noqa: BLE001
            print(f"# xnor_gemm {method} failed: {type(e).__name__}: {e}", flush=True)
    meta = {"source": "measured", "device": dev, "copy_tbps": tbps, "torch": torch.__version__,
            "triton": __import__("triton").__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return rows, meta


def _short(rows: list[dict]):
    import pandas as pd

    cols = ["shape", "batch", "format", "time_us", "eager_us", "gbps", "speedup_vs_dense", "speedup_vs_torch24",
            "floor_fraction", "check"]
    df = pd.DataFrame(rows)
    return df[[c for c in cols if c in df]]


def cpu_sanity(reps: int) -> None:
    """The reference path on tiny shapes, timed against dense F.linear (float32): a smoke test, not a benchmark."""
    import pandas as pd

    rows = []
    for n, k in ((256, 512), (512, 512)):
        for m in (1, 16):
            w = torch.randn(n, k)
            x = torch.randn(m, k)
            t_dense = median_time_us(lambda: F.linear(x, w), reps=reps)
            for fmt in FORMATS:
                p = pack(w, fmt)
                t = median_time_us(lambda: linear(x, p, backend="torch"), reps=reps)
                rows.append(dict(shape=f"{n}×{k}", batch=m, format=fmt, time_us=t, ratio_to_dense=t_dense / t))
    print(to_markdown(pd.DataFrame(rows)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", default=None, help="write the measured table here (e.g. benchmarks/kernels_results.json)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"No CUDA GPU on this machine ({platform.machine()}, torch {torch.__version__}): GPU timings NOT measured.")
        print("\n## CPU sanity: the torch reference path (dequantize + matmul), not the kernels; ratio = dense / it\n")
        cpu_sanity(max(3, min(args.reps, 10)))
        print("\n## Bandwidth-floor prediction (H100 copy 3.0 TB/s), batch 1\n")
        pred = predicted_table(batches=(1,))
        print(to_markdown(pred[["shape", "batch", "format", "bytes", "time_us", "speedup_vs_dense"]]))
        print("\nTargets (H100 batch 1, speedup vs dense bf16): " + ", ".join(f"{k} >= {v}x" for k, v in TARGETS.items()))
        return 0
    rows, meta = bench_gpu(args.reps)
    print("\n## All results\n")
    print(to_markdown(_short(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=1, default=float)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
