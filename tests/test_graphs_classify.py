"""Graphs, splits, label propagation and node_classification's table on networkx's bundled graphs and the SBM."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from workbench.graphs import (COLUMNS, accuracy_table, from_networkx, label_propagation, load_graph, make_sbm,
                              node_classification, stratified_split)


def test_real_graphs_and_their_labels():
    k = load_graph("karate")
    assert (k.n_nodes, k.n_edges, k.classes) == (34, 78, ["Mr. Hi", "Officer"])
    assert sorted(np.bincount(k.y).tolist()) == [17, 17] and k.labels.startswith("real")
    d = load_graph("davis")
    assert d.classes == ["event", "woman"] and np.bincount(d.y).tolist() == [14, 18]
    for name in ("les_miserables", "florentine"):
        g = load_graph(name)
        assert g.labels.startswith("derived") and g.n_classes >= 2 and not g.synthetic
    assert load_graph("les_miserables").n_nodes == 77 and load_graph("florentine").n_nodes == 15


def test_sbm_is_seeded_and_has_the_asked_degree_and_mixing():
    a, b, c = make_sbm(5000, seed=4), make_sbm(5000, seed=4), make_sbm(5000, seed=5)
    assert (a.adjacency != b.adjacency).nnz == 0 and np.array_equal(a.x, b.x)
    assert (a.adjacency != c.adjacency).nnz > 0
    assert a.synthetic and a.labels.startswith("synthetic")
    deg = a.adjacency.sum() / a.n_nodes
    assert 9.5 < deg < 10.1  # expected 10, a few duplicates dropped
    r, cidx = a.adjacency.nonzero()
    assert 0.27 < np.mean(a.y[r] != a.y[cidx]) < 0.33  # mixing 0.3
    assert (a.adjacency != a.adjacency.T).nnz == 0 and a.adjacency.diagonal().sum() == 0


def test_stratified_split_covers_every_class():
    y = np.array([0] * 10 + [1] * 3 + [2] * 2)
    tr, te = stratified_split(y, 0.5, seed=0)
    assert set(y[tr]) == {0, 1, 2} and set(y[te]) == {0, 1, 2}
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
    assert np.sum(y[tr] == 0) == 5


def test_label_propagation_on_two_cliques():
    g = nx.disjoint_union(nx.complete_graph(5), nx.complete_graph(5))
    g.add_edge(0, 5)
    y = np.array([0] * 5 + [1] * 5)
    gr = from_networkx(g, labels=y.tolist())
    pred = label_propagation(gr.adjacency, gr.y, np.array([1, 6]), 2)
    assert pred.tolist() == y.tolist()


def test_node_classification_table_on_karate():
    df = node_classification("karate", method=["dcnn", "label_propagation", "logistic"], hops=2, threshold=0.01,
                             splits=3, epochs=30)
    assert list(df.columns) == COLUMNS and len(df) == 9
    assert set(df.method) == {"dcnn", "label_propagation", "logistic"}
    assert (df.n_train + df.n_test == 34).all()
    t = accuracy_table(df).set_index("method")
    # one-hot identity features: a classifier on X alone cannot generalise to unseen nodes; diffusion can
    assert t.loc["dcnn", "accuracy"] >= 0.8 and t.loc["label_propagation", "accuracy"] >= 0.8
    assert t.loc["logistic", "accuracy"] <= 0.65
    assert (df[df.method == "dcnn"].kernel_bytes > 0).all() and (df.peak_bytes > 0).all()


def test_dcnn_beats_features_alone_on_the_sbm_and_thresholding_costs_little():
    g = make_sbm(1500, seed=0)
    df = node_classification(g, method=["dcnn", "logistic"], hops=2, threshold=None, splits=2, epochs=8)
    thr = node_classification(g, method="dcnn", hops=2, threshold=0.005, splits=2, epochs=8)
    acc = accuracy_table(df).set_index("method")["accuracy"]
    assert acc["dcnn"] > acc["logistic"] + 0.1
    assert abs(thr.accuracy.mean() - acc["dcnn"]) < 0.02
    assert thr.kernel_bytes.iloc[0] < df[df.method == "dcnn"].kernel_bytes.iloc[0] / 10
