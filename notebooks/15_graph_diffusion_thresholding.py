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
# # Diffusion-convolutional networks and the O(N²) wall: thresholding the graph
#
# A **diffusion-convolutional neural network** (DCNN, Atwood & Towsley 2016) classifies the nodes of a graph from
# **diffusion features**: with `A` the adjacency matrix and `D` the diagonal of degrees, `P = D⁻¹A` is the
# random walk's transition matrix (row *i* = where one step from node *i* lands), and node *i* is described by the rows
# *i* of `P⁰X, P¹X, …, P^H X`: its own features, its neighbours' average, its 2-hop neighbourhood's weighted
# average, and so on. A learned weight per (hop, feature), a `tanh` and a dense layer give the class.
#
# The paper's form stores the **power series** `P* = [P⁰, …, P^H]` densely: `(H+1)·N²` numbers. That is the wall:
# 10⁴ nodes need about a gigabyte, 10⁵ about a hundred, 10⁶ about ten terabytes. **Thresholding** (Atwood, Pal,
# Towsley & Swami 2017, *Sparse Diffusion-Convolutional Neural Networks*) drops every diffusion entry below ε, here at
# every hop: `Q_h = T_ε(P·Q_{h-1})`. Because every row of `P^h` is a probability distribution, a row can keep at most
# `1/ε` entries, so memory is **O(N) per hop, provably**. This notebook checks each of these claims with a cell.
#
# Data: networkx's bundled real graphs (labels real only for the karate club; see below), and a **synthetic**
# stochastic block model (SBM) with Gaussian features, seeded, for every scaling experiment.

# %% tags=["parameters"]
# Parameters (papermill)
quick = None  # help: None = follow WORKBENCH_QUICK; True/False force quick mode (small sizes, 2 splits)
full = False  # help: also diffuse a 200,000-node synthetic graph with the thresholded kernel (about a minute)
hops = 2  # help: largest diffusion power H (features P^0 X ... P^H X)
threshold = 0.005  # help: ε of the thresholded diffusion (entries below it dropped at every hop)
seed = 0  # help: seed of the splits, the networks and the synthetic graphs

# %%
import numpy as np
import pandas as pd

from workbench.config import quick_mode
from workbench.errors import MemoryBudgetError
from workbench.graphs import (REAL_GRAPHS, accuracy_table, dense_bytes_estimate, diffuse, fit_slope, layout_tables,
                              load_graph, make_sbm, memory_scaling, node_classification, node_predictions,
                              transition_matrix)
from workbench.graphs.diffusion import format_bytes
from workbench.viz.graphs import accuracy_table_figure, graph_figure, memory_figure

quick = quick_mode(quick)
splits = 2 if quick else 5
epochs = 15 if quick else 30
sizes = [250, 500, 1000, 2000] if quick else [500, 1000, 2000, 4000]
print(f"quick={quick}: {splits} splits, {epochs} epochs, memory curves at N = {sizes}")

# %% [markdown]
# ## The graphs, and what their labels are
#
# Only the karate club has real labels in the sense of an outside truth: the faction each member joined after the
# club split. Davis' Southern women graph knows which nodes are women and which are events: real, but readable from
# the structure alone (the graph is bipartite). Les Misérables and the Florentine families ship with no node labels
# at all; the lab labels them by the graph's own greedy-modularity communities: *derived* labels, which measure
# agreement with a structural partition, not a ground truth. None of them has node features: `X` is the one-hot
# identity, so `P^h X = P^h`.

# %%
graphs = {name: load_graph(name) for name in REAL_GRAPHS}
pd.DataFrame([{"graph": g.name, "nodes": g.n_nodes, "edges": g.n_edges, "classes": g.n_classes,
               "labels": g.labels} for g in graphs.values()])

# %% [markdown]
# ## Diffusion features are powers of P
#
# `diffuse` returns the N × (H+1) × F tensor. On the karate club we compute `P^h` directly with NumPy's
# `matrix_power` and compare, for the dense reference and for the thresholded form at ε = 0 (nothing dropped).

