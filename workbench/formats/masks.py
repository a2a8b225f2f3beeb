"""Sparsity masks on 2-D weights (rows = output features, columns = input features): the solvers behind the
sparsity part of a format, so that the format toggles and the sparsity lab (which re-exports them) agree.

N:M (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"; NVIDIA ASP): in every group of M
consecutive weights along the input dimension keep the N of largest magnitude. Ties in |w| are broken
deterministically: the lower column index wins.

Transposable N:M (Hubara et al. 2021, "Accelerated Sparse Neural Training: A Provable and Efficient Method to
Find N:M Transposable Masks"): every tile of M output rows × M input columns keeps exactly N entries in every row
and every column, so the mask of W *and* of Wᵀ are N:M and the data-gradient GEMM of the backward pass (which
multiplies by Wᵀ) can use the same sparse kernels as the forward pass.

* ``method="optimal"`` maximises the kept Σ|w| of every tile exactly. The problem is a b-matching (a 0/1 M×M
  matrix with N ones per row and column maximising Σ|w|·S); its LP is integral (totally unimodular), so the optimum
  is also the LP bound. For small tiles (M = 4: the X(4,2) = 90 valid patterns) every pattern is scored and the
  best taken: with numba by one kernel over the weight in place (row-choice sums, then m of them per pattern),
  otherwise by one matrix product (tiles × patterns). Otherwise (M = 8: X(8,4) = 116,963,796,250 patterns; M = 16,
  32, …) a min-cost flow per tile by successive shortest paths from a warm start: with numba, Dijkstra with node
  potentials, one tile per thread (:mod:`workbench.formats.transposable_numba`; 16:32-T on 4096×4096 in tens of
  seconds on 2 cores); with torch (no numba, or CUDA), every Bellman-Ford relaxation vectorised over all tiles.
* ``method="greedy"`` is the fast approximate method: the paper's 2-approximation (visit the entries of a tile by
  |w| descending and keep one when its row and column still have room; when it gets stuck with a row and a column
  short of N, a repair augments along best-gain alternating paths until every row and column has exactly N), then
  a local search by alternating 4-cycles (:mod:`workbench.formats.transposable`) that never lowers the kept Σ|w|
  (``local_search=False``: the paper's greedy + repair alone). 2:4-T: 1.08 % below optimal without the local
  search, 0.08 % with it (Gaussian weights).

Ties in |w| are broken deterministically (earlier pattern / lower flat index first). Weights whose sides are not
multiples of M are zero-padded for the solve and cropped back, with a :class:`PaddedWeightWarning`. A solve whose
estimated time is past :data:`SOLVE_SECONDS_LIMIT` is refused with a :class:`CostLimitError` before any work.

Unstructured (Han et al. 2015): keep the ``round(keep · numel)`` largest |w| of the whole weight.

Block (Narang, Undersander & Diamos 2017, "Block-sparse recurrent neural networks"): cut the 2-D weight into
bh×bw blocks and keep the ``round(keep · #blocks)`` blocks of largest L2 norm whole (ties: lower block index, in
row-major block order, first). The block shape must tile the weight; a weight it does not tile is refused with a
ShapeError that says how many rows / columns of zero padding would make it fit.

:func:`transposable_count` counts X(M, N), the number of valid M×M transposable tiles, exactly (the solver asks it
whether enumerating every tile pattern is cheap; :mod:`workbench.sparsity.diversity` builds mask diversity on it).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import warnings
from functools import cache

import numpy as np
import torch

from workbench.config import torch_threads
from workbench.errors import CostLimitError, NonFiniteError, ShapeError, shorten
from workbench.formats.numbers import from_matrix, to_matrix
from workbench.formats.spec import SOLVER_METHODS, Sparsity
from workbench.formats import transposable


class PaddedWeightWarning(UserWarning):
    """A weight whose sides are not multiples of M was zero-padded for a transposable solve."""


def check_nm(n: int, m: int) -> None:
    """Raise a ShapeError unless ``n`` and ``m`` are ints with ``0 < n <= m``."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m))
    if not ok or m <= 0 or n <= 0 or n > m:
        raise ShapeError(f"N:M needs integers with 0 < N <= M (n first, then m), got n={shorten(n)}, m={shorten(m)}")


