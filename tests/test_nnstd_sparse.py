"""NNSTD's sparse exact path: equal to the dense path (values bit for bit, tie classes as partitions), invariances,
the ``path`` option and column, bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.sparse as sp

from workbench.errors import MemoryBudgetError, OptionError, ShapeError
from workbench.topology import jaccard_distance_matrix, nnstd, nnstd_matrix, optimal_matching_classes
from workbench.topology.nnstd_sparse import scan_work, sparse_matching_classes

from test_topology_nnstd import permute_hidden, random_net  # the dense path's tests' generators

nnstd_mod = importlib.import_module("workbench.topology.nnstd")  # the module (the package exports the function)


def partition(row_class, col_class):
    """Tie classes as a set of sets of ('r', i) / ('c', j), independent of the labels' numbering."""
    groups: dict[int, set] = {}
    for i, c in enumerate(row_class):
        groups.setdefault(int(c), set()).add(("r", i))
    for j, c in enumerate(col_class):
        groups.setdefault(int(c), set()).add(("c", j))
    return {frozenset(g) for g in groups.values()}


def same_layers(r1, r2):
    cols = ["layer", "distance", "neurons", "tie_classes"]
    return r1.layers[cols].equals(r2.layers[cols])


# ----------------------------------------------------------------------------------------- one layer, many shapes
@pytest.mark.parametrize("seed", range(4))
def test_layer_classes_equal_dense_on_tie_heavy_matrices(seed):
    rng = np.random.default_rng(seed)
    for trial in range(16):
        n, m = int(rng.integers(1, 25)), int(rng.integers(1, 10))
        a = (rng.random((n, m)) < rng.random() * 0.5).astype(np.int64)
        kind = trial % 4
        if kind == 0:  # a permuted copy with one flipped bit
            b = a[rng.permutation(n)].copy()
            b[rng.integers(n), rng.integers(m)] ^= 1
        elif kind == 1:  # duplicated rows and empty rows on both sides, unequal numbers of empties
            a[: n // 3] = 0
            b = (rng.random((n, m)) < 0.3).astype(np.int64)
            b[n // 2:] = b[0]
            b[: n // 4] = 0
        else:
            b = (rng.random((n, m)) < rng.random() * 0.5).astype(np.int64)
        if trial % 5 == 0:  # class counts (what layers after the first see)
            a = a * rng.integers(1, 4, size=a.shape)
            b = b * rng.integers(1, 4, size=b.shape)
        ca, cb = sp.csr_matrix(a), sp.csr_matrix(b)
        d = jaccard_distance_matrix(ca, cb)
        dense = optimal_matching_classes(d)
        sparse = sparse_matching_classes(ca, cb, k=int(rng.integers(1, 4)))  # small k: certificate rounds run
        assert sorted(sparse.sigma.tolist()) == list(range(n))
        assert d[np.arange(n), sparse.sigma].sum() == pytest.approx(dense.cost, abs=1e-9)
        assert sparse.n_classes == dense.n_classes
        assert partition(sparse.row_class, sparse.col_class) == partition(dense.row_class, dense.col_class)


def test_certificate_rounds_add_the_missing_pairs():
    # each row's single best candidate collides on one column: the optimum needs pairs outside the top-1 lists
    rng = np.random.default_rng(3)
    a = (rng.random((60, 12)) < 0.3).astype(np.int64)
    b = a.copy()
    b[:, :2] = 1  # every row of b shares the first two inputs, so top-1 lists concentrate
    ca, cb = sp.csr_matrix(a), sp.csr_matrix(b)
    sparse = sparse_matching_classes(ca, cb, k=1)
    dense = optimal_matching_classes(jaccard_distance_matrix(ca, cb))
    assert sparse.rounds >= 2 and sparse.candidates > 60
    assert partition(sparse.row_class, sparse.col_class) == partition(dense.row_class, dense.col_class)


def test_all_empty_and_no_overlap_layers():
    z = sp.csr_matrix((5, 4), dtype=np.int64)
    s = sparse_matching_classes(z, z)
    assert s.n_classes == 1 and s.candidates == 0
    a = sp.csr_matrix(np.eye(4, dtype=np.int64))
    b = sp.csr_matrix(np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.int64)[:, ::-1])
    s = sparse_matching_classes(a, b)
    dense = optimal_matching_classes(jaccard_distance_matrix(a, b))
    assert partition(s.row_class, s.col_class) == partition(dense.row_class, dense.col_class)


# -------------------------------------------------------------------------------------------------- whole nets
@pytest.mark.parametrize("seed", range(4))
def test_sparse_equals_dense_on_random_and_tie_heavy_nets(seed):
    rng = np.random.default_rng(seed)
    sizes = [12, 40, 30, 6]
    for dup, empty, density in [(0, 0, 0.15), (4, 3, 0.1), (6, 6, 0.3)]:
        a = random_net(sizes, density, rng, dup, empty)
        b = random_net(sizes, density, rng, dup, empty)
        near = [m.copy() for m in permute_hidden(a, rng)]
        near[1][rng.integers(30), rng.integers(40)] ^= 1
        for x, y in [(a, b), (a, near)]:
            dense, sparse = nnstd(x, y, path="dense"), nnstd(x, y, path="sparse")
            assert same_layers(dense, sparse)  # distances bit for bit, tie class counts
            assert dense.mean == sparse.mean
            assert set(sparse.layers["path"]) == {"sparse"} and set(dense.layers["path"]) == {"dense"}


@pytest.mark.parametrize("seed", range(3))
def test_permuted_copy_scores_zero_in_every_layer_on_the_sparse_path(seed):
    rng = np.random.default_rng(seed)
    a = random_net([10, 50, 50, 5], 0.12, rng, dup=5, empty=4)
    r = nnstd(a, permute_hidden(a, rng), path="sparse")
    assert (r.layers["distance"] == 0.0).all()
    assert r.mean == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_sparse_path_is_symmetric(seed):
    rng = np.random.default_rng(10 + seed)
    a = random_net([8, 45, 35, 4], 0.15, rng, dup=3, empty=2)
    b = random_net([8, 45, 35, 4], 0.15, rng, dup=2, empty=4)
    ab, ba = nnstd(a, b, path="sparse"), nnstd(b, a, path="sparse")
    assert ab.layers["distance"].equals(ba.layers["distance"])
    assert ab.layers["tie_classes"].equals(ba.layers["tie_classes"])


def test_auto_switches_by_size_and_says_so(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = random_net([20, 60, 5], 0.1, rng), random_net([20, 60, 5], 0.1, rng)
    assert list(nnstd(a, b).layers["path"]) == ["dense", "dense"]
    monkeypatch.setattr(nnstd_mod, "SPARSE_MIN_NEURONS", 50)
    monkeypatch.setattr(nnstd_mod, "SPARSE_SCAN_RATIO", 1)
    auto = nnstd(a, b)
    assert list(auto.layers["path"]) == ["sparse", "dense"]  # 60 neurons: sparse; 5 outputs: dense
    assert same_layers(auto, nnstd(a, b, path="dense"))
    # a nearly dense overlap graph stays on the dense path while it fits
    monkeypatch.setattr(nnstd_mod, "SPARSE_SCAN_RATIO", 10**9)
    assert list(nnstd(a, b).layers["path"]) == ["dense", "dense"]
    r = nnstd(a, b, match_outputs=False, path="sparse")
    assert list(r.layers["path"]) == ["sparse", "identity"]


def test_nnstd_matrix_takes_the_path():
    rng = np.random.default_rng(1)
    nets = [random_net([10, 30, 4], 0.2, rng) for _ in range(3)]
    d = nnstd_matrix(nets, n_jobs=1, path="dense")
    s = nnstd_matrix(nets, n_jobs=1, path="sparse")
    assert d["distance"].equals(s["distance"])


def test_scan_work_counts_incidences():
    a = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.int64))
    b = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 1]], dtype=np.int64))
    # input 0: 1 × 2, input 1: 2 × 1, input 2: 1 × 1
    assert scan_work(a, b) == 5
    assert scan_work(a, b) == int(sp.csr_matrix(a, dtype=float).dot(sp.csr_matrix(b, dtype=float).T).sum())


