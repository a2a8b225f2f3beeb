# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · GPU kernels for compressed weights
#
# At small batch (decoding, online inference) a linear layer `y = x·Wᵀ` does two multiply-adds per weight but must
# read every weight from memory once, so its time is the time to **read its weights**: the floor is
# `bytes / memory bandwidth` (an H100 copies about 3.0 TB/s). A compressed weight moves fewer bytes:
#
# | format | what is stored (per weight) | bytes vs bf16 |
# |---|---|---|
# | `2:4` (Mishra et al. 2021, *Accelerating Sparse Deep Neural Networks*) | half the values (bf16) + a 2-bit position each | ≈ 0.56 |
# | `fp8_e4m3` (Micikevicius et al. 2022, *FP8 Formats for Deep Learning*) | 1 byte + one fp32 scale per row | 0.5 |
# | `2:4+fp8_e4m3` | half the values as e4m3 + 2-bit positions | ≈ 0.31 |
# | `binary` (Hubara/Courbariaux et al. 2016; XNOR-Net scale, Rastegari et al. 2016) | 1 sign bit + a scale per row | 0.0625 |
#
# So the *best possible* speedup over dense bf16 at batch 1 is about 1.8×, 2×, 3.2× and 16×. torch's own 2:4 path
# (cuSPARSELt) is built for large matrix products, not for a few columns (the benchmark times it beside the
# kernels: the column `speedup_vs_torch24` where it ran), which is why the workbench carries kernels of its own (`kernels/`, Triton).
#
# This notebook packs weights, checks that the kernels compute exactly what the format means, and shows the benchmark
# table. Without a GPU the kernels run in **Triton's interpreter** on the CPU (slow, tiny shapes, same code), and the
# table shows the recorded GPU results or, if none were ever recorded, the bandwidth-floor prediction.

# %% tags=["parameters"]
quick = None  # help: None = follow WORKBENCH_QUICK; True = tiny shapes; False = larger demo shapes
seed = 0  # help: random seed for weights and inputs
batch = 4  # help: rows of x in the correctness demo
run_kernels = True  # help: run the Triton kernels (GPU, or the interpreter on CPU); False = torch reference only

# %%
import os

import torch

if not torch.cuda.is_available():  # the kernels then run in Triton's interpreter; set before triton is imported
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pandas as pd

from workbench.config import quick_mode
from workbench.kernels import (FORMATS, TRITON_FORMATS, interpreter_mode, linear, linear_path, pack, pack_signs,
                               triton_available, unpack, unpack_signs, xnor_gemm)

quick = quick_mode(quick)
torch.manual_seed(seed)
out_features, in_features = (24, 64) if quick else (256, 512)
device = "cuda" if torch.cuda.is_available() else "cpu"
backend = "triton" if device == "cuda" else ("emulated" if run_kernels and triton_available() else "torch")
print(f"device={device}, backend={backend}, interpreter={interpreter_mode() if triton_available() else None}")

# %% [markdown]
# ## Packing: exact round trip
#
# `pack(w, fmt)` stores the compressed layout (see `docs/kernels.md`); `unpack` rebuilds the dense weight. The
# unpacked weight must equal the format's fake-quantized weight from `workbench.formats.quantize` **bit for bit**:
# the kernels and the rest of the workbench (toggles, error analyses) then agree on what the format means.

# %%
from workbench.formats import quantize

w = torch.randn(out_features, in_features, dtype=torch.bfloat16, device=device)
rows = []
for fmt in FORMATS:
    p = pack(w, fmt)
    exact = torch.equal(unpack(p).cpu(), quantize(w.cpu(), fmt, granularity="channel"))
    assert exact, fmt
    rows.append(dict(format=fmt, stored={k: tuple(v.shape) for k, v in p.tensors().items()}, bytes=p.nbytes,
                     bytes_vs_bf16=p.nbytes / (w.numel() * 2), round_trip_exact=exact))
pd.DataFrame(rows)

# %% [markdown]
# ## The kernels compute `x · unpack(W)ᵀ`
#
# Each program of the Triton kernel owns a block of output features, walks the input dimension, loads the compressed
# bytes once, rebuilds the dense tile in registers (2:4: places the two kept values of each group of 4 by their 2-bit
# positions; FP8: converts e4m3 and applies the row scale once at the end; binary: expands 32 sign bits per word to
# ±1) and accumulates in fp32. Here each output is compared with the float64 product (the output is filled with NaN
# first, so an element the kernel does not write shows up).

