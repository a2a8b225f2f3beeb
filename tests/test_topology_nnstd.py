"""NNSTD: tie-exact definition against brute force, the published algorithm, invariances and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from workbench.errors import DataError, ShapeError
from workbench.topology import (
    jaccard_distance_matrix,
    nnstd,
    nnstd_matrix,
    nnstd_published,
    optimal_matching_classes,
    topology_of,
)


# ---------------------------------------------------------------------------------------------------- helpers
def random_net(sizes, density, rng, dup=0, empty=0):
    """Random 0/1 masks; in every hidden layer, ``dup`` neurons copy another's inputs and ``empty`` have none."""
    masks = [(rng.random((o, i)) < density).astype(np.int8) for i, o in zip(sizes[:-1], sizes[1:])]
    for k in range(len(masks) - 1):
        m = masks[k]
        n = m.shape[0]
        rows = rng.permutation(n)
        for t in range(dup):
            m[rows[t]] = m[rows[dup + t]]
        for t in range(empty):
            m[rows[2 * dup + t]] = 0
    return masks


def permute_hidden(masks, rng):
    """The same network with the neurons of every hidden layer shuffled."""
    out = [m.copy() for m in masks]
    for k in range(len(out) - 1):
        p = rng.permutation(out[k].shape[0])
        out[k] = out[k][p]
        out[k + 1] = out[k + 1][:, p]
    return out


def brute_classes(d, tol=1e-9):
    """Tie classes by enumeration: components of the union of all optimal permutations' pairs."""
    n = d.shape[0]
    perms = list(itertools.permutations(range(n)))
    costs = np.array([d[np.arange(n), p].sum() for p in perms])
    best = costs.min()
    parent = list(range(2 * n))  # rows 0..n-1, columns n..2n-1

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p, c in zip(perms, costs):
        if c <= best + tol:
            for i, j in enumerate(p):
                parent[find(i)] = find(n + j)
    roots = [find(x) for x in range(2 * n)]
    return best, roots


def same_partition(a, b):
    a, b = list(a), list(b)
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def brute_nnstd(a, b):
    """Reference of the tie-exact definition by enumeration (tiny nets): classes from all optimal matchings,
    weighted Jaccard of class counts, computed with Python loops."""
    n_in = a[0].shape[1]
    cls_a, cls_b = list(range(n_in)), list(range(n_in))
    out = []
    for ma, mb in zip(a, b):
        n = ma.shape[0]

        def counts(m, cls):
            return [{c: sum(1 for j in np.flatnonzero(row) if cls[j] == c) for c in set(cls)} for row in m]

        xa, xb = counts(ma, cls_a), counts(mb, cls_b)
        d = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                keys = set(xa[i]) | set(xb[j])
                mx = sum(max(xa[i].get(c, 0), xb[j].get(c, 0)) for c in keys)
                mn = sum(min(xa[i].get(c, 0), xb[j].get(c, 0)) for c in keys)
                d[i, j] = 0.0 if mx == 0 else 1 - mn / mx
        best, roots = brute_classes(d)
        out.append(best / n)
        cls_a, cls_b = roots[:n], roots[n:]
    return np.array(out)


def lexicographic_min(a, b):
    """Exact lexicographic optimum over all joint matchings (tiny nets): minimise layer 1, then layer 2, ..."""
    sizes = [a[0].shape[1]] + [m.shape[0] for m in a]
    spaces = [itertools.permutations(range(s)) for s in sizes[1:]]
    best = None
    for perms in itertools.product(*[list(s) for s in spaces]):
        prev = np.arange(sizes[0])
        vec = []
        for k, (ma, mb) in enumerate(zip(a, b)):
            p = np.array(perms[k])  # a's neuron i  <->  b's neuron p[i]
            inv = np.empty_like(prev)
            inv[prev] = np.arange(prev.size)  # b's input j  -> a's input label inv[j]
            cost = 0.0
            for i in range(ma.shape[0]):
                sa = set(np.flatnonzero(ma[i]).tolist())
                sb = {int(inv[j]) for j in np.flatnonzero(mb[p[i]])}
                u = len(sa | sb)
                cost += 0.0 if u == 0 else 1 - len(sa & sb) / u
            vec.append(cost / ma.shape[0])
            prev = p
        vec = tuple(round(v, 12) for v in vec)
        best = vec if best is None or vec < best else best
    return np.array(best)


