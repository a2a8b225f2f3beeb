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
# # 03 · FP8 formats: E4M3 and E5M2, range against precision, and scaling
#
# Micikevicius et al. 2022, *FP8 Formats for Deep Learning*, define two 8-bit floating-point formats:
#
# | | E4M3 | E5M2 |
# |---|---|---|
# | exponent / mantissa bits | 4 / 3 | 5 / 2 |
# | bias | 7 | 15 |
# | largest finite | 448 | 57344 |
# | smallest subnormal | 2⁻⁹ | 2⁻¹⁶ |
# | inf / NaN | no inf; NaN = S.1111.111 | IEEE-like inf and NaN |
#
# One more mantissa bit halves the relative rounding step (E4M3: 2⁻⁴ relative error bound, E5M2: 2⁻³); one more
# exponent bit doubles the number of binades (dynamic range ≈ 2¹⁸ vs 2³²). The paper's recipe uses **E4M3 for weights
# and activations** (forward pass: precision matters, the range is tamed by a per-tensor scale) and **E5M2 for
# gradients** (backward pass: values spread over many orders of magnitude). Every tensor is scaled so that its amax
# lands on the format's largest value; in training the scale comes from an **amax history** of previous steps
# (*delayed scaling*). This notebook looks at all of this with the workbench's own `quantize` and grids.

# %% tags=["parameters"]
model = "digits-cnn"  # help: model whose weights, activations and gradients are quantized
formats = ["fp8_e4m3", "fp8_e5m2", "int8", "int4"]  # help: number formats to compare
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode

# %%
import numpy as np
import pandas as pd
import torch
import plotly.io as pio

import workbench
from workbench.config import quick_mode

quick = quick_mode(quick)
torch.manual_seed(seed)
torch.set_num_threads(1)  # tiny models: one thread is as fast, and two stall on a busy 2-core machine
pd.set_option("display.width", 160, "display.max_columns", 20, "display.precision", 4)
print("quick mode:", quick)

# %% [markdown]
# ## The number lines
#
# `representable_values(fmt)` lists every finite value of a format's unscaled grid. On a log axis a floating-point
# format is a set of binades, each holding 2^mantissa values, evenly spaced inside the binade; an integer format
# is evenly spaced everywhere, so on a log axis its small values are sparse.

# %%
from workbench.formats import representable_values, quantize
from workbench.viz.quant import number_line

grids = {f: representable_values(f).numpy() for f in formats}
rows = []
for f, g in grids.items():
    pos = g[g > 0]
    rows.append({"format": f, "values": len(g), "largest": pos.max(), "smallest > 0": pos.min(),
                 "dynamic range (log2)": np.log2(pos.max() / pos.min())})
display(pd.DataFrame(rows))
number_line(grids).show()
# the table of the introduction: largest finite value and smallest subnormal of each FP8 format
for f, (largest, smallest) in {"fp8_e4m3": (448.0, 2.0**-9), "fp8_e5m2": (57344.0, 2.0**-16)}.items():
    if f in grids:
        assert grids[f].max() == largest and grids[f][grids[f] > 0].min() == smallest, f

# %% [markdown]
# ## Precision: the relative step between neighbours
#
# Between powers of two an FP format with m mantissa bits has a relative spacing of 2⁻ᵐ … 2⁻ᵐ⁺¹: the relative error of
# rounding is nearly constant across the range (until the subnormals). An integer grid has a constant *absolute* step,
# so its relative error grows as values get small.

# %%
import plotly.graph_objects as go

fig = go.Figure()
for f, g in grids.items():
    pos = np.unique(g[g > 0])
    fig.add_trace(go.Scatter(x=pos[1:], y=np.diff(pos) / pos[1:], mode="lines", name=f))
fig.update_layout(xaxis=dict(type="log", title="value"), yaxis=dict(type="log", title="relative step"),
                  title="relative spacing of neighbouring values")
fig.show()
# between powers of two (normal values) the relative spacing lies in (2^-m-1, 2^-m]: m = 3 for E4M3, 2 for E5M2
for f, m_bits in {"fp8_e4m3": 3, "fp8_e5m2": 2}.items():
    if f in grids:
        pos = np.unique(grids[f][grids[f] > 0])
        normal = pos[pos >= 2.0 ** (-6 if f == "fp8_e4m3" else -14)]
        rel = np.diff(normal) / normal[:-1]
        assert rel.max() == 2.0**-m_bits and rel.min() > 2.0 ** (-m_bits - 1), (f, rel.min(), rel.max())

# %% [markdown]
# ## SQNR on Gaussian weights: measured against the float64 reference
#
# For x ~ N(0, 1) rounded onto `scale · grid`, the expected squared error is a sum over the grid's rounding cells of
# ∫(x − v)²φ(x)dx, each in closed form; `expected_sqnr_gaussian` computes it in float64 from the grid alone. The
# measured SQNR of torch's FP8 cast agrees with it within 1 dB wherever it is finite (asserted below). Sweeping the scale shows
# the trade-off: too large a scale wastes the top binades (and underflows the small values), too small a scale
# saturates the tails. E5M2's cast overflows to ±inf beyond its largest value (torch's behaviour, as the IEEE-like
# format has an inf) where the float64 reference saturates, so a too-small scale gives it −∞ dB.

# %%
from workbench.quant import expected_sqnr_gaussian, sqnr_db

