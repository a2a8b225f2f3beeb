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
# # 06 · How far do the weights travel? Random walks, and closing the large-batch gap
#
# Hoffer, Hubara & Soudry, *Train longer, generalize better: closing the generalization gap in large batch training of
# neural networks* (NeurIPS 2017) make two observations and one proposal:
#
# 1. During training the distance of the weights from their initialization, ‖w_t − w_0‖, grows **logarithmically**
#    with the number of updates t, not like the √t of a free random walk.
# 2. That is what a random walk on a **random potential** does: if the loss has increments
#    E[(L(w₁) − L(w₂))²] ~ ‖w₁ − w₂‖^α, reaching a distance r means crossing barriers of height ~ r^(α/2), which takes
#    a time ~ exp(r^(α/2)), so r ~ (log t)^(2/α) ("ultra-slow diffusion", Bouchaud & Georges 1990; Sinai 1982 for α = 1).
# 3. Large batches make **fewer updates** per epoch, so they simply do not get as far; the "generalization gap" of large
#    batches is then largely a matter of the *training regime*: scale the learning rate by √(B/b) (keeping the noise
#    of the updates), use **Ghost Batch Norm** (BatchNorm statistics over small ghost batches inside the large one), and
#    **adapt the regime**: train for B/b times more epochs so the number of updates matches the small batch.
#
# This notebook puts the statistical model beside a measurement on the bundled digits CNN, then runs the small-batch,
# large-batch and large-batch + recipe comparison over several seeds and reports what happens, whatever it is.
# Run top to bottom. Three sizes:
#
# | run | distance run | comparison | walks | time on 2 cores |
# |---|---|---|---|---|
# | `quick = True` (CI, `WORKBENCH_QUICK=1`) | 300 steps | B = 256, 2 epochs, 1 seed | 20,000 steps × 200 dims | ≈ 30 s |
# | default | 1,200 steps | B = 256, 3 epochs, 2 seeds | 100,000 steps × 500 dims | ≈ 1–2 min |
# | **`full = True`** | 6,000 steps | B = 512, 10 epochs, 3 seeds | 200,000 steps × 1,000 dims | **≈ 10–15 min** |
#
# Any size parameter set explicitly below overrides the run's choice.

# %% tags=["parameters"]
quick = None  # help: None: follow WORKBENCH_QUICK; True: small, fast runs (CI); False: the default run (1-2 min)
full = False  # help: the full experiment (10-15 min on 2 cores): 6000 steps, B=512, 10 epochs, 3 seeds, 200k-step walks
seed = 0  # help: seed of the distance run and of the simulated walks; regime runs use seeds 0..n_seeds-1
model = "digits-cnn"  # help: bundled model to train (digits-cnn has BatchNorm, needed for Ghost BN)
batch_size = 32  # help: batch of the distance-from-initialization run
lr = 0.05  # help: SGD learning rate for the small batch (momentum 0.9)
sampler = "uniform"  # help: data sampler of the distance run: uniform, static, loss, nw, nw_sketch (workbench.sampling)
steps = None  # help: updates of the distance run; None: 300 quick / 1200 default / 6000 full
small_batch = 32  # help: small batch b of the comparison
large_batch = None  # help: large batch B; None: 256 quick and default / 512 full
epochs = None  # help: epoch budget of the small batch; None: 2 quick / 3 default / 10 full
n_seeds = None  # help: seeds per regime; None: 1 quick / 2 default / 3 full
alpha = 1.0  # help: roughness of the random landscape, 0 < alpha < 2 (theory: distance ~ (log t)^(2/alpha))
walk_steps = None  # help: steps of the simulated walks; None: 20000 quick / 100000 default / 200000 full

# %%
import pandas as pd
import plotly.io as pio
import torch

import workbench
from workbench.checks import option
from workbench.config import quick_mode
from workbench.dynamics import (compare_regimes, fit_growth, predict_growth, simulate_walk, summarize_regimes,
                                train)
from workbench.sampling import SAMPLERS, make_sampler
from workbench.viz.dynamics import accuracy_figure, distance_figure, metrics_figure, walk_figure

torch.set_num_threads(1)  # a small CNN: one thread is as fast, and two stall on a busy 2-core machine
quick = quick_mode(quick)
option("sampler", sampler, tuple(SAMPLERS), where="notebook 06")  # a bad name is refused before any work
size = "quick" if quick else ("full" if full else "default")
pick = lambda q, d, f: {"quick": q, "default": d, "full": f}[size]  # noqa: E731
steps = steps or pick(300, 1200, 6000)
large_batch = large_batch or pick(256, 256, 512)
epochs = epochs or pick(2, 3, 10)
n_seeds = n_seeds or pick(1, 2, 3)
walk_steps = walk_steps or pick(20_000, 100_000, 200_000)
walk_dim = pick(200, 500, 1000)
handle = workbench.load_model(model)
print(f"{size} run: distance run {steps} steps at batch {batch_size}; comparison b={small_batch} vs "
      f"B={large_batch}, {epochs} epochs, {n_seeds} seed(s); walks {walk_steps} steps in {walk_dim} dimensions")