# ---------------------------------------------------------------------------------------------- neuron distances
def test_jaccard_matrix_matches_sets():
    rng = np.random.default_rng(0)
    a = (rng.random((7, 12)) < 0.3).astype(int)
    b = (rng.random((5, 12)) < 0.3).astype(int)
    a[0] = 0
    b[1] = 0
    d = jaccard_distance_matrix(sp.csr_matrix(a), sp.csr_matrix(b))
    for i in range(7):
        for j in range(5):
            sa, sb = set(np.flatnonzero(a[i])), set(np.flatnonzero(b[j]))
            ref = 0.0 if not (sa | sb) else 1 - len(sa & sb) / len(sa | sb)
            assert d[i, j] == pytest.approx(ref, abs=1e-15)
    assert d[0, 1] == 0.0  # both empty


def test_weighted_jaccard_on_counts():
    a = sp.csr_matrix(np.array([[2, 0, 1], [0, 0, 0]]))
    b = sp.csr_matrix(np.array([[1, 3, 1], [0, 0, 0]]))
    d = jaccard_distance_matrix(a, b)
    assert d[0, 0] == pytest.approx(1 - (1 + 0 + 1) / (2 + 3 + 1))
    assert d[1, 1] == 0.0 and d[0, 1] == 1.0


# ------------------------------------------------------------------------------------------------ tie classes
@pytest.mark.parametrize("seed", range(12))
def test_tie_classes_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 7))
    d = rng.choice([0.0, 0.5, 1.0, 2 / 3], size=(n, n), p=[0.2, 0.2, 0.4, 0.2])
    m = optimal_matching_classes(d)
    best, roots = brute_classes(d)
    assert m.cost == pytest.approx(best, abs=1e-12)
    assert same_partition(np.concatenate([m.row_class, m.col_class]), roots)


# ------------------------------------------------------------------------------------------------ invariance
@pytest.mark.parametrize("seed", range(6))
def test_permuted_copy_scores_zero_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = random_net([20, 16, 12, 8, 4], 0.25, rng, dup=3, empty=2)
    b = permute_hidden(a, rng)
    res = nnstd(a, b)
    assert (res.layers["distance"] == 0).all(), res.layers
    assert res.mean == 0


def test_published_algorithm_breaks_on_duplicates_but_ours_does_not():
    # hidden neurons 0 and 1 have identical inputs but different outgoing connections
    l1 = np.array([[1, 0], [1, 0], [0, 1]])
    l2 = np.array([[1, 0, 1], [0, 1, 0]])
    swapped = permute_hidden([l1, l2], np.random.default_rng(0))
    copies = [[l1, l2], [l1[[1, 0, 2]], l2[:, [1, 0, 2]]], swapped]
    for c in copies:
        assert nnstd([l1, l2], c).mean == 0
    assert max(nnstd_published([l1, l2], c).mean for c in copies) > 0


