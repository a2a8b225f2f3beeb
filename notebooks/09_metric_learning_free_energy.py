# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Metric learning by minimizing a free energy
#
# A k-nearest-neighbour classifier is only as good as its distance. A **linear metric** `L` (a `d × D` matrix)
# measures `‖Lx_i − Lx_j‖²` (the Mahalanobis distance with `M = LᵀL`); metric learning picks `L` from labelled
# data. This notebook follows Stosic, Stosic, Ludermir & Stosic 2021, *Distance Metric Learning through
# Minimization of the Free Energy* (arXiv 2106.05495): read the distances as a physical system, give it an energy,
# and search for `L` by Metropolis Monte Carlo at a temperature that is lowered (annealing).
#
# You will see: the NCA objective as an energy; temperature, Metropolis acceptance and the free energy
# `F = E − T·S`; the data being stretched and rotated while the chain runs; a constructed data set where gradient
# NCA stops in a spurious minimum and annealing does not; and an honest accuracy table against scikit-learn's NCA.

# %% tags=["parameters"]
quick = None  # None: follow workbench.config.quick_mode() (the test run sets it); True: small and fast
full = False  # True: the comparison on all four data sets and the digits-cnn features (several minutes)
seed = 0

# %%
import time

import numpy as np
import pandas as pd

from workbench.config import quick_mode
from workbench.metric import (compare_metrics, embedding_2d, fit_metric, load_dataset, metropolis_accept,
                              nca_energy, spurious_minimum_data)
from workbench.viz.metric import comparison_figure, embedding_figure, trace_figure

quick = quick_mode(quick)
t_notebook = time.perf_counter()


def standardized(name):
    X, y = load_dataset(name)
    sd = X.std(0)
    return (X - X.mean(0)) / np.where(sd > 0, sd, 1.0), y


print("quick mode" if quick else "default run")

# %% [markdown]
# ## 1 · NCA: the energy of a metric
#
# Neighbourhood Components Analysis (Goldberger et al. 2004) lets every sample `i` pick a neighbour `j` at random,
# with probability falling exponentially with distance:
#
# `p_ij = exp(−‖Lx_i − Lx_j‖²) / Σ_{k≠i} exp(−‖Lx_i − Lx_k‖²)`, and `p_ii = 0`.
#
# `f(L) = Σ_i Σ_{j: y_j = y_i} p_ij` is the expected number of samples this stochastic neighbour classifies
# correctly (leave one out). The free-energy view calls `E(L) = −f(L)` the **energy**: it lies between `−n` (every
# sample certain of a same-class neighbour) and `0`. Below, the energy of the identity map (plain Euclidean
# distance) on the standardized wine data, checked against the formula written out with loops.

# %%
X, y = standardized("wine")
E_id = nca_energy(X, y, np.eye(X.shape[1]))

Z = X[:40]
ref = 0.0
for i in range(len(Z)):
    w = np.array([np.exp(-np.sum((Z[i] - Z[j]) ** 2)) if j != i else 0.0 for j in range(len(Z))])
    ref += w[y[:40] == y[i]].sum() / w.sum()
assert abs(nca_energy(Z, y[:40], np.eye(X.shape[1])) + ref) < 1e-9
print(f"wine: n = {len(y)}, energy of the identity map E = {E_id:.2f} "
      f"(expected leave-one-out accuracy {-E_id / len(y):.3f})")

# %% [markdown]
# ## 2 · Temperature, Metropolis acceptance, free energy
#
# A Monte Carlo **move** changes `L` a little: it *stretches* one direction of the learned space (scales a row of
# `L`) or *rotates* the space in a random plane of input coordinates (a Givens rotation). The move changes the energy
# by `ΔE`; the Metropolis rule accepts it with probability `min(1, exp(−ΔE/T))`. Downhill moves are always taken;
# uphill ones are taken more often the hotter the system. At `T → 0` the chain only goes downhill (a greedy
# search); at `T → ∞` it accepts everything (a random walk).

# %%
dEs = [0.01, 0.1, 1.0, 10.0]
Ts = [1e-3, 0.1, 1.0, 100.0]
table = pd.DataFrame([[np.exp(-dE / T) if dE > 0 else 1.0 for T in Ts] for dE in dEs],
                     index=[f"ΔE = {d}" for d in dEs], columns=[f"T = {T}" for T in Ts])
rng = np.random.default_rng(0)
assert not any(metropolis_accept(1.0, 1e-300, u) for u in rng.random(1000))
assert all(metropolis_accept(1.0, float("inf"), u) for u in rng.random(1000))
table.style.format("{:.3g}")

# %% [markdown]
# While the chain runs at temperature `T` it samples maps with probability `∝ exp(−E/T)`: it does not only minimize
# the energy, it minimizes the **free energy** `F = ⟨E⟩ − T·S`, where the entropy `S` counts how many maps share an
# energy. Hot: entropy wins and the chain roams widely; cold: energy wins and it settles in a basin. The lab
# estimates `S` by thermodynamic integration along the cooling schedule (`dS = d⟨E⟩/T`), relative to the first
# temperature. Now a run on wine with a 2-D map (`dim = 2`), recording a frame after every temperature block.