# %%
g = graphs["karate"]
a = g.adjacency.toarray().astype(float)
p_direct = a / a.sum(axis=1, keepdims=True)
x = np.random.default_rng(seed).standard_normal((g.n_nodes, 4))
errors = []
for t in (None, 0.0):
    d = diffuse(g.adjacency, x, hops=3, threshold=t, dtype=np.float64)
    errors.append(max(np.abs(d.features[:, h] - np.linalg.matrix_power(p_direct, h) @ x).max() for h in range(4)))
print("largest difference from direct powers: dense %.1e, thresholded at ε=0 %.1e" % tuple(errors))
assert max(errors) < 1e-12

# %% [markdown]
# Where does one step, two steps, three steps of the walk from member 0 (Mr. Hi) land? The row spreads out with every
# hop, and its mass always sums to 1: this is what the `1/ε` bound rests on.

# %%
p = transition_matrix(g.adjacency)
row = np.zeros(g.n_nodes)
row[0] = 1.0
spread = []
for h in range(5):
    spread.append({"hop": h, "nonzero entries": int((row > 0).sum()), "entries ≥ 0.01": int((row >= 0.01).sum()),
                   "largest": row.max(), "row sum": row.sum()})
    row = p.T @ row
spread = pd.DataFrame(spread)
assert np.allclose(spread["row sum"], 1.0)
spread

# %% [markdown]
# ## Node classification on the real graphs
#
# DCNN (dense and thresholded) against two baselines: **label propagation** (Zhu & Ghahramani 2002: graph only) and
# **logistic regression on the features** (no graph). Accuracy is the mean over stratified splits with half the nodes
# for training; the DCNN is trained by the project's one `train` loop (SGD on mini-batches of nodes).
# With one-hot identity features a classifier on `X` alone has never seen a test node's feature, so it can only
# predict from its intercept; diffusion spreads the training nodes' identities to their neighbours.

# %%
rows = []
for name in ("karate", "les_miserables", "florentine", "davis"):
    rows.append(node_classification(name, method=["dcnn", "label_propagation", "logistic"], hops=hops,
                                    threshold=threshold, splits=splits, epochs=epochs, seed=seed))
    rows.append(node_classification(name, method="dcnn", hops=hops, threshold=None, splits=splits, epochs=epochs,
                                    seed=seed))
real = accuracy_table(pd.concat(rows, ignore_index=True))
acc = real.set_index(["graph", "method", "form"])["accuracy"]
assert acc["karate", "dcnn", "thresholded"] > acc["karate", "logistic", "features"] + 0.2
assert acc["karate", "label_propagation", "graph"] > acc["karate", "logistic", "features"] + 0.2
assert acc["davis", "label_propagation", "graph"] < 0.5 < 0.9 < acc["davis", "dcnn", "thresholded"]
accuracy_table_figure(real, title="Real graphs: accuracy over splits (labels: see the table above)")

# %% [markdown]
# On the karate club the DCNN and label propagation recover the factions from half the members; logistic regression on
# identity features stays near chance. On Davis' bipartite graph label propagation fails (a walk from a woman lands on
# an event every other step) while the DCNN, which weights each hop separately, reads the side from the hop pattern.
# Below: the karate club coloured by the DCNN's prediction (squares: training members; red rings: test errors).

# %%
preds = node_predictions("karate", method="dcnn", hops=hops, threshold=threshold, epochs=epochs, seed=seed)
graph_figure(*layout_tables("karate", preds, seed=seed))

# %% [markdown]
# ## The O(N²) wall
#
# The dense form's memory is known before anything is allocated: `(H+1)·N²` numbers plus the features. The lab
# refuses a dense run whose estimate exceeds the memory available (a `MemoryBudgetError` naming the estimate) instead
# of letting the machine swap or the kernel die.

# %%
wall = pd.DataFrame({"N": [10**3, 10**4, 10**5, 10**6]})
wall["dense estimate"] = [format_bytes(dense_bytes_estimate(n, hops, 16)) for n in wall["N"]]
print(wall.to_string(index=False))
big = make_sbm(1_000_000, seed=seed)  # synthetic; building it takes a few seconds, its edges ~100 MB
try:
    diffuse(big.adjacency, big.x, hops=hops)
    refused = None
except MemoryBudgetError as e:
    refused = str(e)
print(refused)
assert refused is not None and "estimated" in refused

