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
# # 05 · Binarized networks: straight-through training and XNOR-popcount
#
# Hubara, Courbariaux, Soudry, El-Yaniv & Bengio 2016, *Binarized Neural Networks*, train networks whose weights
# **and** activations are ±1:
#
# - forward: `sign(x)` (with sign(0) = +1);
# - backward: the **straight-through estimator**, gradient passed unchanged where |x| ≤ 1 and cancelled where |x| > 1;
# - the optimiser updates real-valued *latent* weights, clipped to [−1, 1];
# - BatchNorm after every binary layer keeps the pre-activations centred, where the sign carries information.
#
# At inference a dot product of ±1 vectors packed as bits is `n − 2·popcount(a XOR b)`: one XOR and one popcount
# replace 64 multiply-adds per machine word.
#
# The notebook loads the three trained networks it compares (bundled in `data/`, a few seconds);
# **`full = True`** trains them here: about 30 s on 2 idle cores, several minutes on a busy machine.

# %% tags=["parameters"]
model = "digits-mlp"  # help: architecture trained binarized (digits MLP)
formats = ["binary"]  # help: the format studied here
seed = 0  # help: random seed
quick = None  # help: None follows WORKBENCH_QUICK; True/False forces quick mode
epochs = 40  # help: training epochs (quick mode uses 8)
hidden = [256, 256]  # help: hidden layer sizes
full = False  # help: train the three networks here (about 30 s on 2 idle cores, minutes on a busy machine) instead of loading the bundled ones

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
# ## The XNOR-popcount identity

# %%
from workbench.quant import pack_signs, xnor_popcount_dot

g = torch.Generator().manual_seed(seed)
a, b = torch.randn(4, 100, generator=g), torch.randn(5, 100, generator=g)
sa, sb = torch.where(a >= 0, 1.0, -1.0), torch.where(b >= 0, 1.0, -1.0)
packed = pack_signs(a)
print("100 signs ->", packed.shape[-1], "bytes per row")
print(xnor_popcount_dot(packed, pack_signs(b), 100))
print((sa @ sb.T).long())
assert torch.equal(xnor_popcount_dot(packed, pack_signs(b), 100), (sa @ sb.T).long())

# %% [markdown]
# ## The straight-through estimator

# %%
from workbench.quant import sign_ste
import plotly.graph_objects as go

x = torch.linspace(-2, 2, 401, requires_grad=True)
y = sign_ste(x)
y.sum().backward()
fig = go.Figure([go.Scatter(x=x.detach(), y=y.detach(), name="sign(x) forward"),
                 go.Scatter(x=x.detach(), y=x.grad, name="STE gradient 1{|x| ≤ 1}")])
fig.update_layout(title="sign and its straight-through gradient", xaxis_title="x")
fig.show()

# %% [markdown]
# ## Training on digits: binarized (with and without BatchNorm) against float
#
# Three MLPs of the same shape, 40 epochs from seed 0: binarized with BatchNorm, binarized without, and float.
# `scripts/train_digits.py --only digits-bnn` trained them with exactly this notebook's defaults and bundled the
# binarized + BN model (`data/digits-bnn.pt`, sha256 checked against `data/digits-bnn.json`) with the per-epoch
# histories of all three runs. By default the notebook loads them and re-measures the loaded model's test accuracy;
# **`full = True`** trains the three here instead (about 30 s on 2 idle cores; several minutes on a busy machine),
# as does any change of `hidden`, `epochs` or `seed`.

# %%
import json

from workbench.data import DATA_DIR, digits_split
from workbench.models.zoo import sha256_file
from workbench.quant import BinarizedMLP, train_digits_mlp
from workbench.viz.quant import training_curves

record = json.loads((DATA_DIR / "digits-bnn.json").read_text())
bundled = list(hidden) == record["sizes"][1:-1] and epochs == record["epochs"] and seed == record["seed"]
split = digits_split()
if full or not bundled:
    n_epochs = 8 if quick else epochs
    print(f"training three MLPs for {n_epochs} epochs")
    trained = {
        "binarized + BN": train_digits_mlp(True, batchnorm=True, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
        "binarized, no BN": train_digits_mlp(True, batchnorm=False, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
        "float": train_digits_mlp(False, hidden=tuple(hidden), epochs=n_epochs, seed=seed),
    }
    net = trained["binarized + BN"].model
    runs = {name: r.metrics for name, r in trained.items()}  # per-epoch metrics of each run
else:
    path = DATA_DIR / record["file"]
    assert sha256_file(path) == record["sha256"], f"{path} differs from the file recorded in digits-bnn.json"
    bnn = BinarizedMLP(tuple(record["sizes"]), batchnorm=True)
    bnn.load_state_dict(torch.load(path, weights_only=True))
    bnn.eval()
    with torch.no_grad():
        loaded_acc = float((bnn(split.x_test).argmax(1) == split.y_test).float().mean())
    print(f"loaded {path.name}: test accuracy {loaded_acc:.4f} (recorded {record['test_accuracy']:.4f})")
    assert abs(loaded_acc - record["test_accuracy"]) < 1e-6
    net = bnn
    runs = {name: pd.DataFrame(r["metrics"]) for name, r in record["runs"].items()}  # recorded per-epoch metrics
summary = pd.DataFrame([{"run": k, "test accuracy": m.test_acc.iloc[-1],
                         "best test accuracy": m.test_acc.max()} for k, m in runs.items()])
display(summary)
training_curves(runs, y="test_acc").show()

# %% [markdown]
# BatchNorm is what makes the binarized net train: without it the signs of the hidden pre-activations carry little
# information and the net ends several points lower; with it, it comes within about a point of the float net (the
# cell below checks this on the runs above, for 40-epoch runs).

# %%
acc = summary.set_index("run")["test accuracy"]
print(f"BN - no BN: {100 * (acc['binarized + BN'] - acc['binarized, no BN']):+.1f} points; "
      f"float - binarized + BN: {100 * (acc['float'] - acc['binarized + BN']):+.1f} points")
if epochs >= 40 and not (quick and (full or not bundled)):
    assert acc["binarized + BN"] - acc["binarized, no BN"] > 0.03
    assert abs(acc["float"] - acc["binarized + BN"]) < 0.02

# %% [markdown]
# ## What the binary network stores
#
# Each binary layer keeps 1 bit per weight: 32× smaller than float32. The latent weights stay within [−1, 1]
# (clipped), and a few percent of them sit at the boundary (`share at ±1`), where the STE stops pushing them.

# %%
from workbench.quant.binarized import BinaryLinear

rows = []
for i, layer in enumerate(m for m in net.modules() if isinstance(m, BinaryLinear)):
    w = layer.weight.detach()
    rows.append({"layer": i, "shape": tuple(w.shape), "latent |w| max": float(w.abs().max()),
                 "share at ±1": float((w.abs() > 0.99).float().mean()), "bits": w.numel(),
                 "float32 bytes": 4 * w.numel(), "binary bytes": w.numel() // 8})
stored = pd.DataFrame(rows)
display(stored)
assert (stored["latent |w| max"] <= 1.0).all() and (stored["share at ±1"] > 0).all() and (stored["float32 bytes"] == 32 * stored["binary bytes"]).all()
