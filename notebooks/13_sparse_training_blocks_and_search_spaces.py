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
# # Sparse training: block sparsity, group lasso and search spaces
#
# The other sparsity notebooks prune a model that was trained dense. Here the model is **trained sparse**. Three
# ideas from the field:
#
# * **Block sparsity** (Narang, Undersander & Diamos 2017, "Block-sparse recurrent neural networks"): zero whole
#   H×W blocks of a weight matrix, keeping the blocks of largest L2 norm, because hardware can skip a zero block
#   cheaply. In the format grammar this is `"block4x4@80%"`: 4×4 blocks at 80 % sparsity.
# * **Two ways to get there during training** (same paper): *block pruning* raises a threshold on a schedule
#   (nothing before `start`, slope θ until `ramp`, slope 1.5 θ until `end`) so the target sparsity is reached at
#   `end`; *group lasso* adds λ Σ_g ‖w_g‖₂ to the loss, which pushes whole blocks to zero, then zeroes the smallest.
# * **Search spaces** (Stosic & Stosic 2021, arXiv 2105.12920): with a *fixed mask* only the chosen weights ever
#   learn; with an *augmented* search space all dense "shadow" weights keep receiving gradients and the mask is
#   re-chosen from them every k steps, so weights can leave and re-enter the sparse set.
#
# The model is `digits-gru`, bundled with the workbench: a GRU with 64 hidden units that reads each 8×8 digit row
# by row (8 steps of 8 pixels). Its cell is built from two `nn.Linear` layers, `cell.ih` (192×8) and `cell.hh`
# (192×64), so formats and masks reach its recurrent weights like any linear layer's.

# %% tags=["parameters"]
# Parameters (papermill)
quick = None  # help: None = follow WORKBENCH_QUICK; True/False force quick mode (tiny training runs)
steps = 200  # help: training steps of each run in the full (non-quick) mode
seed = 0  # help: seed of the runs

# %%
import math
from pathlib import Path

import pandas as pd

import workbench
from workbench.config import quick_mode
from workbench.formats import parse_format
from workbench.sparse_training import satisfies, schedule_fraction, train_sparse
from workbench.sparsity import log10_diversity
from workbench.viz.sparse_training import accuracy_figure, mask_frames_figure, search_space_figure

quick = quick_mode(quick)
n_steps = 40 if quick else int(steps)
gru = workbench.load_model("digits-gru")
print(f"quick mode: {quick}; {n_steps} steps per run; digits-gru test accuracy {gru.evaluate()['accuracy']:.3f}")
gru.layers

# %% [markdown]
# ## Block formats are formats like any other
#
# `"block4x4@80%"` parses in the one grammar, toggles on and off with `workbench.apply` / `restore`, and keeps
# whole blocks. With 16×16 blocks the input weight `cell.ih` (8 columns) is not tiled: `apply` skips it and says how
# much padding would make it fit.