# %% [markdown]
# ## Thresholding: O(N) memory
#
# Memory of the stored kernel against N on the synthetic SBM family (expected degree 10), dense and thresholded at
# ε. A log–log fit gives the exponent: 2 for dense, about 1 for thresholded. `bound_bytes` is the provable bound
# `(H+1)·N·min(N, 1/ε)` entries.

# %%
scaling = memory_scaling(sizes, hops=hops, threshold=threshold, seed=seed)
fits = fit_slope(scaling).set_index("form")
print(fits[["loglog_exponent", "bytes_per_node"]])
assert 1.9 < fits.loc["dense", "loglog_exponent"] < 2.1
assert 0.85 < fits.loc["thresholded", "loglog_exponent"] < 1.15
thr_rows = scaling[scaling.form == "thresholded"]
assert (thr_rows["kernel_bytes"] <= thr_rows["bound_bytes"]).all()
memory_figure(scaling)

# %% [markdown]
# And the accuracy it costs, on one synthetic graph where dense still fits: DCNN dense, thresholded at ε, and the
# baselines (this SBM's features carry some signal, so logistic regression is above chance but far below the graph
# methods).

# %%
n_acc = 1000 if quick else 3000
sbm = make_sbm(n_acc, seed=seed)
syn = pd.concat([
    node_classification(sbm, method=["dcnn", "label_propagation", "logistic"], hops=hops, threshold=threshold,
                        splits=splits, epochs=epochs, seed=seed),
    node_classification(sbm, method="dcnn", hops=hops, threshold=None, splits=splits, epochs=epochs, seed=seed),
], ignore_index=True)
syn_table = accuracy_table(syn)
sa = syn_table.set_index(["method", "form"])
gap = sa.loc[("dcnn", "dense"), "accuracy"] - sa.loc[("dcnn", "thresholded"), "accuracy"]
ratio = sa.loc[("dcnn", "dense"), "kernel_bytes"] / sa.loc[("dcnn", "thresholded"), "kernel_bytes"]
print(f"N={n_acc} (synthetic): dense − thresholded accuracy = {gap:+.3f}; dense kernel {ratio:.0f}× larger")
assert abs(gap) < 0.02 and ratio > 10
assert sa.loc[("dcnn", "thresholded"), "accuracy"] > sa.loc[("logistic", "features"), "accuracy"]
accuracy_table_figure(syn_table, title=f"Synthetic SBM, N={n_acc}: accuracy over splits")

# %% [markdown]
# ε is a dial between memory and accuracy: the sweep below re-diffuses the same graph at several thresholds (the
# dense run above is the reference). Larger ε keeps fewer entries per row (at most 1/ε) and, past some point, drops
# enough of the 2-hop neighbourhood to cost accuracy.

# %%
sweep = pd.concat([node_classification(sbm, method="dcnn", hops=hops, threshold=eps, splits=splits, epochs=epochs,
                                       seed=seed) for eps in (0.001, 0.005, 0.01, 0.05)], ignore_index=True)
sweep_table = accuracy_table(sweep)[["threshold", "accuracy", "accuracy_std", "kernel_bytes", "peak_bytes"]]
sweep_table["dense accuracy"] = sa.loc[("dcnn", "dense"), "accuracy"]
assert sweep_table["kernel_bytes"].is_monotonic_decreasing
sweep_table

# %% [markdown]
# ## Past the wall (optional)
#
# With `full = True` the thresholded kernel of a 200,000-node synthetic graph is computed (about a minute on two
# cores); its dense form would need the estimate printed. `benchmarks/graphs.py` goes to 10⁶ nodes and records
# times, peak memory and accuracy in `benchmarks/RESULTS.md`.

# %%
if full:
    g2 = make_sbm(200_000, seed=seed)
    d2 = diffuse(g2.adjacency, g2.x, hops=hops, threshold=threshold)
    print(f"N=200,000: thresholded kernel {format_bytes(d2.kernel_bytes)}, peak {format_bytes(d2.peak_bytes)}, "
          f"{d2.seconds:.1f} s; dense would need {format_bytes(dense_bytes_estimate(200_000, hops, 16))}")
    assert d2.kernel_bytes < 200_000 * 2000