def test_bad_input_is_refused_before_any_work():
    rng = np.random.default_rng(0)
    a = random_net([6, 10, 3], 0.3, rng)
    with pytest.raises(OptionError, match="path must be one of"):
        nnstd(a, a, path="fast")
    with pytest.raises(OptionError, match="path"):
        nnstd_matrix([a, a], path=None)
    with pytest.raises(ShapeError):
        nnstd(a, random_net([6, 11, 3], 0.3, rng), path="sparse")
    big = [sp.random(300_000, 4, density=1e-5, format="csr", random_state=0, data_rvs=np.ones)]
    with pytest.raises(MemoryBudgetError, match="GiB"):
        nnstd(big, big, path="dense")
    assert nnstd_mod.dense_cost_estimate(1000)["bytes"] == nnstd_mod.DENSE_BYTES_PER_ENTRY * 1000 ** 2


def test_layer_solver_refuses_mismatched_shapes():
    with pytest.raises(ShapeError, match="shapes"):
        sparse_matching_classes(sp.csr_matrix(np.eye(3)), sp.csr_matrix(np.eye(4)))


def test_plain_python_scans_stay_in_bounds_and_agree():
    # NUMBA_DISABLE_JIT runs the kernels as plain Python (what users without numba get), where numpy checks every
    # index: rows overlapping every column exercise the branch-free touch list's extra slot
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, scipy.sparse as sp\n"
        "from workbench.topology import jaccard_distance_matrix, optimal_matching_classes\n"
        "from workbench.topology.nnstd_sparse import sparse_matching_classes\n"
        "a = np.ones((4, 3), np.int64); a[0, 0] = 0\n"
        "b = np.ones((4, 3), np.int64); b[1, 2] = 0\n"
        "s = sparse_matching_classes(sp.csr_matrix(a), sp.csr_matrix(b))\n"
        "d = optimal_matching_classes(jaccard_distance_matrix(sp.csr_matrix(a), sp.csr_matrix(b)))\n"
        "assert s.n_classes == d.n_classes, (s, d)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# --------------------------------------------------------------------------------------------------- the solvers