g = torch.Generator().manual_seed(seed)
w = torch.randn(256 if quick else 1024, 512, generator=g)
rows = []
for f in formats:
    fmax = float(np.abs(grids[f]).max())
    for amax_sigmas in [1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 100.0, 1e4]:
        scale = amax_sigmas / fmax
        q = quantize(w / scale, f, granularity=None) * scale
        rows.append({"format": f, "amax (σ)": amax_sigmas, "measured dB": sqnr_db(w, q),
                     "float64 grid dB": expected_sqnr_gaussian(f, scale)})
sweep = pd.DataFrame(rows).replace(-np.inf, np.nan)
display(sweep.pivot(index="amax (σ)", columns="format", values="measured dB"))
fig = go.Figure()
for f in formats:
    d = sweep[sweep.format == f]
    fig.add_trace(go.Scatter(x=d["amax (σ)"], y=d["float64 grid dB"], mode="lines", name=f + " (float64)"))
    fig.add_trace(go.Scatter(x=d["amax (σ)"], y=d["measured dB"], mode="markers", name=f + " (measured)"))
fig.update_layout(xaxis=dict(type="log", title="value mapped to the format's max, in σ"), yaxis_title="SQNR (dB)",
                  title="SQNR of N(0,1) against the scale")
fig.show()
fp8 = sweep[sweep.format.str.startswith("fp8") & sweep["measured dB"].notna()]
assert (fp8["measured dB"] - fp8["float64 grid dB"]).abs().max() < 1.0
if "fp8_e5m2" in formats:  # overflow to inf: -inf dB (NaN in the table) when amax is mapped below the largest value
    assert sweep[(sweep.format == "fp8_e5m2") & (sweep["amax (σ)"] <= 2)]["measured dB"].isna().all()

# %% [markdown]
# ## Per tensor or per channel
#
# A per-channel scale (one per output row) adapts to rows of different magnitude. For FP8 it changes little (the
# relative error is nearly scale-free); for integers it matters more.

# %%
handle = workbench.load_model(model)
rows = []
for name, mod in workbench.formats.eligible_layers(handle.model).items():
    wt = mod.weight.detach()
    for f in formats:
        for gran in ["tensor", "channel"]:
            rows.append({"layer": name, "format": f, "granularity": gran,
                         "SQNR dB": sqnr_db(wt, quantize(wt, f, granularity=gran))})
per_gran = pd.DataFrame(rows).pivot_table(index=["layer", "granularity"], columns="format", values="SQNR dB")
display(per_gran)
gain = (per_gran.xs("channel", level="granularity") - per_gran.xs("tensor", level="granularity")).mean()
print("mean gain of a per-channel scale (dB):", gain.round(2).to_dict())
fp8_cols, int_cols = [f for f in gain.index if f.startswith("fp8")], [f for f in gain.index if f.startswith("int")]
if fp8_cols and int_cols:  # the prose: little for FP8, more for integers
    assert gain[fp8_cols].max() < gain[int_cols].min()

# %% [markdown]
# ## Activations: dynamic, static (max / percentile) and delayed scales
#
# Activations change with every input. A **dynamic** scale rescans each tensor (exact amax, an extra pass); a
# **static** scale is calibrated once (max, or a percentile that clips rare outliers); **delayed** scaling takes the
# amax history of previous batches, as FP8 training recipes do. `scaling_comparison` measures the SQNR of each layer's
# input under each choice; `clipped` is the share of values beyond the scale's range.

# %%
from workbench.quant import scaling_comparison

batches = handle.calibration_batches(n_batches=2 if quick else 8, batch_size=64)
sc = scaling_comparison(handle, "fp8_e4m3", batches, percentile=99.9)
display(sc.pivot(index="layer", columns="scaling", values="sqnr_db"))
display(sc.pivot(index="layer", columns="scaling", values="clipped"))

# %% [markdown]
# ## Why E5M2 for gradients
#
# Gradients of different layers differ by orders of magnitude, and within a tensor they span many binades. Cast
# *without* a scale, E4M3 underflows the small gradients (smallest subnormal 2⁻⁹ ≈ 0.002) while E5M2 reaches 2⁻¹⁶;
# with a per-tensor scale both work, and E4M3's extra mantissa bit wins — which is why the recipes pair E5M2 with
# gradients when one scale must serve a tensor of wide range.

# %%
x, y = handle.train_data()
m = handle.model
m.zero_grad()
torch.nn.functional.cross_entropy(m(x[:256]), y[:256]).backward()
rows = []
for name, mod in workbench.formats.eligible_layers(m).items():
    gr = mod.weight.grad.detach()
    nz = gr[gr != 0].abs()
    row = {"layer": name, "log2 range (p1..max)": torch.log2(nz.max() / torch.quantile(nz, 0.01)).item()}
    for f in ["fp8_e4m3", "fp8_e5m2"]:
        row[f + " raw"] = sqnr_db(gr, quantize(gr, f, granularity=None))
        row[f + " scaled"] = sqnr_db(gr, quantize(gr, f, granularity="tensor"))
    rows.append(row)
m.zero_grad()
grads = pd.DataFrame(rows)
display(grads)
# raw: E5M2 keeps what E4M3 underflows; scaled: E4M3's extra mantissa bit wins, in every layer
assert (grads["fp8_e5m2 raw"] > grads["fp8_e4m3 raw"]).all()
assert (grads["fp8_e4m3 scaled"] > grads["fp8_e5m2 scaled"]).all()