def _check_weight(w: torch.Tensor, m: int, what: str, *, rows_too: bool = False, pad: bool = False) -> None:
    if w.dim() != 2:
        raise ShapeError(f"{what} expects a 2-D weight (out × in), got shape {tuple(w.shape)}")
    if not pad:
        if w.shape[1] % m:
            raise ShapeError(
                f"{what}: input dimension {w.shape[1]} of weight {tuple(w.shape)} is not a multiple of M={m}"
            )
        if rows_too and w.shape[0] % m:
            raise ShapeError(
                f"{what}: output dimension {w.shape[0]} of weight {tuple(w.shape)} is not a multiple of M={m}"
            )
    if w.is_floating_point() and not _all_finite(w):
        raise NonFiniteError(f"{what}: weight {tuple(w.shape)} contains NaN or inf")


def _all_finite(w: torch.Tensor) -> bool:
    """No NaN or inf in ``w``; on CPU float32/float64 by numpy (one pass, no intra-op thread start-up)."""
    if w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(w.detach().numpy()).all())
    return bool(torch.isfinite(w).all())


def nm_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the ``n`` largest |w| of every ``m`` consecutive weights along dim 1.

    >>> w = torch.tensor([[1., -4., 3., 2.]])
    >>> nm_mask(w, 2, 4).int().tolist()
    [[0, 1, 1, 0]]
    """
    check_nm(n, m)
    _check_weight(w, m, f"{n}:{m} mask")
    rows, cols = w.shape
    groups = w.detach().abs().reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, order, True)
    return mask.reshape(rows, cols)


def is_nm(mask: torch.Tensor, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive entries along dim 1 has at most ``n`` nonzeros."""
    check_nm(n, m)
    if mask.dim() != 2 or mask.shape[1] % m:
        return False
    counts = (mask != 0).reshape(mask.shape[0], -1, m).sum(-1)
    return bool((counts <= n).all())


def is_transposable(mask: torch.Tensor, n: int, m: int, *, exact: bool = False) -> bool:
    """True when every M×M tile has at most ``n`` nonzeros in every row and column (exactly ``n`` if ``exact``).

    Equivalently: ``mask`` and ``mask.T`` are both N:M.

    >>> is_transposable(torch.ones(4, 4), 2, 4)
    False
    >>> is_transposable(torch.tensor([[1, 0], [0, 1]]), 1, 2, exact=True)
    True
    """
    check_nm(n, m)
    if mask.dim() != 2 or mask.shape[0] % m or mask.shape[1] % m:
        return False
    tiles = _to_tiles(mask != 0, m)
    rows, cols = tiles.sum(2), tiles.sum(1)
    if exact:
        return bool((rows == n).all() and (cols == n).all())
    return bool((rows <= n).all() and (cols <= n).all())