# %%
x = torch.randn(batch, in_features, dtype=torch.bfloat16, device=device)
rows = []
for fmt in TRITON_FORMATS:  # "int8" has CPU kernels only (last section)
    p = pack(w, fmt)
    out = torch.full((batch, out_features), float("nan"), dtype=torch.bfloat16, device=device)
    y = linear(x, p, backend=backend, out=out if backend != "torch" else None)
    ref = x.double() @ unpack(pack(w.float(), fmt)).double().T  # same codes, unrounded scale products
    rel = ((y.double() - ref).norm() / ref.norm()).item()
    rows.append(dict(format=fmt, path=linear_path(x, p, backend), rel_error=rel, all_written=bool(torch.isfinite(y).all())))
    assert rel < 1e-2 and torch.isfinite(y).all()
pd.DataFrame(rows)

# %% [markdown]
# The error is that of rounding the output to bf16 (relative ≈ 2⁻⁹) — the kernels add nothing of their own.
#
# ## Binary × binary: XNOR and popcount
#
# For ±1 vectors of length k packed 32 per word (bit 1 = +1), `a·b = k − 2·popcount(a XOR b)`
# (XNOR-Net). `xnor_gemm` computes this for every pair of rows, masking the padding bits of the last word.

# %%
k = 70  # not a multiple of 32 on purpose
a = torch.where(torch.rand(5, k) < 0.5, 1.0, -1.0)
b = torch.where(torch.rand(6, k) < 0.5, 1.0, -1.0)
got = xnor_gemm(pack_signs(a).to(device), pack_signs(b).to(device), k,
                backend=backend if backend != "torch" else "torch")
assert torch.equal(got.cpu(), (a @ b.T).to(torch.int32))
got

# %% [markdown]
# ## Speed: the benchmark table
#
# `benchmarks/kernels.py` times each kernel on a GPU against dense bf16 `F.linear` and torch's 2:4 path in the same
# run, with the device copy bandwidth as the floor, and records the table in `benchmarks/kernels_results.json`
# (`python benchmarks/kernels.py --json benchmarks/kernels_results.json`). Bars: speedup over dense; black ticks: the
# speedup at the bandwidth floor. If no GPU run was ever recorded, the table below is the **prediction**, and says so.

# %%
from workbench.kernels.bench import load_results
from workbench.viz.kernels import floor_figure, speedup_figure

table, meta = load_results()
print(meta.get("note") or f"measured on {meta['device']}, copy bandwidth {meta['copy_tbps']:.2f} TB/s")
speedup_figure(table[table.batch == 1], meta).show()

# %%
# one row per shape × batch, one column per format: the speedup over dense bf16 (measured, or the floor's prediction)
order = [f for f in ["dense", "2:4", "fp8_e4m3", "2:4+fp8_e4m3", "binary"] if f in set(table["format"])]
speedup = table.pivot_table(index=["shape", "batch"], columns="format", values="speedup_vs_dense", sort=False)[order]
print(f"speedup over dense bf16 ({', '.join(sorted(set(table['source'])))})")
if "speedup_vs_torch24" in table and table["speedup_vs_torch24"].notna().any():  # only where torch's 2:4 path ran
    print("over torch's 2:4 path:", table.dropna(subset=["speedup_vs_torch24"])
          .groupby("format")["speedup_vs_torch24"].median().round(2).to_dict())
if meta.get("source") == "predicted":  # the floor: bf16 bytes / format bytes, as the table of the introduction says
    at1 = speedup.xs(1, level="batch").median()
    for f, want in {"2:4": 1.8, "fp8_e4m3": 2.0, "2:4+fp8_e4m3": 3.2, "binary": 16}.items():
        assert abs(at1[f] - want) / want < 0.02, (f, at1[f])
speedup.round(2)

# %% [markdown]
# ## Reading the table
#
# - At batch 1–64 the bars should approach the ticks: the time is the bytes. The goals set for these kernels at batch 1 on an
#   H100 are 2:4 ≥ 1.6×, FP8 ≥ 1.8×, 2:4+FP8 ≥ 2.6×, binary ≥ 8×, each at ≥ 80% of the copy bandwidth.
# - At 8192³ the layer is compute bound; there `linear(..., backend="auto")` hands FP8 and 2:4+FP8 to
#   `torch._scaled_mm`, 2:4 to cuSPARSELt and binary to a dense GEMM on its ±1 expansion; `xnor_gemm` expands both
#   operands once to ±1 int8 and uses the int8 tensor cores (`torch._int_mm`) rather than popcount.
# - Where a kernel cannot reach its floor, `benchmarks/RESULTS.kernels.md` says why, from the instructions it issues
#   per weight (2:4+FP8 and binary at batch 1 are expected to be instruction bound, not memory bound).
# - In the interactive dashboard the same table is the **kernels** tab (`workbench.widgets.kernels.KernelBenchView`).

