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
# # Adaptive sampling with a Nadaraya–Watson sketch
#
# Plain SGD looks at every training sample equally often. **Importance sampling** picks the samples that matter more
# (typically: those with a high loss) more often and weights each picked loss by `1/(N·p_i)`, so the weighted batch
# loss stays an **unbiased** estimate of the full training loss. The question is where the scores come from:
#
# * **static** scores are computed once, before training, from a cheap proxy (here the out-of-fold loss of a
#   logistic regression). They cost nothing during training but cannot follow what the network has already learnt;
# * **dynamic** scores are the network's own current losses. Computing them explicitly (the `loss` sampler scores a
#   candidate pool with an extra forward pass every step) is accurate but slows training down end to end.
#
# "Adaptive Sampling for Deep Learning via Efficient Nonparametric Proxies" (arXiv 2311.13583) gets dynamic scores
# without extra forward passes: it **regresses the loss over the inputs** with a Nadaraya–Watson (NW) estimator, fed
# by the losses the training step computes anyway, and it approximates that estimator with a **sketch** of
# locality-sensitive hash tables whose cost per sample is constant. This notebook builds that up on real data
# scikit-learn ships, with `workbench.hashing` and `workbench.sampling`.

# %% tags=["parameters"]
# Parameters (papermill)
dataset = "digits-mlp"  # help: "digits-mlp", "digits-cnn", "breast-cancer" or "wine"
quick = None  # help: None = follow WORKBENCH_QUICK; True/False force quick mode (1 short run per sampler)
full = False  # help: 3 seeds x 6 epochs per sampler instead of 1 seed x 3 epochs (about 6x longer)
K = 8  # help: bits per hash table (SimHash)
L = 32  # help: number of hash tables of the sketch
seed = 0  # help: seed of the network, the samplers and the hash functions

# %%
import time

import numpy as np
import pandas as pd
import torch

from workbench.config import quick_mode
from workbench.hashing import LSHTables, SimHash
from workbench.sampling import (
    compare_samplers,
    sampling_handle,
    sketch_error,
    sketch_vs_exact,
    static_scores,
    training_losses,
)
from workbench.viz.sampling import (
    accuracy_time_figure,
    favoured_figure,
    sketch_error_figure,
    sketch_scatter_figure,
    weight_histogram_figure,
)

quick = quick_mode(quick)
handle = sampling_handle(dataset)
x, y = handle.train_data()
N = len(x)
epochs, seeds = (1, (seed,)) if quick else ((6, (seed, seed + 1, seed + 2)) if full else (3, (seed,)))
print(f"{dataset}: {N} training samples; quick={quick}: {epochs} epochs x {len(seeds)} seed(s) per sampler")

# %% [markdown]
# ## Static scores: a proxy fitted before training
#
# The static sampler's score of a sample is the cross-entropy a logistic regression gives it when the sample is held
# out of the regression's training fold. The samples it finds hard stay "hard" for the whole training run.

# %%
static = static_scores(x, y, seed=seed)
print(f"static scores: median {np.median(static):.3g}, max {static.max():.3g}; "
      f"{(static > 1).mean():.1%} of the samples above 1 nat")
top = np.argsort(-static)[:12]
frame = pd.DataFrame({"index": top, "weight": static[top] / static.sum(), "label": y[top].numpy()})
if x[0].numel() == 64:
    frame["pixels"] = [x[i].reshape(-1).numpy() for i in top]
favoured_figure(frame, title="What the static proxy finds hardest (tile size ∝ score)")

# %% [markdown]
# ## Dynamic scores by Nadaraya–Watson regression
#
# The losses the network has computed on some samples tell us about the losses of *similar* samples. The NW
# estimator predicts the loss at `x` as a kernel-weighted mean of the observed losses,
#
# $$\hat\ell(x) = \frac{\sum_i k(x, x_i)\,\ell_i}{\sum_i k(x, x_i)},$$
#
# and the kernel used here is the **collision probability** of a locality-sensitive hash: for SimHash (signed random
# projections) with K bits, $k(x, x') = (1 - \theta(x, x')/\pi)^K$, θ the angle between the (centred) inputs.
#
# We train a network for a few uniform steps, observe the losses of a random half of the training set, and ask how
# well each score ranks the losses of the *other* half (Spearman correlation with the true current loss).

# %%
features, losses = training_losses(handle, steps=40 if quick else 80, seed=seed)
gen = torch.Generator().manual_seed(seed)
seen = torch.rand(N, generator=gen) < 0.5
nw = sketch_vs_exact(features, losses, K=K, L=L, seed=seed, seen=seen)
held = ~seen.numpy()
truth = pd.Series(losses.numpy()[held])
rho_nw = truth.corr(pd.Series(nw["exact"].to_numpy()[held]), method="spearman")
rho_static = truth.corr(pd.Series(static[held]), method="spearman")
print(f"Spearman correlation with the current loss on held-out samples: NW (exact) {rho_nw:.3f}, "
      f"static proxy {rho_static:.3f}")
assert rho_nw > 0.3, rho_nw  # the NW regression carries real information about unseen samples' losses

# %% [markdown]
# The NW regression of the network's *current* losses predicts the losses of samples it has not observed; the
# correlations printed above compare it with the static proxy on the same held-out samples.

