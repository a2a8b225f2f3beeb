"""Local search for transposable N:M masks: improve a feasible selection of every M×M tile (exactly N per row and
column) by alternating 4-cycles, without ever leaving the feasible set or lowering the kept Σ|w|.

A move on rows i ≠ k of a tile takes a column j kept by row i but not by row k and a column l kept by row k but not
by row i, and exchanges them: (i, j), (k, l) leave the mask, (i, l), (k, j) join it. Every row and every column keeps
its count, and the kept magnitude changes by

    gain = (|w_kj| − |w_ij|) + (|w_il| − |w_kl|),

so the best move of a row pair is the best j plus the best l, found by two masked maxima. The same moves on column
pairs are the row moves of the transposed tile. These are the length-4 cycles of the b-matching's residual graph
(a selection is optimal iff the residual graph has no positive-gain cycle of any length; Ahuja, Magnanti & Orlin
1993, ch. 9), so a selection with no improving 4-cycle is a local optimum, not always the global one.

Sweeps visit all row pairs, then all column pairs, in the M − 1 rounds of a round-robin schedule (each round pairs
the rows disjointly, so all its moves apply at once, one per row pair and tile); a move is made only when its gain
exceeds 1e-12 of the tile's largest |w| (no churn on ties). A tile leaves the sweep once a whole sweep changes
nothing. Batched over tiles with torch (CPU or CUDA).
"""

from __future__ import annotations

import torch


def pair_rounds(m: int) -> list[tuple[list[int], list[int]]]:
    """Round-robin pairing of ``m`` items (the circle method): ``m − 1`` rounds (``m`` when odd) of disjoint
    pairs ``(firsts, seconds)`` covering every unordered pair exactly once.

    >>> pair_rounds(4)
    [([0, 1], [3, 2]), ([0, 1], [2, 3]), ([0, 2], [1, 3])]
    """
    items = list(range(m)) + ([-1] if m % 2 else [])
    size = len(items)
    rounds = []
    for _ in range(size - 1):
        firsts, seconds = [], []
        for p in range(size // 2):
            u, v = items[p], items[size - 1 - p]
            if u >= 0 and v >= 0:
                firsts.append(min(u, v))
                seconds.append(max(u, v))
        rounds.append((firsts, seconds))
        items = [items[0], items[-1], *items[1:-1]]
    return rounds


def _row_moves(a: torch.Tensor, x: torch.Tensor, rounds, tol: torch.Tensor) -> torch.Tensor:
    """One pass of 4-cycle moves over every row pair of every tile; ``x`` (T, m, m) bool is updated in place
    (it may be a transposed view). Returns which tiles changed, (T,) bool."""
    neg = torch.tensor(-torch.inf, dtype=a.dtype, device=a.device)
    changed = torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
    for firsts, seconds in rounds:
        i_idx = torch.tensor(firsts, device=a.device)
        k_idx = torch.tensor(seconds, device=a.device)
        ai, ak = a[:, i_idx], a[:, k_idx]  # (T, P, m)
        xi, xk = x[:, i_idx], x[:, k_idx]
        only_i, only_k = xi & ~xk, xk & ~xi
        d = torch.where(only_i, ak - ai, neg)  # move column j from row i to row k
        e = torch.where(only_k, ai - ak, neg)  # move column l from row k to row i
        dv, dj = d.max(-1)
        ev, el = e.max(-1)
        do = (dv + ev) > tol  # (T, P); -inf when a row pair has nothing to exchange
        if not bool(do.any()):
            continue
        dj, el = dj.unsqueeze(-1), el.unsqueeze(-1)
        d3 = do.unsqueeze(-1)
        xi = xi.scatter(-1, dj, xi.gather(-1, dj) & ~d3).scatter(-1, el, xi.gather(-1, el) | d3)
        xk = xk.scatter(-1, el, xk.gather(-1, el) & ~d3).scatter(-1, dj, xk.gather(-1, dj) | d3)
        x[:, i_idx] = xi
        x[:, k_idx] = xk
        changed |= do.any(-1)
    return changed


def local_search(a: torch.Tensor, x: torch.Tensor, max_sweeps: int = 100) -> torch.Tensor:
    """Improve the selections ``x`` (T, m, m) bool of tiles ``a`` (T, m, m) (scores |w| ≥ 0) by 4-cycle moves on
    row pairs and column pairs until none gains (or ``max_sweeps`` sweeps); returns a new bool tensor with the
    same row and column counts as ``x`` and a kept Σ a·x at least as large on every tile."""
    a = a.detach()
    x = x.clone()
    t, m, _ = a.shape
    if t == 0 or m < 2:
        return x
    rounds = pair_rounds(m)
    tol = 1e-12 * a.amax(dim=(1, 2)).clamp_min(1e-300)
    active = torch.arange(t, device=a.device)
    for _ in range(max_sweeps):
        sa, sx, st = a[active], x[active], tol[active, None]
        changed = _row_moves(sa, sx, rounds, st)
        changed |= _row_moves(sa.transpose(1, 2), sx.transpose(1, 2), rounds, st)
        x[active] = sx
        active = active[changed]
        if active.numel() == 0:
            break
    return x


__all__ = ["local_search", "pair_rounds"]