# %% [markdown]
# ## Without a GPU: the CPU kernels and their measured table
#
# On a laptop the same `linear(x, packed)` runs CPU implementations (`workbench.kernels.cpu`, numba when installed):
# binary weights **and** binary activations as an XNOR-popcount GEMM over 64-bit words (`activations="binary"`),
# and dequantize-in-the-loop products for `int8`, `fp8_e4m3`, `2:4` and `2:4+fp8_e4m3` (one pass over the compressed
# weight at batch ≤ 16; tile-wise dequantize + float32 GEMM above). `linear_path` names the path that runs.
# First, each CPU path against the float64 product on a small layer:

# %%
from workbench.kernels.cpu import linear_cpu

xc = torch.randn(batch, in_features)
rows = []
for fmt in FORMATS:
    p = pack(w.float().cpu(), fmt)
    for act in ("real", "binary"):
        if act == "binary" and fmt != "binary":
            continue
        xin = torch.where(xc >= 0, 1.0, -1.0) if act == "binary" else xc
        y = linear(xc, p, activations=act)
        ref = xin.double() @ unpack(p).double().T
        rel = ((y.double() - ref).norm() / ref.norm()).item()
        rows.append(dict(format=fmt, activations=act, path=linear_path(xc, p, activations=act), rel_error=rel))
        assert rel < 1e-5, (fmt, act, rel)
pd.DataFrame(rows)

# %% [markdown]
# The error is float32 summation order only (< 10⁻⁵ relative): the XNOR path is exact in integers.
#
# **The table.** `benchmarks/kernels_cpu.py` times each method at batch 1, 8, 64 and 512 on layer shapes of
# digits-cnn, MiniLM and a 4096×4096 layer, against torch's float32 `F.linear` and torch's own int8 / int4
# weight-only CPU kernels in the same run, and divides the bytes each call moves by the machine's copy bandwidth,
# measured in the same run (`bw_fraction` = 1 is the memory limit, the batch-1 floor). Quick mode loads the recorded
# run (`benchmarks/kernels_cpu_results.json`, recorded on a shared 2-core machine under load: the figures are noisy,
# and the ratios are what matters); `quick=False` also measures two MiniLM shapes here (≈ 30 s).
# On a GPU machine the measured GPU table above replaces the prediction, and these CPU rows stay what a laptop gets.

# %%
from workbench.kernels import cpu_bench

cpu_table, cpu_meta = cpu_bench.load_results()
if not quick:
    live, live_meta = cpu_bench.bench_table({k: cpu_bench.SHAPES[k] for k in cpu_bench.QUICK_SHAPES},
                                            cpu_bench.QUICK_BATCHES, budget_s=0.05)
    print(f"measured here: copy bandwidth {live_meta['copy_gbps']:.1f} GB/s, load average {live_meta['load_avg']}")
    display(cpu_bench.summary(live).round(2))
print(f"recorded on {cpu_meta.get('cpu')} ({cpu_meta.get('cores')} cores, {', '.join(cpu_meta.get('simd', []))}), "
      f"load average {cpu_meta.get('load_avg')}, copy bandwidth {cpu_meta.get('copy_gbps', float('nan')):.1f} GB/s")
speedups = cpu_bench.summary(cpu_table)
speedups.round(2)

# %%
# batch 1: how close each method gets to the memory limit (fraction of the measured copy bandwidth)
at1 = cpu_table[cpu_table.batch == 1].pivot_table(index="layer", columns="method", values="bw_fraction", sort=False)
assert (cpu_table.loc[cpu_table.method == "f32", "speedup_vs_f32"] == 1).all()  # the baseline is itself
assert ((cpu_table.bytes > 0) & (cpu_table.bw_fraction.isna() | (cpu_table.bw_fraction > 0))).all()
at1.round(2)

# %% [markdown]
# Reading it: at batch 1 a layer must read its whole weight, so time ≥ weight bytes / bandwidth and fewer bytes
# (int8 ¼, 1-bit 1/32 of float32) can only help as far as the code keeps up with memory; small layers (digits-cnn,
# MiniLM 384×384) finish in microseconds, where the call's fixed cost (Python dispatch, thread wake-up) and not the
# bytes sets the time, so their `bw_fraction` is low for every method. At batch 64 the float32 GEMM is compute
# bound and the XNOR-popcount GEMM replaces 64 multiply-adds by one XOR and one popcount per word. The recorded
# targets and where they are missed are in `benchmarks/RESULTS.md` (the CPU kernels section).