@pytest.mark.parametrize("seed", range(5))
def test_invariant_to_hidden_permutations_of_either_net(seed):
    rng = np.random.default_rng(100 + seed)
    sizes = [15, 10, 10, 6]
    a = random_net(sizes, 0.2, rng, dup=2, empty=1)
    b = random_net(sizes, 0.2, rng, dup=2, empty=2)
    ref = nnstd(a, b).distances
    for _ in range(3):
        assert np.allclose(nnstd(permute_hidden(a, rng), permute_hidden(b, rng)).distances, ref, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_symmetric_on_random_nets_with_ties(seed):
    rng = np.random.default_rng(200 + seed)
    sizes = [12, 9, 9, 5]
    a = random_net(sizes, 0.15, rng, dup=2, empty=2)
    b = random_net(sizes, 0.15, rng, dup=1, empty=2)
    ab, ba = nnstd(a, b), nnstd(b, a)
    assert np.allclose(ab.distances, ba.distances, atol=1e-12)
    assert (ab.layers["tie_classes"] < ab.layers["neurons"]).any()  # the case really has ties


def test_symmetric_where_published_is_not():
    """Search small random nets for a pair the published procedure scores asymmetrically; ours never does."""
    rng = np.random.default_rng(7)
    found = False
    for trial in range(300):
        if found and trial >= 30:
            break
        a = random_net([8, 6, 6, 3], 0.2, rng, dup=1, empty=1)
        b = random_net([8, 6, 6, 3], 0.2, rng, dup=1, empty=1)
        assert np.allclose(nnstd(a, b).distances, nnstd(b, a).distances, atol=1e-12)
        if not np.allclose(nnstd_published(a, b).distances, nnstd_published(b, a).distances):
            found = True
    assert found


# ---------------------------------------------------------------------------------------- references and bounds
@pytest.mark.parametrize("seed", range(10))
def test_matches_enumeration_reference(seed):
    rng = np.random.default_rng(300 + seed)
    sizes = [7, 5, 5, 3]
    a = random_net(sizes, 0.3, rng, dup=1, empty=1)
    b = random_net(sizes, 0.3, rng, dup=int(seed % 2), empty=1)
    assert np.allclose(nnstd(a, b).distances, brute_nnstd(a, b), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_lower_bound_of_lexicographic_optimum(seed):
    rng = np.random.default_rng(400 + seed)
    a = random_net([6, 4, 4], 0.35, rng)
    b = random_net([6, 4, 4], 0.35, rng)
    ours, lex = nnstd(a, b).distances, lexicographic_min(a, b)
    assert ours[0] == pytest.approx(lex[0], abs=1e-12)
    assert ours[1] <= lex[1] + 1e-12


def _unique_optimum(d):
    n = d.shape[0]
    costs = sorted(d[np.arange(n), p].sum() for p in itertools.permutations(range(n)))
    return costs[1] - costs[0] > 1e-9


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_published_without_ties(seed):
    """Random nets whose optimal matchings are unique (checked by enumeration): both definitions coincide."""
    rng = np.random.default_rng(500 + seed)
    checked = 0
    while checked < 3:
        sizes = [10, 6, 6, 4]
        a = random_net(sizes, 0.45, rng)
        b = random_net(sizes, 0.45, rng)
        pub = nnstd_published(a, b)
        # uniqueness of the matchings the published procedure used, layer by layer (the last layer's does not matter)
        ta, tb = topology_of(a), topology_of(b)
        rename = np.arange(sizes[0])
        unique = True
        for k in range(len(a) - 1):
            mb = tb.masks[k].toarray()[:, np.argsort(rename)] if k else tb.masks[k].toarray()
            d = jaccard_distance_matrix(ta.masks[k], sp.csr_matrix(mb))
            if not _unique_optimum(d):
                unique = False
                break
            from scipy.optimize import linear_sum_assignment
            r, c = linear_sum_assignment(d)
            rename = np.empty(len(c), dtype=int)
            rename[c] = r  # b neuron c[i] is renamed r[i]
        if not unique:
            continue
        ours = nnstd(a, b)
        assert np.allclose(ours.distances, pub.distances, atol=1e-12)
        assert (ours.layers["tie_classes"].iloc[:-1] == ours.layers["neurons"].iloc[:-1]).all()
        checked += 1


def test_agrees_with_published_on_larger_nets_without_ties():
    rng = np.random.default_rng(9)
    n_checked = 0
    for _ in range(6):
        sizes = [60, 40, 40, 10]
        a, b = random_net(sizes, 0.3, rng), random_net(sizes, 0.3, rng)
        ours = nnstd(a, b)
        if (ours.layers["tie_classes"].iloc[:-1] == ours.layers["neurons"].iloc[:-1]).all():
            assert np.allclose(ours.distances, nnstd_published(a, b).distances, atol=1e-12)
            n_checked += 1
    assert n_checked >= 3


def test_bounds_identity_and_disjoint():
    rng = np.random.default_rng(11)
    for _ in range(5):
        a = random_net([30, 20, 20, 5], 0.1, rng, dup=2, empty=2)
        b = random_net([30, 20, 20, 5], 0.1, rng, dup=1, empty=3)
        d = nnstd(a, b).distances
        assert ((d >= 0) & (d <= 1)).all()
        assert (nnstd(a, a).distances == 0).all()
    # disjoint first layers: a uses inputs 0..9, b inputs 10..19, every neuron non-empty
    a1 = np.zeros((8, 20), int)
    b1 = np.zeros((8, 20), int)
    a1[np.arange(8), rng.integers(0, 10, 8)] = 1
    b1[np.arange(8), rng.integers(10, 20, 8)] = 1
    l2 = (rng.random((4, 8)) < 0.5).astype(int)
    assert nnstd([a1, l2], [b1, l2]).distances[0] == 1.0


def test_match_outputs_false_compares_outputs_by_index():
    l1 = np.eye(3, dtype=int)
    a = [l1, np.array([[1, 0, 0], [0, 1, 0]])]
    b = [l1, np.array([[0, 1, 0], [1, 0, 0]])]
    assert nnstd(a, b).distances[1] == 0.0
    assert nnstd(a, b, match_outputs=False).distances[1] == 1.0
    assert nnstd_published(a, b, match_outputs=False).distances[1] == 1.0


# ------------------------------------------------------------------------------------------------ input kinds
def test_modules_sparse_tensors_and_masks_agree():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_((torch.rand_like(m.weight) < 0.4).float())
    masks = [net[0].weight != 0, (net[2].weight != 0).numpy()]
    sparse_masks = [(net[0].weight != 0).float().to_sparse(), sp.csr_matrix(net[2].weight.detach().numpy() != 0)]
    top = topology_of(net)
    assert [m.nnz for m in top.masks] == [int(m.sum()) for m in [masks[0].numpy(), masks[1]]]
    assert nnstd(net, masks).mean == 0 and nnstd(sparse_masks, net).mean == 0
    assert list(nnstd(net, net).layers["name"]) == ["0", "2"]


def test_result_unpacks_and_has_attrs():
    a = [np.eye(4, dtype=int), np.ones((2, 4), int)]
    layers, mean = nnstd(a, a)
    assert list(layers.columns) == ["layer", "name", "distance", "neurons", "tie_classes", "path"]
    assert layers.attrs["mean"] == mean == 0.0


def test_nnstd_matrix_long_symmetric_and_parallel():
    rng = np.random.default_rng(3)
    nets = [random_net([20, 15, 15, 5], 0.2, rng, dup=1, empty=1) for _ in range(3)]
    df = nnstd_matrix(nets, names=["x", "y", "z"], n_jobs=1)
    assert list(df.columns) == ["a", "b", "layer", "name", "distance"]
    assert len(df) == 9 * 3
    piv = df.groupby(["a", "b"]).distance.mean().unstack()
    assert np.allclose(piv.values, piv.values.T) and np.allclose(np.diag(piv.values), 0)
    assert piv.loc["x", "y"] == pytest.approx(nnstd(nets[0], nets[1]).mean)
    par = nnstd_matrix(nets, names=["x", "y", "z"], n_jobs=2, parallel_min_neurons=0)
    assert np.allclose(par.distance.values, df.distance.values)


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_errors():
    a = [np.ones((4, 6), int), np.ones((3, 4), int)]
    with pytest.raises(ShapeError, match="layer counts"):
        nnstd(a, a[:1])
    with pytest.raises(ShapeError, match="layer 1"):
        nnstd(a, [np.ones((4, 6), int), np.ones((2, 4), int)])
    with pytest.raises(DataError, match="only 0 and 1"):
        nnstd([np.full((4, 6), 0.5)], [np.ones((4, 6))])
    with pytest.raises(DataError, match="only 0 and 1"):
        nnstd([sp.csr_matrix(np.eye(3) * 2)], [np.eye(3)])
    with pytest.raises(DataError, match="empty network"):
        nnstd([], [])
    with pytest.raises(DataError, match="empty network"):
        nnstd([np.ones((0, 3))], [np.ones((0, 3))])
    with pytest.raises(DataError, match="no Linear"):
        nnstd(nn.ReLU(), nn.ReLU())
    with pytest.raises(ShapeError, match="takes 5 inputs"):
        topology_of([np.ones((4, 6)), np.ones((3, 5))])
    with pytest.raises(DataError, match="cannot read a topology from str: pass an nn.Module or a list of 0/1 masks"):
        nnstd("net", "net")


def test_module_with_sparse_weight_uses_its_indices():
    dense = nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        dense.weight.mul_((torch.rand(4, 6) < 0.5).float())
        dense.weight[0, 0] = 0.0
    sparse = nn.Linear(6, 4, bias=False)
    idx = torch.nonzero(dense.weight).T
    # a stored zero is still a connection of a sparse weight: its index counts
    vals = dense.weight.detach()[idx[0], idx[1]]
    idx = torch.cat([idx, torch.tensor([[0], [0]])], 1)
    vals = torch.cat([vals, torch.zeros(1)])
    sparse.weight = nn.Parameter(torch.sparse_coo_tensor(idx, vals, (4, 6)).coalesce())
    m = topology_of(nn.Sequential(sparse)).masks[0].toarray()
    expected = (dense.weight != 0).numpy()
    expected[0, 0] = True
    assert np.array_equal(m, expected)


def test_figures_refuse_empty_tables_with_a_data_error():
    import pandas as pd

    from workbench.viz.topology import nnstd_epochs_figure, nnstd_heatmap

    with pytest.raises(DataError, match=r"nnstd_heatmap: empty NNSTD table; .*columns a, b, distance"):
        nnstd_heatmap(pd.DataFrame(columns=["a", "b", "distance"]))
    with pytest.raises(DataError, match=r"nnstd_epochs_figure: empty table; .*columns epoch, layer, distance"):
        nnstd_epochs_figure(pd.DataFrame(columns=["epoch", "layer", "distance"]))