# %% [markdown]
# ## 1 · The two statistical models
#
# `simulate_walk` implements both walkers (see `workbench/dynamics/walks.py` for the exact model):
#
# * **free**: a Gaussian random walk, w_{t+1} = w_t + ξ_t. Then E‖w_t − w_0‖² ∝ t: distance ~ √t.
# * **random landscape**: a Metropolis walker on a separable random potential L(w) = Σᵢ Vᵢ(wᵢ), one independent
#   fractional Brownian motion Vᵢ per coordinate with Hurst exponent α/2, sampled exactly on a lattice, so
#   E[(L(w₁) − L(w₂))²] = Σᵢ|Δᵢ|^α ~ ‖Δ‖^α. Each coordinate is then a Sinai-type walker trapped by ever deeper valleys.
#
# `fit_growth` fits a + b·log t, a + b·(log t)^β, a + b·√t and a + b·t^γ (relative least squares on log-spaced
# points), and names the best by AIC (with an effective sample size, because the points of one path are correlated).
# Each curve below is divided by its final value so both fit on one axis.

# %%
walks = pd.concat([
    simulate_walk("free", dim=walk_dim, steps=walk_steps, seed=seed, progress=False),
    simulate_walk("random_landscape", dim=walk_dim, steps=walk_steps, alpha=alpha, temperature=0.5, seed=seed,
                  progress=False),
], ignore_index=True)
walk_fits, walk_curves = [], []
for kind, part in walks.groupby("kind", sort=False):
    f = fit_growth(part)
    walk_fits.append(f.assign(kind=kind, best_law=f.attrs["best"]))
    walk_curves.append(predict_growth(f, part["step"], models=[f.attrs["best"]]).assign(kind=kind))
walk_fits = pd.concat(walk_fits, ignore_index=True)
walk_figure(walks, pd.concat(walk_curves, ignore_index=True)).show()
walk_fits[["kind", "model", "exponent", "r2", "delta_aic", "best"]].round(4)

# %%
for kind, f in walk_fits.groupby("kind", sort=False):
    best = f.loc[f["best"]].iloc[0]
    beta = f.set_index("model").loc["log^β", "exponent"]
    print(f"{kind:>17}: best law {best['model']:>6} (R² = {best['r2']:.4f}); fitted (log t)^β exponent β = {beta:.2f}"
          + (f" vs theory 2/α = {2 / alpha:.2f}" if kind == "random_landscape" else ""))
# the two models of section 1: the free walk grows like a power ≈ √t, the walk on the landscape like a power of log t
fw = walk_fits[walk_fits.kind == "free"].set_index("model")
assert fw.loc[fw["best"]].index[0] in ("sqrt", "power") and abs(fw.loc["power", "exponent"] - 0.5) < 0.1
assert walk_fits[walk_fits.kind == "random_landscape"].set_index("model")["best"][["log", "log^β"]].any()

# %% [markdown]
# ## 2 · The measurement: ‖w_t − w_0‖ while the digits CNN trains
#
# `train` trains a **fresh copy** of the bundled architecture (re-initialised with `seed`; the handle's model is not
# touched) with SGD at a constant learning rate, and a `WeightDistanceTracker` records the distance from the initial
# point per layer and in total at log-spaced steps. The same four laws are fitted to the total. The paper saw log t on
# CIFAR/ImageNet networks trained for hundreds of thousands of updates; digits is tiny and its training loss reaches
# almost zero within a few epochs. During the first epoch the weights move almost ballistically (the gradient keeps
# its direction, distance ∝ t), so the fits are shown from the end of the first epoch on, with relative residuals (each
# decade weighs the same) and unweighted (what a linear y-axis shows); the first table row set fits every step.
#
# The parameter `sampler` picks how the distance run draws its batches (`workbench.sampling`, the adaptive sampling
# lab of notebook 10): `"uniform"` (default) is `train`'s own stream, a fresh random permutation every epoch, so the
# numbers are those of the plain loop; `"static"`, `"loss"`, `"nw"` and `"nw_sketch"` draw each batch with
# probabilities from a proxy fitted before training, from explicit losses of a candidate pool, from the exact
# Nadaraya–Watson estimate of the loss or from its LSH sketch (arXiv 2311.13583), and weight the per-sample losses by
# importance weights so the batch loss stays an unbiased estimate of the mean. Only the distance run uses it; the
# regime comparison of section 3 keeps the permutation stream.

# %%
if sampler == "uniform":
    distance_sampler = None  # train's permutation stream (make_sampler("uniform") draws i.i.d. batches instead)
else:
    distance_sampler = make_sampler(sampler, *handle.train_data(), seed=seed)
run = train(handle, batch_size=batch_size, lr=lr, steps=steps, seed=seed, eval_every=max(1.0, steps / 45 / 20),
            progress=not quick, sampler=distance_sampler)