@pytest.mark.parametrize("seed", range(6))
def test_auction_is_optimal_on_tie_heavy_integer_problems(seed):
    # the forward-reverse auction against brute force (scipy's assignment on the dense weights, missing pairs = 0,
    # which is the non-perfect optimum since weights are >= 0): equal weight, every row within eps = 1 of its best
    # option, unassigned columns at price 0, assignments consistent
    from scipy.optimize import linear_sum_assignment

    from workbench.topology.nnstd_sparse import _NULL, _auction, _csr

    rng = np.random.default_rng(seed)
    for trial in range(12):
        m = int(rng.integers(1, 40))
        dense = (rng.random((m, m)) < rng.uniform(0.05, 0.5)) * rng.integers(1, 4, size=(m, m))  # few values: ties
        dense[rng.random(m) < 0.2] = 0  # rows and columns without pairs
        dense[:, rng.random(m) < 0.2] = 0
        ei, ej = np.nonzero(dense)
        w = (dense[ei, ej] * (m + 1) * 1000).astype(np.int64)
        r_ptr, r_idx, r_w = _csr(m, m, ei.astype(np.int64), ej.astype(np.int64), w)
        c_ptr, c_idx, c_w = _csr(m, m, ej.astype(np.int64), ei.astype(np.int64), w)
        price = np.zeros(m, dtype=np.int64)
        asg = -np.ones(m, dtype=np.int64)
        own = -np.ones(m, dtype=np.int64)
        _auction(r_ptr, r_idx, r_w, c_ptr, c_idx, c_w, price, asg, own, max(1, int(w.max(initial=0)) // 5), 5)
        assert not (asg == -1).any()  # every row is assigned: a column or the null option
        matched = np.flatnonzero(asg >= 0)
        assert (own[asg[matched]] == matched).all() and (own >= 0).sum() == matched.size
        r, c = linear_sum_assignment(-dense)
        assert dense[matched, asg[matched]].sum() == dense[r, c].sum()
        assert (price[own < 0] == 0).all()
        wm = np.zeros((m, m), dtype=np.int64)
        wm[ei, ej] = w
        for i in range(m):
            options = [0] + [wm[i, j] - price[j] for j in np.flatnonzero(dense[i])]
            mine = 0 if asg[i] == _NULL else wm[i, asg[i]] - price[asg[i]]
            assert mine >= max(options) - 1


def test_solve_returns_optimal_duals_on_weak_near_tied_similarities():
    # many weak, nearly tied similarities (the case where searches alone are slow): the matching and duals after the
    # auction and the repair are feasible, tight on the matching, zero on unmatched nodes, with no duality gap
    from workbench.topology.nnstd_sparse import _solve

    rng = np.random.default_rng(0)
    m = 400
    ei = np.repeat(np.arange(m), 6)
    ej = rng.integers(0, m, size=ei.size)
    key = np.unique(ei * m + ej)
    ei, ej = key // m, key % m
    es = rng.integers(1, 3, size=ei.size) / rng.integers(60, 80, size=ei.size)
    mate_r, mate_c, u, v = _solve(m, ei, ej, es, None, 1e-9)
    assert (u >= 0).all() and (v >= 0).all()
    assert (u[ei] + v[ej] - es >= -1e-9).all()
    on = mate_r[ei] == ej
    assert np.abs(u[ei[on]] + v[ej[on]] - es[on]).max() <= 1e-9
    assert (u[mate_r < 0] <= 1e-9).all() and (v[mate_c < 0] <= 1e-9).all()
    assert u.sum() + v.sum() == pytest.approx(es[on].sum(), abs=1e-9)
    from scipy.optimize import linear_sum_assignment

    dense = np.zeros((m, m))
    dense[ei, ej] = es
    r, c = linear_sum_assignment(-dense)
    assert es[on].sum() == pytest.approx(dense[r, c].sum(), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_certificate_pass_on_the_cheap_columns_finds_the_same_pairs(seed):
    # the pass cut to columns with v_j <= max_i (kth_i - u_i) + margin finds exactly the pairs the full pass finds
    # (violations and near-tight ones), on duals that leave some columns out
    import workbench.topology.nnstd_sparse as ns

    rng = np.random.default_rng(seed)
    n, m_in, k = 300, 60, 4
    a = sp.csr_matrix((rng.random((n, m_in)) < 0.15).astype(np.int64))
    b = sp.csr_matrix((rng.random((n, m_in)) < 0.15).astype(np.int64))
    sa, sb = np.asarray(a.sum(1)).ravel(), np.asarray(b.sum(1)).ravel()
    bt = sp.csr_matrix(b.T)
    bt.sort_indices()
    args = (a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data.astype(np.int32), sa,
            bt.indptr.astype(np.int64), bt.indices.astype(np.int32), bt.data.astype(np.int32), sb)
    top_j, top_s = ns._scan_topk(*args, k, 2)
    ok = top_j >= 0
    ei, ej, es = np.repeat(np.arange(n), k)[ok.ravel()], top_j[ok], top_s[ok]
    kth = np.where(ok[:, -1], top_s[:, -1], -np.inf)
    mate_r, mate_c, u, v = ns._solve(n, ei, ej, es, None, 1e-9)
    rows = np.arange(n, dtype=np.int64)
    cut = ns._cheap_columns(args, rows, kth, u, v, 0.002)
    assert cut[5].size < args[5].size  # some columns are left out
    full = ns._violations(rows, args, u, v, 1e-9, 0.002, ei, ej, n, 2)
    part = ns._violations(rows, cut, u, v, 1e-9, 0.002, ei, ej, n, 2)
    assert full[0].size > 0  # the top-k candidates alone are not certified here
    assert set(zip(full[0].tolist(), full[1].tolist())) == set(zip(part[0].tolist(), part[1].tolist()))