# %%
report = workbench.apply(gru.model, "block16x16@80%")
print(report.to_string(index=False))
hh = gru.model.cell.hh.weight.detach()
blocks = (hh != 0).reshape(192 // 16, 16, 64 // 16, 16).float().mean(dim=(1, 3))
kept_blocks = int((blocks == 1).sum())
print(f"cell.hh: {kept_blocks} of {blocks.numel()} 16×16 blocks kept; every block all-kept or all-zero:",
      bool(((blocks == 0) | (blocks == 1)).all()))
workbench.restore(gru.model)
assert kept_blocks == round(0.2 * 48) and bool(((blocks == 0) | (blocks == 1)).all())
assert set(report.loc[report.status == "skipped", "layer"]) == {"cell.ih", "fc"}

# %% [markdown]
# Bigger blocks are cheaper to index but leave far fewer masks to choose from. The **mask diversity** (Hubara et
# al. 2021) of a 192×64 matrix at 80 % sparsity is C(#blocks, #kept) for blocks and C(12288, 2458) unstructured:

# %%
div = pd.DataFrame([{"structure": name, "log10 masks": log10_diversity(
    "block", shape=(192, 64), block=b, density=round(0.2 * 12288 / (b[0] * b[1])) / (12288 / (b[0] * b[1])))}
    for name, b in [("block1x1 (unstructured)", (1, 1)), ("block4x4", (4, 4)), ("block8x8", (8, 8)),
                    ("block16x16", (16, 16))]])
div

# %%
assert list(div["log10 masks"]) == sorted(div["log10 masks"], reverse=True)  # fewer masks as blocks grow

# %% [markdown]
# ## Block pruning on a schedule
#
# The schedule gives the fraction of the target sparsity reached at each step: flat, slope θ, slope 1.5 θ, and the
# target exactly at `end`.

# %%
start, ramp, end = int(0.1 * n_steps), int(0.4 * n_steps), int(0.7 * n_steps)
print([round(schedule_fraction(t, start, ramp, end), 3) for t in range(0, n_steps + 1, max(1, n_steps // 10))])
pruned = train_sparse(gru, "block4x4@80%", "block_pruning", steps=n_steps, lr=0.1, seed=seed, start=start,
                      ramp=ramp, end=end, prune_every=2, eval_every=0.25, progress=False)
pruned.table[["step", "test_acc", "sparsity", "target_sparsity", "ever_entered", "threshold"]].round(3)

# %%
at_end = pruned.table[pruned.table.step >= end]
print(f"sparsity at and after step {end}: {sorted(set(at_end.sparsity.round(6)))}")
assert pruned.layers.satisfies.all()
assert (at_end.sparsity - at_end.sparsity.iloc[0]).abs().max() == 0
assert (pruned.table[pruned.table.step < start].sparsity == 0).all()
mask_frames_figure(pruned.frames)

# %% [markdown]
# The mask of `cell.hh` above: drag the slider to watch whole 4×4 blocks disappear as the threshold rises.
#
# ## Group lasso
#
# The penalty λ Σ_g ‖w_g‖₂ has the gradient w_g / ‖w_g‖₂ on every block: a pull of the same size towards zero
# whatever the block's norm, which small blocks cannot resist. We compare two strengths; at 70 % of the steps the
# blocks below the threshold that leaves 80 % sparsity are zeroed and training continues with that mask.

# %%
lasso_runs = {lam: train_sparse(gru, "block4x4@80%", "group_lasso", lasso=lam, steps=n_steps, lr=0.1, seed=seed,
                                 eval_every=0.5, progress=False) for lam in (0.0, 1e-3)}
lasso_table = pd.DataFrame([{"lasso": lam, "test_acc": r.accuracy, "sparsity": r.sparsity,
                             "blocks near zero at the cut": r.config["near_zero_at_cut"]}
                            for lam, r in lasso_runs.items()])
lasso_table

# %%
assert lasso_table["blocks near zero at the cut"].iloc[1] >= lasso_table["blocks near zero at the cut"].iloc[0]
assert all(r.layers.satisfies.all() for r in lasso_runs.values())

# %% [markdown]
# ## Search spaces: fixed mask against augmented
#
# Same structure, same seed, same steps. With a fixed mask the search space is the first mask (the fraction of
# weights ever in the mask equals the density); the augmented run explores more weights.

# %%
runs = {m: train_sparse(gru, "2:4", m, steps=n_steps, lr=0.1, seed=seed, k=10, eval_every=0.5, progress=False)
        for m in ("fixed_mask", "augmented")}
table = pd.concat([r.table for r in runs.values()])
print({m: (round(r.accuracy, 3), round(r.ever_entered, 3)) for m, r in runs.items()})
search_space_figure(table)

# %%
assert runs["fixed_mask"].ever_entered == 0.5 and runs["augmented"].ever_entered > 0.5
assert all(satisfies(m, parse_format("2:4").sparsity) for r in runs.values() for m in r.masks.values())
accuracy_figure(table, dense=gru.evaluate()["accuracy"])

# %% [markdown]
# ## The benchmark
#
# `benchmarks/sparse_training.py` trains every structure × method for several seeds against the dense model trained
# by the same loop with the same budget; its runs are saved in `data/results/sparse_training.csv`. The summary:

# %%
csv = Path(workbench.__file__).resolve().parent.parent / "data" / "results" / "sparse_training.csv"
if csv.is_file():
    bench = pd.read_csv(csv)
    summary = (bench.groupby(["model", "structure", "method"], sort=False)
               .agg(sparsity=("sparsity", "mean"), ever_entered=("ever_entered", "mean"),
                    mean=("test_acc", "mean"), sd=("test_acc", "std"), seeds=("seed", "count")).reset_index())
    display(summary.round(4))
else:
    print("no benchmark results found: run python benchmarks/sparse_training.py")