# %%
frames = []
m = fit_metric(X, y, "free_energy", dim=2, steps=600 if quick else 3000, block=30, seed=seed, progress=False,
               on_step=lambda info: frames.append((info["step"], info["L"])))
print(m)
print(f"{m.info['moves']} moves, {m.info['moves_per_second']:.0f} moves/s, overall acceptance "
      f"{m.info['acceptance']:.2f}, T from {m.info['t_start']:.3g} down to {m.info['t_end']:.3g}")
assert m.energy < nca_energy(X, y, np.eye(2, X.shape[1]))  # better than the identity's first two rows
trace_figure(m.trace, title="wine, dim = 2: energy, temperature, acceptance")

# %% [markdown]
# The 2-D view while the space is stretched and rotated (press play; one frame per temperature block). The same
# view moves live in the widget at the end of the notebook.

# %%
import plotly.graph_objects as go

ref_xy = None
anim = []
for step, L in frames[:: max(1, len(frames) // 20)] + [frames[-1]]:
    df = embedding_2d(X, y, L, reference=ref_xy)
    ref_xy = df[["x", "y"]].to_numpy()
    anim.append((step, embedding_figure(df)))
fig = go.Figure(data=anim[0][1].data, frames=[go.Frame(data=f.data, name=str(s)) for s, f in anim])
lim = max(abs(np.concatenate([[t.x for t in f.data][0] for _, f in anim])).max(), 1.0)
fig.update_layout(title="wine under the learned 2-D map, as the chain cools", height=480,
                  xaxis=dict(range=[-1.1 * lim, 1.1 * lim]), yaxis=dict(range=[-1.1 * lim, 1.1 * lim]),
                  updatemenus=[dict(type="buttons", buttons=[dict(label="play", method="animate",
                                                                  args=[None, dict(frame=dict(duration=250))])])],
                  sliders=[dict(steps=[dict(label=str(s), method="animate", args=[[str(s)]]) for s, _ in anim])])
fig

# %% [markdown]
# ## 3 · Why annealing escapes a local minimum
#
# A constructed, seeded data set (synthetic): two classes in 2-D. Feature 1 is weakly informative (class means ±1
# with unit noise); feature 2 separates the classes perfectly (class 0 in tight clusters at ±6, class 1 at ±2), but
# only when one looks along it. We learn a 1-D map `L = r·(cos φ, sin φ)` started from the identity's first row
# (`φ = 0`, feature 1). The energy along `φ` (best over the scale `r`) has two basins with a barrier between them:
# rotating towards feature 2 first mixes the clusters.

# %%
Xs, ys, cons = spurious_minimum_data(seed=seed)
phis = np.linspace(0, np.pi / 2, 31)
scales = [0.5, 1, 2, 4, 8, 16]
landscape = pd.DataFrame({"phi_deg": np.degrees(phis),
                          "energy": [min(nca_energy(Xs, ys, r * np.array([[np.cos(p), np.sin(p)]])) for r in scales)
                                     for p in phis]})
go.Figure(go.Scatter(x=landscape.phi_deg, y=landscape.energy, mode="lines+markers")).update_layout(
    title="energy along the angle of a 1-D map (best scale)", xaxis_title="φ (degrees)", yaxis_title="E", height=350)

# %% [markdown]
# Gradient NCA (scikit-learn's L-BFGS) from the identity follows the slope at `φ = 0`: it stretches feature 1 and
# stops there. The annealed Monte Carlo starts from the same map. The same set also carries triplet constraints
# ("a is nearer its same-cluster partner than the other-class sample nearest to it along feature 1"), whose energy
# has the same two basins; with them, gradient NCA is L-BFGS on the same energy in torch. For reference, a quench
# (the same moves at a constant, tiny temperature: a greedy search) is in the table too.

# %%
rows, paths = [], {}
for label, c in [("labels only", None), ("labels + triplet constraints", cons)]:
    grad = fit_metric(Xs, ys, "nca", dim=1, constraints=c)
    quench = fit_metric(Xs, ys, "free_energy", dim=1, constraints=c, steps=800, schedule="constant",
                        t_start=1e-9, seed=seed, progress=False)
    path = []
    annealed = fit_metric(Xs, ys, "free_energy", dim=1, constraints=c, steps=800, block=20, seed=seed,
                          progress=False, on_step=lambda info, path=path: path.append(
                              dict(step=info["step"], energy=info["energy"], temperature=info["temperature"],
                                   phi_deg=float(np.degrees(np.arctan2(abs(info["L"][0, 1]),
                                                                       abs(info["L"][0, 0])))))))
    paths[label] = pd.DataFrame(path)
    for name, r in [("gradient NCA", grad), ("quench (T ≈ 0)", quench), ("annealed Monte Carlo", annealed)]:
        rows.append(dict(energy_terms=label, method=name, energy=r.energy,
                         angle_deg=float(np.degrees(np.arctan2(abs(r.L[0, 1]), abs(r.L[0, 0])))),
                         loo_accuracy=r.objective))
spur = pd.DataFrame(rows)
for label in spur.energy_terms.unique():
    s = spur[spur.energy_terms == label].set_index("method")
    assert s.loc["annealed Monte Carlo", "energy"] < s.loc["gradient NCA", "energy"] - 20
    assert s.loc["annealed Monte Carlo", "angle_deg"] > 60 > s.loc["gradient NCA", "angle_deg"]
    assert s.loc["quench (T ≈ 0)", "energy"] < s.loc["gradient NCA", "energy"] - 20  # large moves hop it too
spur.round(3)

# %% [markdown]
# How did the annealed chain get over the barrier? Follow its angle and energy block by block (labels only): while
# the temperature is high it accepts uphill moves, so its energy goes up as well as down from block to block, and its
# angle passes through the barrier region (20°–70°) before the chain cools in the deeper basin near 90°.

# %%
p = paths["labels only"]
E0 = nca_energy(Xs, ys, np.eye(1, 2))
assert (p.energy.diff() > 0).any()  # uphill from one block to the next: accepted uphill moves
assert ((p.phi_deg > 20) & (p.phi_deg < 70)).any()  # and through the barrier region
from plotly.subplots import make_subplots

f = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("angle φ of the map (degrees)", "energy E"))
f.add_scatter(x=p.step, y=p.phi_deg, mode="lines+markers", name="φ", row=1, col=1)
f.add_scatter(x=p.step, y=p.energy, mode="lines+markers", name="E", row=2, col=1)
f.add_hline(y=E0, line_dash="dot", annotation_text="start energy", row=2, col=1)
f.update_layout(height=450, title="annealed chain on the two-basin set")

# %% [markdown]
# The annealed chain ends near `φ = 90°` (feature 2) with a much lower energy than gradient NCA, which stays near
# `φ = 0`. Early on, `T` is comparable to the barrier's height, so uphill moves are accepted and the chain crosses
# it; by the time `T` is small the chain sits in the deeper basin. (The quench row shows what the moves do without
# temperature: moves as large as these, 0.3 rad, can hop a barrier that is narrow in angle, so a greedy Monte
# Carlo search is not the same as a gradient method either.)
#
# ## 4 · Accuracy against the learners you know
#
# `compare_metrics` fits every method on the same repeated stratified 70/30 splits (standardized with the training
# part's statistics) and scores a 3-nearest-neighbour classifier in the learned space; it reports accuracy mean ±
# sd, fit time and a paired t-test against scikit-learn's NCA. LMNN and ITML come from the optional `metric-learn`
# package; where it cannot run beside the installed scikit-learn, the table says so. The default run uses iris,
# wine and breast cancer on 3 splits (under a minute); `full = True` adds digits and the digits-cnn penultimate
# features under dense / int4 / binary weights on 5 splits (several minutes; `benchmarks/metric.py` records that
# run in `benchmarks/RESULTS.md`).

# %%
if full:
    sets = ["iris", "wine", "breast_cancer", "digits"]
    sets = {**{s: s for s in sets}, **{f"digits-cnn:{f}": f"digits-cnn:{f}" for f in ("dense", "int4", "binary")}}
    splits, steps = 5, 2000
elif quick:
    sets, splits, steps = ["iris", "wine"], 2, 300
else:
    sets, splits, steps = ["iris", "wine", "breast_cancer"], 3, 2000
cmp = compare_metrics(sets, ["euclidean", "nca", "free_energy", "lmnn", "itml"], k=3, splits=splits, seed=seed,
                      options={"free_energy": {"steps": steps}}, progress=False)
ok = cmp[cmp.status == "ok"]
assert set(ok.method) >= {"euclidean", "nca", "free_energy"}
assert ok.accuracy_mean.between(0.5, 1.0).all()
shown = cmp.drop(columns=["accuracies"]).copy()
shown["status"] = shown["status"].str.slice(0, 120)
shown.round(4)

# %%
comparison_figure(cmp)

# %% [markdown]
# Read the table with its spread: the standard deviation over splits is the scale of the noise, and a difference
# smaller than one sd is a tie (the paired p-value says the same with the splits matched). The free-energy
# search spends its time differently from L-BFGS: thousands of cheap moves, each costing one pass over the
# distance matrix (the energy change of a move is computed from a rank-1 or rank-2 update of the distances), instead
# of a few dozen gradient evaluations.

# %% [markdown]
# ## 5 · The widget
#
# The same lab as a view (also a tab of the dashboard): pick a data set (including the digits-cnn features of the
# model you pass), a method, the number of steps and the schedule; press fit and watch the 2-D view move while the
# chain runs; cancel keeps the best map so far; compare methods fills the table.

# %%
from workbench.widgets.metric import MetricView

view = MetricView(None, steps=300 if quick else 2000)
view.ui

# %%
print(f"notebook ran in {time.perf_counter() - t_notebook:.1f} s")
