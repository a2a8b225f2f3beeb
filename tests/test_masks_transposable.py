"""Transposable N:M masks beyond M = 8 (issue 22): the exact solver (successive shortest paths with Dijkstra, numba)
against scipy's MILP on 8:16 and 16:32 tiles (random and tie-heavy), feasibility of every method on every tile, the
4-cycle local search (never lowers the kept Σ|w|; leaves no improving 4-cycle; checked against a plain-loop search),
the numba and torch paths giving the same masks, and the cost estimate refusing slow solves before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import CostLimitError, ShapeError, WorkbenchError
from workbench.formats import masks as M
from workbench.formats.transposable import local_search, pair_rounds
from workbench.sparsity.masks import is_transposable, solve_tiles, transposable_mask

from test_sparsity_masks import milp_best  # the per-tile MILP reference (scipy, independent of us)

needs_numba = pytest.mark.skipif(not M.numba_available(), reason="numba not installed")


def tiles(t: int, m: int, seed: int, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "gauss":
        return torch.randn(t, m, m, generator=g, dtype=torch.float64).abs()
    if kind == "heavy":  # Student-t with 2 degrees of freedom: a few huge entries
        z = torch.randn(t, m, m, generator=g, dtype=torch.float64)
        chi = torch.randn(t, m, m, 2, generator=g, dtype=torch.float64).pow(2).sum(-1)
        return (z / (chi / 2).sqrt()).abs()
    a = torch.randint(0, 3, (t, m, m), generator=g).double()  # ties and zeros
    a[0] = 1.0
    a[1] = 0.0
    return a


def feasible(x: torch.Tensor, n: int) -> bool:
    return x.dtype == torch.bool and bool((x.sum(2) == n).all() and (x.sum(1) == n).all())


def kept(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (a * x).sum((1, 2))


@pytest.mark.parametrize("n,m,t", [(8, 16, 6), (5, 16, 4), (16, 32, 3), (11, 32, 2)])
@pytest.mark.parametrize("kind", ["gauss", "ties", "heavy"])
def test_exact_equals_milp_on_sampled_tiles(n, m, t, kind):
    a = tiles(t, m, seed=n * m, kind=kind)
    ref = np.array([milp_best(tile.numpy(), n) for tile in a])
    impls = ["numba", "torch"] if M.numba_available() else ["torch"]
    for impl in impls:
        x = solve_tiles(a, n, m, "optimal", impl=impl)
        assert feasible(x, n)
        np.testing.assert_allclose(kept(a, x).numpy(), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n,m", [(8, 16), (16, 32), (2, 4), (4, 8), (1, 16), (31, 32)])
@pytest.mark.parametrize("method", ["optimal", "greedy"])
def test_every_tile_of_a_weight_is_feasible(n, m, method):
    w = torch.randn(2 * m, 3 * m, generator=torch.Generator().manual_seed(m + n))
    w[:m, :m] = torch.randint(-1, 2, (m, m)).float()  # a tie-heavy tile
    x = transposable_mask(w, n, m, method)
    assert x.shape == w.shape and is_transposable(x, n, m, exact=True)
    assert int(x.sum()) == w.numel() * n // m


@pytest.mark.parametrize("n,m", [(2, 4), (3, 8), (8, 16), (16, 32)])
@pytest.mark.parametrize("kind", ["gauss", "ties"])
def test_greedy_with_local_search_is_feasible_and_never_worse(n, m, kind):
    a = tiles(40 if m <= 16 else 12, m, seed=7 + m, kind=kind)
    plain = solve_tiles(a, n, m, "greedy", local_search=False)
    better = solve_tiles(a, n, m, "greedy")
    opt = solve_tiles(a, n, m, "optimal")
    assert feasible(plain, n) and feasible(better, n)
    assert (kept(a, better) >= kept(a, plain) - 1e-12).all()
    assert (kept(a, better) <= kept(a, opt) + 1e-9).all()


def has_improving_4_cycle(a: np.ndarray, x: np.ndarray, tol: float) -> bool:
    """Every 2×2 swap at once (axes i, k, j, l): (i, j), (k, l) kept, (i, l), (k, j) not; does one gain > tol?"""
    i, k, j, l = np.ix_(*[np.arange(a.shape[0])] * 4)
    valid = x[i, j] & x[k, l] & ~x[i, l] & ~x[k, j]
    gain = a[i, l] + a[k, j] - a[i, j] - a[k, l]
    return bool((valid & (gain > tol)).any())


@pytest.mark.parametrize("m,n", [(4, 2), (6, 3), (8, 3)])
def test_local_search_never_decreases_and_ends_without_an_improving_4_cycle(m, n):
    a = tiles(30, m, seed=m, kind="gauss")
    a[:8] = tiles(8, m, seed=m + 1, kind="ties")
    g = torch.Generator().manual_seed(5)
    # random feasible starts: permuted block-diagonal-free patterns (circulant n-regular, rows and columns shuffled)
    base = torch.zeros(m, m, dtype=torch.bool)
    for i in range(m):
        base[i, [(i + s) % m for s in range(n)]] = True
    starts = torch.stack([base[torch.randperm(m, generator=g)][:, torch.randperm(m, generator=g)] for _ in a])
    x = local_search(a, starts)
    assert feasible(x, n)
    assert (kept(a, x) >= kept(a, starts) - 1e-12).all()
    for t in range(len(a)):
        assert not has_improving_4_cycle(a[t].numpy(), x[t].numpy(), 1e-9)


def test_pair_rounds_cover_every_pair_once_with_disjoint_rounds():
    for m in (2, 3, 4, 7, 16):
        seen = []
        for firsts, seconds in pair_rounds(m):
            members = firsts + seconds
            assert len(members) == len(set(members))  # disjoint within a round
            seen += list(zip(firsts, seconds))
        assert sorted(seen) == [(i, k) for i in range(m) for k in range(i + 1, m)]


@needs_numba
@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8), (3, 8), (8, 16), (16, 32)])
def test_numba_and_torch_paths_agree(n, m):
    a = tiles(24 if m <= 16 else 6, m, seed=3 * m + n, kind="gauss")
    a[:4] = tiles(4, m, seed=1, kind="ties")
    for ls in (True, False):  # the greedy (+ repair + local search) is the same algorithm, move for move
        assert torch.equal(solve_tiles(a, n, m, "greedy", local_search=ls, impl="numba"),
                           solve_tiles(a, n, m, "greedy", local_search=ls, impl="torch"))
    xo_n = solve_tiles(a, n, m, impl="numba")
    xo_t = solve_tiles(a, n, m, impl="torch")
    assert feasible(xo_n, n)
    np.testing.assert_allclose(kept(a, xo_n).numpy(), kept(a, xo_t).numpy(), rtol=1e-12, atol=1e-12)
    if m == 4:  # enumeration: the same first-best pattern, also through the in-place weight kernel
        assert torch.equal(xo_n, xo_t)
        w = torch.randn(8, 12, generator=torch.Generator().manual_seed(n))
        assert torch.equal(transposable_mask(w, n, 4, impl="numba"), transposable_mask(w, n, 4, impl="torch"))


def test_exact_requests_past_the_estimate_are_refused_before_any_work():
    w = torch.randn(4096, 4096)
    seconds = M.transposable_solve_seconds((4096, 4096), 16, 32, impl="torch")
    assert seconds > M.SOLVE_SECONDS_LIMIT  # torch's Bellman-Ford solver: minutes on 4096²
    with pytest.raises(CostLimitError, match=r"16:32-T.*estimated at [\d,]+ s.*limit 60 s") as err:
        transposable_mask(w, 16, 32, impl="torch")
    assert isinstance(err.value, WorkbenchError)
    with pytest.raises(CostLimitError, match="estimated"):
        transposable_mask(torch.randn(1024, 1024), 512, 1024)
    if M.numba_available():  # within reach with numba: estimated, not refused
        assert M.transposable_solve_seconds((4096, 4096), 16, 32) < M.SOLVE_SECONDS_LIMIT
        msg = M.cost_refusal((4096, 4096), 32, 64, "optimal")
        assert msg is not None and "estimated" in msg
    big = M.cost_refusal((8192, 8192), 16, 32, "optimal", impl="torch")
    assert "16:32-T" in big and "8192×8192" in big


def test_the_approximate_method_is_offered_when_it_fits():
    # 4096×1024 at 8:16-T with torch: exact ~27 s ... pick a shape where exact is refused and greedy is not
    shape = (2048, 2048)
    ex = M.transposable_solve_seconds(shape, 16, 32, "optimal", impl="torch")
    gr = M.transposable_solve_seconds(shape, 16, 32, "greedy", impl="torch")
    msg = M.cost_refusal(shape, 16, 32, "optimal", impl="torch")
    if ex > M.SOLVE_SECONDS_LIMIT >= gr:
        assert "16:32-T greedy" in msg
    else:
        assert msg is None or "16:32-T greedy" not in msg


@pytest.mark.parametrize("call", [
    lambda: transposable_mask(torch.randn(32, 32), 16, 32, method="sinkhorn"),
    lambda: transposable_mask(torch.randn(32, 32), 16, 32, impl="gpu"),
    lambda: solve_tiles(torch.rand(2, 32, 32), 16, 32, impl="cuda"),
    lambda: solve_tiles(torch.rand(2, 16, 16), 16, 32),
])
def test_bad_method_or_impl_is_a_shape_error_naming_what_is_accepted(call):
    with pytest.raises(ShapeError, match="optimal|auto|shape"):
        call()


@needs_numba
def test_refusal_names_the_approximate_method_when_it_fits(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")  # the estimate spreads tiles over the numba threads
    msg = M.cost_refusal((4096, 4096), 32, 64, "optimal")
    assert msg is not None and "'32:64-T greedy'" in msg
    assert M.cost_refusal((4096, 4096), 32, 64, "greedy") is None
    with pytest.raises(CostLimitError, match="32:64-T greedy"):
        transposable_mask(torch.zeros(4096, 4096), 32, 64)