assert run.config.get("sampler", "uniform") == sampler  # the parameter reached the training loop
epoch_steps = len(handle.train_data()[1]) / batch_size  # updates per epoch
fits_all = fit_growth(run.distances)
fits = fit_growth(run.distances, t_min=epoch_steps)  # after the first epoch
fits_abs = fit_growth(run.distances, t_min=epoch_steps, relative=False)
curves = predict_growth(fits, sorted(s for s in run.distances["step"].unique() if s >= epoch_steps))
distance_figure(run.distances, curves=curves, fits=fits,
                title=f"{model}: distance from initialization, batch {batch_size}, lr {lr}, {sampler} sampler "
                      "(fits: t ≥ 1 epoch)").show()
fin = run.final()
print(f"final: test accuracy {fin['test_acc']:.4f}, train loss {fin['train_loss']:.2e} after {run.steps} steps; "
      f"best law over all steps: {fits_all.attrs['best']}, after the first epoch: {fits.attrs['best']} "
      f"(unweighted: {fits_abs.attrs['best']})")
pd.concat([fits_all.assign(fit="all steps, relative"), fits.assign(fit="t ≥ 1 epoch, relative"),
           fits_abs.assign(fit="t ≥ 1 epoch, unweighted")])[["fit", "model", "exponent", "r2", "delta_aic", "best"]].round(4)

# %% [markdown]
# Per layer: which law fits each layer's distance best after the first epoch (one row per layer).

# %%
rows = []
for layer in run.distances["layer"].unique():
    f = fit_growth(run.distances, layer=layer, t_min=epoch_steps).set_index("model")
    rows.append({"layer": layer, "best law": f.attrs["best"], "R² log": f.loc["log", "r2"],
                 "R² √t": f.loc["sqrt", "r2"], "R² best": f.loc[f.attrs["best"], "r2"],
                 "final distance": run.distances.query("layer == @layer")["distance"].iloc[-1]})
pd.DataFrame(rows).round(4)

# %% [markdown]
# ## 3 · Small batch, large batch, and the recipe
#
# Five regimes from the same seeded initializations (`compare_regimes`):
#
# | regime | batch | lr | BatchNorm | epochs |
# |---|---|---|---|---|
# | small | b | lr | BN | E |
# | large | B | lr | BN | E |
# | large+LR | B | lr·√(B/b) | BN | E |
# | large+LR+GBN | B | lr·√(B/b) | ghost batches of b | E |
# | large+LR+GBN+RA | B | lr·√(B/b) | ghost batches of b | E·B/b (same number of updates as small) |
#
# The table reports final test accuracy as mean ± std over the seeds (sample std; 0 with one seed). Digits has only
# 1,437 training images, so a large batch is a sizeable fraction of the data set: the numbers are what was measured.

# %%
runs = compare_regimes(handle, small_batch=small_batch, large_batch=large_batch, epochs=epochs, lr=lr,
                       seeds=range(n_seeds), progress=not quick)
table = summarize_regimes(runs)
accuracy_figure(runs).show()
table[["regime", "batch_size", "seeds", "steps", "test_acc", "train_acc_mean", "distance_mean"]].round(4)

# %%
acc = table.set_index("regime")["test_acc_mean"]
print(f"small − large:            {100 * (acc['small'] - acc['large']):+.2f} points of test accuracy")
print(f"small − large+LR+GBN+RA:  {100 * (acc['small'] - acc['large+LR+GBN+RA']):+.2f} points")
print(f"distance travelled (mean): small {table.set_index('regime').loc['small', 'distance_mean']:.2f}, large "
      f"{table.set_index('regime').loc['large', 'distance_mean']:.2f}, large+RA "
      f"{table.set_index('regime').loc['large+LR+GBN+RA', 'distance_mean']:.2f}")
# the claim of the next cell: fewer updates, less distance; the adapted regime gets both back
by = table.set_index("regime")
assert by.loc["large", "steps"] < by.loc["small", "steps"] <= by.loc["large+LR+GBN+RA", "steps"] * 1.01
assert by.loc["large", "distance_mean"] < by.loc["small", "distance_mean"]
assert by.loc["large+LR+GBN+RA", "distance_mean"] > by.loc["large", "distance_mean"]

# %% [markdown]
# The last line connects the two halves: with the same number of epochs the large batch makes B/b times fewer updates
# and ends **closer to its initialization**; regime adaptation gives it back the updates, and with them the distance.
#
# ## 4 · Live
#
# `DynamicsView(handle).ui` trains in a background thread and draws the distance curves while they are recorded, with a
# stop button and the fitted laws overlaid at the end; its second tab runs the comparison above. The same switches as
# `train` are there: Ghost BN, lr scaling, batch augmentation (Hoffer et al. 2019: each sample M times with different
# shifts and noise in one batch) and a fixed Hadamard classifier (Hoffer et al. 2018).

# %%
from workbench.widgets.dynamics import DynamicsView

view = DynamicsView(handle, quick=quick)
view.ui