# %% [markdown]
# ## Why the sketch is cheap
#
# The exact estimator needs the kernel between every pair of samples: `O(N²)` to refresh all scores. The sketch
# keeps L hash tables; bucket `b` of table `l` stores the sum of the losses and the count of the samples that hash
# there. The mean over tables of the sums in a query's buckets is an unbiased estimate of
# $\sum_i k(x, x_i)\ell_i$, and the same holds for the counts, so their ratio estimates $\hat\ell(x)$. Adding or
# changing a loss touches L buckets; scoring a sample reads L buckets: both independent of N.

# %%
fam = SimHash(features.shape[1], K=K, L=L, seed=seed)
tables = LSHTables(fam)
centred = features - features.mean(0)
t0 = time.perf_counter()
tables.add(centred[seen], losses[seen])
est = tables.estimate(centred)
t_sketch = time.perf_counter() - t0
from workbench.sampling import collision_kernel  # noqa: E402

t0 = time.perf_counter()
kern = collision_kernel(fam, centred, centred[seen])
exact = (kern @ losses[seen]) / kern.sum(1)
t_exact = time.perf_counter() - t0
rel = float(((est - exact).abs() / exact).mean())
print(f"build + query all {N} samples: sketch {1e3 * t_sketch:.2f} ms, exact {1e3 * t_exact:.2f} ms; "
      f"mean relative error of the sketch {rel:.3f}")
sketch_scatter_figure(nw)

# %% [markdown]
# Each estimate is a mean over L independent tables, so its typical error shrinks like $1/\sqrt{L}$ and the
# probability of an error above any fixed ε falls exponentially in L (Hoeffding). The curve below measures the mean
# relative error against the exact estimator on these real losses.

# %%
err = sketch_error(losses=(features, losses), tables=(1, 4, 16, 64), hash_seeds=range(3), K=K, seed=seed)
curve = err.groupby("L")["mean_rel_error"].mean()
print(curve.round(4).to_string())
assert curve.is_monotonic_decreasing and curve[64] < 0.5 * curve[1]
sketch_error_figure(err)

# %% [markdown]
# ## What it does to training
#
# Every sampler now trains the same architecture from the same initialisation, with the same learning rate and
# number of steps; the loss of each sampled batch is importance-weighted. `uniform` draws batches of distinct
# samples uniformly; the adaptive samplers mix a uniform floor of 10 % into their scores. Time is training wall
# time without the evaluations.

# %%
comparison = compare_samplers(handle, seeds=seeds, epochs=epochs, sampler_kw={"nw_sketch": {"K": K, "L": L},
                                                                               "nw": {"K": K}})
tta = comparison.time_to_accuracy()
costs = comparison.costs.groupby("sampler", sort=False)[["sampler_seconds", "fraction"]].mean()
summary = tta.set_index("sampler").join(costs)
summary

# %%
target = float(tta["target"].iloc[0])
accuracy_time_figure(comparison.table, target=target,
                     title=f"{dataset}: test accuracy vs training time (dotted: uniform's final accuracy)")

# %% [markdown]
# The table reads: `reached` is how many seeds reached the uniform sampler's final accuracy, `steps`/`seconds`
# when they first did, `× uniform time` the seconds relative to uniform's, `sampler_seconds` the sampler's own
# cost per step and `fraction` its share of the training time. The `loss` sampler pays a forward pass over a pool of
# 4 × the batch every step; the sketch's update and query are gathers and scatter-adds over L buckets per sample.

# %%
assert summary.loc["loss", "sampler_seconds"] > summary.loc["nw_sketch", "sampler_seconds"], summary
print(f"sampler cost per step: loss {1e3 * summary.loc['loss', 'sampler_seconds']:.2f} ms, nw_sketch "
      f"{1e3 * summary.loc['nw_sketch', 'sampler_seconds']:.2f} ms, nw (exact) "
      f"{1e3 * summary.loc['nw', 'sampler_seconds']:.2f} ms")

# %% [markdown]
# ## Which samples the sketch favours, and how its weights evolve
#
# After training, the sketch's heaviest samples (tile size ∝ sampling probability), and the spread of `N·p_i`
# (1 = uniform) at every evaluation.

# %%
sk = comparison.samplers[("nw_sketch", seeds[0])]
p = sk.weights().numpy()
top = np.argsort(-p)[:24]
frame = pd.DataFrame({"index": top, "weight": p[top], "label": y[top].numpy()})
if x[0].numel() == 64:
    frame["pixels"] = [x[i].reshape(-1).numpy() for i in top]
print(f"max N·p = {N * p.max():.2f}, min N·p = {N * p.min():.2f} (floor {sk.floor})")
assert N * p.min() >= sk.floor - 1e-9
favoured_figure(frame, title="nw_sketch: the samples favoured at the end of training")

# %%
snaps = comparison.snapshots
weight_histogram_figure(snaps[(snaps.sampler == "nw_sketch") & (snaps.seed == seeds[0])])

# %% [markdown]
# The benchmark (`benchmarks/sampling.py`, results in `benchmarks/RESULTS.md`) runs every sampler on the four data
# sets with three seeds and reports where the sketch reaches the uniform sampler's accuracy sooner and where it does
# not. The dashboard's **sampling** tab (`workbench.widgets.sampling.SamplingView`) runs the same comparison on the
# loaded model's data interactively.