# --------------------------------------------------------------------------------------------------- tiles
def _to_tiles(w: torch.Tensor, m: int) -> torch.Tensor:
    """(R, C) -> (R/m · C/m, m, m): tile t = (tile row, tile column) in row-major order."""
    r, c = w.shape
    return w.reshape(r // m, m, c // m, m).permute(0, 2, 1, 3).reshape(-1, m, m)


def _from_tiles(tiles: torch.Tensor, r: int, c: int) -> torch.Tensor:
    m = tiles.shape[-1]
    return tiles.reshape(r // m, c // m, m, m).permute(0, 2, 1, 3).reshape(r, c)


@cache
def transposable_patterns(n: int, m: int) -> torch.Tensor:
    """All m×m 0/1 matrices with exactly ``n`` ones in every row and column, shape (X(m, n), m, m), bool.

    Enumerated row by row with column capacities; the order is deterministic (lexicographic by rows).

    >>> transposable_patterns(2, 4).shape
    torch.Size([90, 4, 4])
    """
    check_nm(n, m)
    row_choices = list(itertools.combinations(range(m), n))
    out: list[list[tuple[int, ...]]] = []

    def rec(rows: list[tuple[int, ...]], cap: list[int]) -> None:
        left = m - len(rows)
        if left == 0:
            out.append(list(rows))
            return
        for ch in row_choices:
            if all(cap[j] > 0 for j in ch):
                new = cap.copy()
                for j in ch:
                    new[j] -= 1
                if all(v <= left - 1 for v in new):  # every column must still be fillable
                    rows.append(ch)
                    rec(rows, new)
                    rows.pop()

    rec([], [n] * m)
    pats = torch.zeros(len(out), m, m, dtype=torch.bool)
    for p, rows in enumerate(out):
        for i, ch in enumerate(rows):
            pats[p, i, list(ch)] = True
    return pats


# ------------------------------------------------------------------------------------------- counting tiles
DP_STATES_LIMIT = 400_000  # m · C(m + n', n') states of the exact count (n' = min(n, m - n)); about 0.5 s


def transposable_count_states(n: int, m: int) -> int:
    """The exact count's cost estimate: m · C(m + n', n') states (rows × column-need profiles), n' = min(n, m−n)."""
    k = min(n, m - n)
    return m * math.comb(m + k, k)


def transposable_count(n: int, m: int) -> int:
    """X(m, n): the number of m×m 0/1 matrices with exactly ``n`` ones in every row and every column.

    Exact, by dynamic programming over the column counts (rows are filled one at a time; the state is how many
    columns still need 0, 1, …, n ones); X(m, n) = X(m, m − n) (complements), so the smaller of the two is counted.
    Past :data:`DP_STATES_LIMIT` states (about M > 13 at N = M/2) it raises a :class:`CostLimitError`; use
    :func:`workbench.sparsity.log10_transposable_count` (log form, approximate there) instead.

    >>> transposable_count(2, 4), transposable_count(1, 3), transposable_count(4, 8)
    (90, 6, 116963796250)
    """
    check_nm(n, m)
    states = transposable_count_states(n, m)
    if states > DP_STATES_LIMIT:
        raise CostLimitError(
            f"transposable_count(n={n}, m={m}): the exact count needs about {states:,} dynamic-programming states "
            f"(limit {DP_STATES_LIMIT:,}); use workbench.sparsity.log10_transposable_count({n}, {m}) for its log10 "
            "(the Canfield-McKay approximation past the limit)")
    return _transposable_count(min(n, m - n), m)


@cache
def _transposable_count(n: int, m: int) -> int:
    if n == 0:
        return 1

    @cache
    def rows_left(r: int, state: tuple[int, ...]) -> int:
        # state[k] = number of columns that still need k ones (k = 0..n); r rows still to fill
        if r == 0:
            return 1 if all(v == 0 for v in state[1:]) else 0
        total = 0

        def pick(k: int, left: int, st: list[int], ways: int) -> None:
            nonlocal total
            if left == 0:
                total += ways * rows_left(r - 1, tuple(st))
                return
            if k > n:
                return
            avail = state[k]
            for take in range(min(avail, left) + 1):
                new = st.copy()
                new[k] -= take
                new[k - 1] += take
                pick(k + 1, left - take, new, ways * math.comb(avail, take))

        pick(1, n, list(state), 1)
        return total

    start = [0] * (n + 1)
    start[n] = m
    return rows_left(m, tuple(start))


_ENUMERATE_LIMIT = 1000  # enumerate patterns when X(m, n) is at most this (M = 4: 90; M = 2: 2; M = 3: 6 or 3)


def _x_count_small(n: int, m: int) -> int | None:
    """X(m, n) when it is at most :data:`_ENUMERATE_LIMIT`, else None. For m >= 7 and 0 < n < m,
    X(m, n) >= X(m, 1) = m! >= 5040, so nothing is counted there."""
    if m >= 7 and n < m:
        return None
    x = transposable_count(n, m)
    return x if x <= _ENUMERATE_LIMIT else None


# ------------------------------------------------------------------------------------------- solve cost
SOLVE_SECONDS_LIMIT = 60.0


def transposable_solve_seconds(
    shape: tuple[int, int], n: int, m: int, method: str = "optimal", *, impl: str = "auto"
) -> float:
    """Estimated seconds of a transposable solve on a weight matrix of ``shape`` (zero padding included), per tile
    times tiles (measured on a 2-core x86_64 under load, so on the safe side):

    * enumeration (X(m, n) <= 1000, M <= 4; ``"optimal"``): free;
    * numba (``impl="auto"`` on CPU with numba installed), tiles spread over the numba threads
      (``NUMBA_NUM_THREADS``, default: the CPU count): ``"optimal"`` 1.2e-7 · m³ s per tile and thread (successive
      shortest paths with Dijkstra; measured with 2 threads: 8:16 0.26 ms a tile, 16:32 1.6 ms, 64:128 110 ms,
      128:256 2 s), ``"greedy"`` with its local search 9e-8 · m³ (16:32 1.2 ms, 64:128 86 ms);
    * torch: ``"optimal"`` max(4e-7 · m³, 2.5e-11 · m⁵) (Bellman-Ford: 8:16 0.6 ms … 128:256 about 25 s),
      ``"greedy"`` max(1e-6 · m², 6e-10 · m⁵) (2:4 0.015 ms, 16:32 20 ms).
    """
    if n == m or (method == "optimal" and _x_count_small(n, m) is not None):
        return 0.0
    rows, cols = shape[0] + (-shape[0]) % m, shape[1] + (-shape[1]) % m
    tiles = rows * cols / (m * m)
    if impl == "numba" or (impl == "auto" and numba_available()):
        threads = max(1, int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1))
        return math.ceil(tiles / threads) * (1.2e-7 if method == "optimal" else 9e-8) * m**3
    if method == "greedy":
        return tiles * max(1e-6 * m**2, 6e-10 * m**5)
    return tiles * max(4e-7 * m**3, 2.5e-11 * m**5)


def cost_refusal(shape: tuple[int, int], n: int, m: int, method: str = "optimal", impl: str = "auto") -> str | None:
    """None when the solve's estimate is within :data:`SOLVE_SECONDS_LIMIT`, else the message that refuses it: the
    estimate, the limit, and what would fit (the approximate ``"N:M-T greedy"``, numba, a smaller M)."""
    seconds = transposable_solve_seconds(shape, n, m, method, impl=impl)
    if seconds <= SOLVE_SECONDS_LIMIT:
        return None
    name = f"{n}:{m}-T" + (" greedy" if method == "greedy" else "")
    hints = []
    if method == "optimal" and transposable_solve_seconds(shape, n, m, "greedy", impl=impl) <= SOLVE_SECONDS_LIMIT:
        hints.append(f"name the approximate method ('{n}:{m}-T greedy': greedy + repair + local search)")
    if impl != "numba" and not numba_available():
        hints.append("install numba (pip install 'workbench[cpu]') for the fast CPU kernels")
    hints.append("use a smaller M (e.g. 4:8-T) or apply it to smaller layers")
    return (f"{name}: the solve on the {shape[0]}×{shape[1]} weight matrix is estimated at {seconds:,.0f} s "
            f"(limit {SOLVE_SECONDS_LIMIT:.0f} s); " + "; or ".join(hints))


def _solve_enumerate(a: torch.Tensor, n: int, m: int, chunk: int = 1 << 16) -> torch.Tensor:
    """Exact: score every tile against every valid pattern (one matmul per chunk) and keep the best."""
    pats = transposable_patterns(n, m).to(a.device)
    p = pats.reshape(len(pats), m * m).to(a.dtype)
    flat = a.reshape(a.shape[0], m * m)
    best = torch.empty(a.shape[0], dtype=torch.long, device=a.device)
    for s in range(0, flat.shape[0], chunk):
        best[s : s + chunk] = (flat[s : s + chunk] @ p.T).argmax(dim=1)  # first maximum on ties
    return pats[best]


def _augment(a: torch.Tensor, x: torch.Tensor, n: int, *, shortest: bool = True) -> torch.Tensor:
    """Successive shortest augmenting paths until every row and column of every tile holds ``n``.

    ``a``: (T, m, m) float64 scores |w| (to maximise), ``x``: (T, m, m) bool current selection (modified in place
    and returned). Residual graph per tile: row i → column j with cost −a_ij where (i, j) is not selected (keep it),
    column j → row i with cost +a_ij where it is (drop it); rows short of n are sources, columns short of n sinks.
    When ``x`` starts as a min-cost selection for its size (e.g. empty) every augmentation keeps it so, and the
    end result is an optimal b-matching (successive shortest paths, Ahuja–Magnanti–Orlin ch. 9). All tiles are
    relaxed together (Bellman-Ford, vectorised); only tiles that still have a deficit are carried along.

    ``shortest=False`` is the repair of a selection that is not min-cost (the greedy's): its residual graph can
    hold negative cycles, so labels are set once, breadth-first (fewest edges, then best gain among those), which
    always yields a simple augmenting path.
    """
    m = a.shape[-1]
    dev = a.device
    inf = float("inf")
    scale = a.amax(dim=(1, 2)).clamp_min(1e-300)
    while True:
        deficit_rows = x.sum(2) < n  # (T, m)
        active = deficit_rows.any(1).nonzero().squeeze(1)
        if active.numel() == 0:
            return x
        t = active.numel()
        whole = t == x.shape[0]
        sa, sx = (a, x) if whole else (a[active], x[active])
        eps = (1e-12 * (scale if whole else scale[active]))[:, None]
        ar = torch.arange(t, device=dev)
        add_cost = torch.where(sx, inf, -sa)  # row -> col
        drop_cost = torch.where(sx, sa, inf)  # col -> row
        drow = torch.where(deficit_rows[active], 0.0, inf).to(a.dtype)
        prow = torch.full((t, m), -1, dtype=torch.long, device=dev)
        dcol = torch.full((t, m), inf, dtype=a.dtype, device=dev)
        pcol = torch.full((t, m), -1, dtype=torch.long, device=dev)
        for _ in range(2 * m + 2):
            best, arg = (drow[:, :, None] + add_cost).min(dim=1)
            imp = (best < dcol - eps) if shortest else (torch.isinf(dcol) & torch.isfinite(best))
            dcol = torch.where(imp, best, dcol)
            pcol = torch.where(imp, arg, pcol)
            best2, arg2 = (dcol[:, None, :] + drop_cost).min(dim=2)
            imp2 = (best2 < drow - eps) if shortest else (torch.isinf(drow) & torch.isfinite(best2))
            drow = torch.where(imp2, best2, drow)
            prow = torch.where(imp2, arg2, prow)
            if not bool(imp2.any()):  # rows unchanged: the next column pass cannot improve either
                break
        deficit_cols = sx.sum(1) < n
        dsink = torch.where(deficit_cols, dcol, inf)
        j = dsink.argmin(dim=1)
        done = torch.zeros(t, dtype=torch.bool, device=dev)
        for _ in range(m + 1):
            i = pcol[ar, j]
            upd = ~done
            sx[ar[upd], i[upd], j[upd]] = True
            jp = prow[ar, i]
            stop = jp < 0
            drop = upd & ~stop
            sx[ar[drop], i[drop], jp[drop]] = False
            done = done | stop
            j = torch.where(drop, jp, j)
            if bool(done.all()):
                break
        if not whole:
            x[active] = sx


def _solve_greedy(a: torch.Tensor, n: int) -> torch.Tensor:
    """Hubara et al. 2021 greedy: entries by |w| descending, keep when row and column have room; then repair."""
    t, m, _ = a.shape
    flat = a.reshape(t, m * m)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    dev = a.device
    x = torch.zeros(t, m * m, dtype=torch.bool, device=dev)
    rc = torch.zeros(t, m, dtype=torch.long, device=dev)
    cc = torch.zeros(t, m, dtype=torch.long, device=dev)
    ar = torch.arange(t, device=dev)
    for k in range(m * m):
        idx = order[:, k]
        r, c = idx // m, idx % m
        ok = (rc[ar, r] < n) & (cc[ar, c] < n)
        x[ar, idx] |= ok
        rc[ar, r] += ok
        cc[ar, c] += ok
    return _augment(a, x.reshape(t, m, m), n, shortest=False)


def _top_prefix(a: torch.Tensor, n: int) -> torch.Tensor:
    """The largest k entries of each tile, k as large as possible while no row or column exceeds ``n``.

    The top-k entries are the best selection of size k with at most n per row and column (the caps do not bind),
    i.e. a min-cost flow of value k: a valid start for successive shortest paths that skips k augmentations.
    """
    t, m, _ = a.shape
    order = torch.sort(a.reshape(t, m * m), dim=1, descending=True, stable=True).indices
    rows = torch.nn.functional.one_hot(order // m, m).cumsum(1)
    cols = torch.nn.functional.one_hot(order % m, m).cumsum(1)
    bad = ((rows > n) | (cols > n)).any(2)  # (t, m*m): taking the prefix up to here breaks a cap
    k = torch.where(bad.any(1), bad.int().argmax(1), m * m)
    keep = torch.arange(m * m, device=a.device)[None, :] < k[:, None]
    x = torch.zeros(t, m * m, dtype=torch.bool, device=a.device)
    x.scatter_(1, order, keep)
    return x.reshape(t, m, m)


def numba_available() -> bool:
    """True when numba can be imported (checked without importing it): the CPU kernels of
    :mod:`workbench.formats.transposable_numba` are used then."""
    return importlib.util.find_spec("numba") is not None


def _numba():
    from workbench.formats import transposable_numba

    return transposable_numba


def _use_numba(a: torch.Tensor, impl: str) -> bool:
    return impl == "numba" or (impl == "auto" and a.device.type == "cpu" and numba_available())


def _solve_chunk(a: torch.Tensor, n: int, m: int, method: str, local_search: bool = True) -> torch.Tensor:
    """The torch path (any device)."""
    if method == "greedy":
        x = _solve_greedy(a, n)
        return _local_search(a, x) if local_search else x
    if _x_count_small(n, m) is not None:
        return _solve_enumerate(a, n, m)
    return _augment(a, _top_prefix(a, n), n)


def _solve_numba(a: torch.Tensor, n: int, m: int, method: str, local_search: bool = True) -> torch.Tensor:
    """The numba path (CPU): parallel over tiles inside the kernels."""
    nb = _numba()
    an = a.numpy()
    if method == "optimal":
        if _x_count_small(n, m) is not None:
            flat = nb.enumerate_mask(an.reshape(-1, m), n, *_pattern_choices(n, m))
            return torch.from_numpy(flat).reshape(a.shape)
        return torch.from_numpy(nb.ssp_tiles(an, n))
    xn, done = nb.greedy_tiles(an, n)
    x = torch.from_numpy(xn)
    stuck = (~done).nonzero()[0]
    if len(stuck):
        nb.repair_tiles(an, n, xn, stuck)
    if local_search:
        firsts, seconds = _round_arrays(m)
        nb.local_search_tiles(an, x.numpy(), firsts, seconds, LOCAL_SEARCH_SWEEPS)
    return x


@cache
def _pattern_choices(n: int, m: int):
    """The valid patterns of :func:`transposable_patterns` as row choices: ``(choices (K, n), patterns (X, m))``."""
    combos = list(itertools.combinations(range(m), n))
    index = {c: q for q, c in enumerate(combos)}
    pats = transposable_patterns(n, m)
    table = [[index[tuple(row.nonzero().flatten().tolist())] for row in p] for p in pats]
    return np.array(combos, np.int64).reshape(len(combos), n), np.array(table, np.int64).reshape(len(pats), m)


@cache
def _round_arrays(m: int):
    rounds = transposable.pair_rounds(m)
    return np.array([r[0] for r in rounds], np.int64), np.array([r[1] for r in rounds], np.int64)


def _local_search(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return transposable.local_search(a, x, LOCAL_SEARCH_SWEEPS)


_CHUNK = 8192  # tiles per CPU work item: small enough to stay in cache
TRANSPOSABLE_METHODS: tuple[str, ...] = SOLVER_METHODS  # the grammar's method names
IMPLS: tuple[str, ...] = ("auto", "numba", "torch")
LOCAL_SEARCH_SWEEPS = 100


def solve_tiles(
    a: torch.Tensor, n: int, m: int, method: str = "optimal", *, local_search: bool = True, impl: str = "auto"
) -> torch.Tensor:
    """Masks for a batch of tiles ``a`` (T, m, m) of scores ≥ 0: exactly ``n`` per row and column, bool (T, m, m).

    ``method="optimal"``: exact; ``"greedy"``: the paper's greedy plus repair, then (``local_search=True``) the
    4-cycle local search of :mod:`workbench.formats.transposable`. ``impl``: ``"numba"`` (CPU, parallel over tiles;
    needs numba), ``"torch"`` (any device) or ``"auto"`` (numba on CPU when installed). Both give masks of the same
    kept Σ|w| (the greedy's the very same masks; the optimal's may differ on ties).

    The torch path cuts CPU tiles into cache-sized chunks solved by single-threaded torch ops in a small thread
    pool (torch releases the GIL inside its kernels); intra-op threads on such small tensors only contend.
    """
    check_nm(n, m)
    if method not in TRANSPOSABLE_METHODS:
        raise ShapeError(f"{n}:{m}-T mask: unknown method {method!r}; use 'optimal' or 'greedy'")
    if impl not in IMPLS:
        raise ShapeError(f"{n}:{m}-T mask: unknown impl {impl!r}; use one of {', '.join(IMPLS)}")
    if a.dim() != 3 or tuple(a.shape[1:]) != (m, m):
        raise ShapeError(f"{n}:{m}-T tile solve expects tiles of shape (T, {m}, {m}), got {tuple(a.shape)}")
    if impl == "numba" and not numba_available():
        raise ShapeError(f"{n}:{m}-T mask: impl='numba' needs numba (pip install 'workbench[cpu]'); "
                         "use impl='auto' or 'torch'")
    if impl == "numba" and a.device.type != "cpu":
        raise ShapeError(f"{n}:{m}-T mask: impl='numba' runs on CPU tiles, got device {a.device}")
    a = a.detach().double()
    if n == m:
        return torch.ones_like(a, dtype=torch.bool)
    if a.shape[0] == 0:
        return torch.zeros_like(a, dtype=torch.bool)
    if _use_numba(a, impl):
        return _solve_numba(a.contiguous(), n, m, method, local_search)
    if a.device.type != "cpu":
        return _solve_chunk(a, n, m, method, local_search)
    threads = torch.get_num_threads()
    chunks = list(torch.split(a, _CHUNK))
    with torch_threads(1):  # one chunk per Python thread instead of intra-op threads
        if threads > 1 and len(chunks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads) as pool:
                parts = list(pool.map(lambda c: _solve_chunk(c, n, m, method, local_search), chunks))
        else:
            parts = [_solve_chunk(c, n, m, method, local_search) for c in chunks]
    return torch.cat(parts)


def transposable_mask(
    w: torch.Tensor,
    n: int,
    m: int,
    method: str = "optimal",
    *,
    pad: bool = True,
    local_search: bool = True,
    impl: str = "auto",
) -> torch.Tensor:
    """Boolean transposable N:M mask of a 2-D weight: every m×m tile keeps exactly ``n`` per row and column.

    ``method``: ``"optimal"`` (maximum kept Σ|w| per tile, exact: pattern enumeration for M <= 4, successive
    shortest paths otherwise) or ``"greedy"`` (Hubara et al. 2021's greedy plus repair, then a 4-cycle local search
    unless ``local_search=False``: the fast approximate method; measured 0.08 % below optimal at 2:4-T and
    0.12–0.17 % at 8:16-T / 16:32-T on Gaussian weights). ``impl``: ``"auto"`` (numba on CPU when installed, else
    torch), ``"numba"`` or ``"torch"`` (see :func:`solve_tiles`).

    Limits: a solve whose estimate (:func:`transposable_solve_seconds`) is past :data:`SOLVE_SECONDS_LIMIT` is
    refused with a :class:`CostLimitError` before any work, naming the estimate and what would fit. With numba, the
    exact solve of a 4096×4096 weight is estimated at about 32 s for 16:32-T and 16 s for 8:16-T (2 threads);
    exact 32:64-T on 4096×4096 (64 s) is refused, naming ``"32:64-T greedy"`` (48 s) instead. Without numba the torch solvers are slower (16:32-T exact about 7 ms a tile).

    Sides that are not multiples of ``m`` are zero-padded for the solve (with a :class:`PaddedWeightWarning`) and
    the mask is cropped back; ``pad=False`` raises a ShapeError instead.

    >>> w = torch.tensor([[1., -5.], [4., 2.]])
    >>> transposable_mask(w, 1, 2).int().tolist()
    [[0, 1], [1, 0]]
    """
    check_nm(n, m)
    what = f"{n}:{m}-T mask ({method})"
    if method not in TRANSPOSABLE_METHODS:
        raise ShapeError(f"{what}: unknown method {method!r}; use 'optimal' or 'greedy'")
    if impl not in IMPLS:
        raise ShapeError(f"{what}: unknown impl {impl!r}; use one of {', '.join(IMPLS)}")
    _check_weight(w, m, what, rows_too=True, pad=pad)
    refusal = cost_refusal(tuple(w.shape), n, m, method, impl if w.device.type == "cpu" else "torch")
    if refusal:
        raise CostLimitError(f"{what}: {refusal}")
    r, c = w.shape
    a = w.detach()
    pr, pc = (-r) % m, (-c) % m
    if (method == "optimal" and n < m and _x_count_small(n, m) is not None and _use_numba(a, impl)
            and a.dtype in (torch.float32, torch.float64) and not (pr or pc)):
        # score every pattern in place (|w| taken inside the kernel): no tile copies
        return torch.from_numpy(_numba().enumerate_mask(a.contiguous().numpy(), n, *_pattern_choices(n, m)))
    a = a.abs()
    if pr or pc:
        warnings.warn(
            f"{what}: weight {(r, c)} is not a multiple of M={m} on both sides; zero-padded to "
            f"{(r + pr, c + pc)} for the solve and cropped back (edge tiles keep at most {n} per row/column)",
            PaddedWeightWarning,
            stacklevel=2,
        )
        a = torch.nn.functional.pad(a, (0, pc, 0, pr))
    tiles = _to_tiles(a, m)
    mask = solve_tiles(tiles, n, m, method, local_search=local_search, impl=impl).to(w.device)
    return _from_tiles(mask, r + pr, c + pc)[:r, :c].contiguous()


def unstructured_mask(w: torch.Tensor, keep: float) -> torch.Tensor:
    """Keep the ``round(keep · numel)`` largest |w| of the whole tensor (ties: lower flat index first).

    >>> unstructured_mask(torch.tensor([[1., -4.], [3., 2.]]), 0.5).int().tolist()
    [[0, 1], [1, 0]]
    """
    if w.is_floating_point() and not torch.isfinite(w).all():
        raise NonFiniteError(f"unstructured mask: weight {tuple(w.shape)} contains NaN or inf")
    k = int(round(keep * w.numel()))
    order = torch.sort(w.detach().abs().flatten(), descending=True, stable=True).indices[:k]
    mask = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    mask[order] = True
    return mask.reshape(w.shape)


def block_norms(w: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """L2 norm of every bh×bw block of a 2-D weight, shape (rows/bh, cols/bw), in float64.

    >>> block_norms(torch.tensor([[3., 4., 0., 1.]]), (1, 2)).tolist()
    [[5.0, 1.0]]
    """
    bh, bw = block
    r, c = w.shape
    blocks = w.detach().double().reshape(r // bh, bh, c // bw, bw)
    return blocks.pow(2).sum(dim=(1, 3)).sqrt()


def block_fits(shape: tuple[int, ...], block: tuple[int, int]) -> str | None:
    """None when bh×bw blocks tile a 2-D ``shape``, else the reason, naming the padding that would make them."""
    r, c = int(shape[0]), int(shape[1])
    bh, bw = block
    pr, pc = (-r) % bh, (-c) % bw
    if not (pr or pc):
        return None
    return (f"block {bh}x{bw} does not tile the {r}×{c} weight matrix: pad {pr} zero row(s) and {pc} zero "
            f"column(s) (to {r + pr}×{c + pc}), or pick a block shape dividing {r}×{c}")


def block_mask(w: torch.Tensor, block: tuple[int, int], keep: float) -> torch.Tensor:
    """Boolean mask keeping the ``round(keep · #blocks)`` bh×bw blocks of largest L2 norm of a 2-D weight.

    >>> block_mask(torch.tensor([[1., 1., 0., 3.], [1., 1., 0., 0.]]), (2, 2), 0.5).int().tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    if w.dim() != 2:
        raise ShapeError(f"block mask expects a 2-D weight (out × in), got shape {tuple(w.shape)}")
    reason = block_fits(tuple(w.shape), block)
    if reason:
        raise ShapeError(reason)
    if w.is_floating_point() and not torch.isfinite(w).all():
        raise NonFiniteError(f"block mask: weight {tuple(w.shape)} contains NaN or inf")
    bh, bw = block
    norms = block_norms(w, block)
    keep_blocks = unstructured_mask(norms, keep)
    return keep_blocks.repeat_interleave(bh, 0).repeat_interleave(bw, 1).to(w.device)


def fits(w: torch.Tensor, sparsity: Sparsity) -> str | None:
    """None when ``sparsity`` can be applied to weight ``w``, else the reason it cannot."""
    if w.dim() < 2:
        return f"{sparsity.name} needs a weight with at least 2 dimensions, got shape {tuple(w.shape)}"
    if sparsity.kind == "unstructured":
        return None
    if sparsity.kind == "block":
        reason = block_fits((int(w.shape[0]), w[0].numel()), sparsity.block)
        return None if reason is None else f"{sparsity.name}: {reason}"
    cin = int(w.shape[1])
    if cin % sparsity.m:
        return (f"{sparsity.name}: input dimension {cin} of weight {tuple(w.shape)} is not a multiple of "
                f"M={sparsity.m}")
    return None


def too_costly(w: torch.Tensor, sparsity: Sparsity) -> str | None:
    """None when the mask of ``sparsity`` on ``w`` is within :data:`SOLVE_SECONDS_LIMIT`, else the estimate."""
    if not sparsity.transposable or w.dim() < 2:
        return None
    mat = (int(w.shape[0]), w[0].numel())
    return cost_refusal(mat, sparsity.n, sparsity.m, sparsity.method,
                        "auto" if w.device.type in ("cpu", "meta") else "torch")


def weight_mask(w: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    """Boolean mask of ``w``'s shape for a sparsity pattern (N:M, transposable N:M, unstructured), by magnitude,
    on the 2-D view :func:`~workbench.formats.to_matrix`."""
    reason = fits(w, sparsity)
    if reason:
        raise ShapeError(reason)
    cost = too_costly(w, sparsity)
    if cost:
        raise CostLimitError(cost)
    mat = to_matrix(w.detach())
    if sparsity.kind == "unstructured":
        mask = unstructured_mask(mat, sparsity.density)
    elif sparsity.kind == "block":
        mask = block_mask(mat, sparsity.block, sparsity.density)
    elif sparsity.transposable:
        mask = transposable_mask(mat, sparsity.n, sparsity.m, sparsity.method)
    else:
        mask = nm_mask(mat, sparsity.n, sparsity.m)
    return from_matrix(mask, w.shape)


def padding_needed(shape: tuple[int, ...], m: int) -> tuple[int, int]:
    """Rows and columns of zero padding a 2-D weight of ``shape`` needs for M×M tiles."""
    return (-shape[0]) % m, (-shape[1]) % m


__all__ = [
    "DP_STATES_LIMIT",
    "SOLVE_SECONDS_LIMIT",
    "PaddedWeightWarning",
    "block_fits",
    "block_mask",
    "block_norms",
    "check_nm",
    "fits",
    "too_costly",
    "transposable_count",
    "transposable_count_states",
    "transposable_solve_seconds",
    "cost_refusal",
    "numba_available",
    "IMPLS",
    "TRANSPOSABLE_METHODS",
    "unstructured_mask",
    "weight_mask",
    "is_nm",
    "is_transposable",
    "nm_mask",
    "padding_needed",
    "solve_tiles",
    "transposable_mask",
    "transposable_patterns",
]
