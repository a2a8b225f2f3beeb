"""Each bad input of the graph lab: a clear WorkbenchError subclass before any work, and nothing changed."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from workbench.errors import DataError, MemoryBudgetError, NonFiniteError, WorkbenchError
from workbench.graphs import (DCNN, Graph, diffuse, from_networkx, load_graph, make_sbm, memory_scaling,
                              node_classification, peak_memory)


def test_graph_without_nodes():
    with pytest.raises(DataError, match="no nodes"):
        from_networkx(nx.Graph(), labels=[])
    g = Graph("empty", sp.csr_matrix((0, 0)), np.zeros((0, 1)), np.zeros(0, dtype=int), ["a", "b"], "given")
    with pytest.raises(DataError, match="no nodes"):
        node_classification(g)


def test_graph_without_edges():
    with pytest.raises(DataError, match="no edges"):
        from_networkx(nx.empty_graph(5), labels=[0, 1, 0, 1, 0])
    g = Graph("isolated", sp.csr_matrix((4, 4)), np.eye(4), np.array([0, 1, 0, 1]), ["a", "b"], "given")
    with pytest.raises(DataError, match="no edges"):
        node_classification(g, method="label_propagation")
    with pytest.raises(DataError, match="no edges"):
        diffuse(sp.csr_matrix((4, 4)), np.eye(4), hops=1)


def test_labels_missing_for_nodes():
    gx = nx.karate_club_graph()
    del gx.nodes[5]["club"]
    with pytest.raises(DataError, match=r"1 of 34 nodes have no 'club'"):
        from_networkx(gx, label="club")
    with pytest.raises(DataError, match="labels missing"):
        from_networkx(nx.path_graph(3), labels={0: "a", 1: "b"})
    with pytest.raises(DataError, match="2 labels given for 3 nodes"):
        from_networkx(nx.path_graph(3), labels=["a", "b"])
    g = load_graph("karate")
    bad = Graph(g.name, g.adjacency, g.x, g.y[:-1], g.classes, g.labels)
    with pytest.raises(DataError, match="one entry per node"):
        node_classification(bad)


@pytest.mark.parametrize("hops", [-1, 1.5, True, "2"])
def test_bad_hops(hops):
    g = load_graph("karate")
    with pytest.raises(DataError, match="hops"):
        DCNN(hops, 34, 2)
    with pytest.raises(DataError, match="hops"):
        node_classification(g, hops=hops)
    with pytest.raises(DataError, match="hops"):
        diffuse(g.adjacency, g.x, hops=hops)


@pytest.mark.parametrize("threshold", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_threshold(threshold):
    g = load_graph("karate")
    with pytest.raises(DataError, match="threshold"):
        DCNN(2, 34, 2, threshold=threshold)
    with pytest.raises(DataError, match="threshold"):
        node_classification(g, threshold=threshold)
    with pytest.raises(DataError, match="threshold"):
        memory_scaling([100], threshold=threshold)


def test_features_with_nan_change_nothing():
    g = make_sbm(200, seed=1)
    g.x[3, 2] = np.nan
    x_before, y_before = g.x.copy(), g.y.copy()
    model = DCNN(2, g.x.shape[1], g.n_classes, threshold=0.01)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteError, match="NaN or inf on 1 of 200 nodes"):
        model.diffuse(g)
    with pytest.raises(NonFiniteError):
        node_classification(g, method=["logistic", "dcnn"])
    with pytest.raises(NonFiniteError):
        diffuse(g.adjacency, g.x, hops=1)
    assert model.memory == {} and all((model.state_dict()[k] == v).all() for k, v in state.items())
    np.testing.assert_array_equal(g.x, x_before)
    np.testing.assert_array_equal(g.y, y_before)


def test_dense_run_over_the_memory_is_refused_before_allocating():
    g = make_sbm(3000, seed=0)
    with peak_memory() as mem:
        with pytest.raises(MemoryBudgetError, match=r"estimated 103\.\d\d MiB .* more than the 976\.56 KiB") as info:
            node_classification(g, threshold=None, memory_limit=1_000_000)
    assert "threshold=" in str(info.value) and isinstance(info.value, WorkbenchError)
    assert mem["peak_bytes"] < 5_000_000  # the 3 × 3000² × 4 B = 108 MB kernel was never allocated
    model = DCNN(2, g.x.shape[1], g.n_classes)
    with pytest.raises(MemoryBudgetError, match="N=3000"):
        model.diffuse(g, memory_limit=10_000_000)
    assert model.memory == {}


def test_dense_run_beyond_the_machine_is_refused_by_default():
    n = 1_000_000  # a ring: building it is cheap, a dense kernel would need 3 × 10¹² × 4 bytes
    i = np.arange(n)
    ring = sp.csr_matrix((np.ones(n, dtype=np.float32), (i, (i + 1) % n)), shape=(n, n))
    with peak_memory() as mem:
        with pytest.raises(MemoryBudgetError, match=r"N=1000000 .* estimated 10\.91 TiB"):
            diffuse(ring + ring.T, np.zeros((n, 1), dtype=np.float32), hops=2)
    assert mem["peak_bytes"] < 50_000_000
    rows = memory_scaling([500], hops=2, threshold=0.01, dense_limit=1000)
    dense = rows.set_index("form").loc["dense"]
    assert dense["refused"] and dense["estimate_bytes"] > 1000


def test_unknown_names():
    with pytest.raises(DataError, match="unknown graph 'cora'"):
        load_graph("cora")
    with pytest.raises(DataError, match="method must be one of"):
        node_classification("karate", method="gcn")
    with pytest.raises(DataError, match="splits"):
        node_classification("karate", splits=0)
    with pytest.raises(DataError, match="train_fraction"):
        node_classification("karate", train_fraction=1.0)
