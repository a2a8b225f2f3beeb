"""numba kernel of the exact transposable N:M solve for large tiles (M = 8 … 64): successive shortest paths with
Dijkstra and node potentials, one tile per thread (imported only when numba is installed; the torch Bellman-Ford
solver of :mod:`workbench.formats.masks` is the fallback).

Per tile the problem is a max-weight b-matching, i.e. a min-cost flow of value N·M: source → row i (capacity N),
row i → column j (capacity 1, cost −|w_ij|), column j → sink (capacity N). Its LP is totally unimodular, so the
integral flow found by successive shortest paths is an exact optimum (Ahuja, Magnanti & Orlin 1993, ch. 9:
augmenting one unit at a time along a shortest path of the residual graph keeps the flow min-cost for its value;
Dijkstra runs on the reduced costs c(u, v) + π(u) − π(v) ≥ 0 and π += min(dist, dist(sink)) after each path).

Warm start: the largest k entries of the tile, k as large as possible with no row or column over N, are a min-cost
flow of value k, and the potentials π(row) = 0, π(column) = π(sink) = −τ (τ = the k-th largest |w|) make every
reduced cost ≥ 0, so only N·M − k augmentations remain (about 190 of 512 for 16:32 on Gaussian weights).

Cost per tile: (N·M − k) Dijkstra runs of O((2M)²) on dense arrays. Ties are broken deterministically (the stable
sort of the warm start, the lowest node index in each Dijkstra extraction).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def ssp_tile(a: np.ndarray, n: int, x: np.ndarray) -> None:  # pragma: no cover - compiled
    """Exact max-weight selection of ``a`` (m, m) float64 ≥ 0 with ``n`` per row and column, written into the
    boolean ``x`` (m, m) (overwritten)."""
    m = a.shape[0]
    inf = np.inf
    flat = a.ravel()
    order = np.argsort(-flat, kind="mergesort")
    rc = np.zeros(m, np.int64)
    cc = np.zeros(m, np.int64)
    x[:, :] = False
    tau = 0.0
    k = 0
    for q in range(m * m):
        idx = order[q]
        i = idx // m
        j = idx % m
        if rc[i] >= n or cc[j] >= n:
            break
        x[i, j] = True
        rc[i] += 1
        cc[j] += 1
        tau = flat[idx]
        k += 1
    pr = np.zeros(m)
    pc = np.full(m, -tau)
    pt = -tau
    dr = np.empty(m)
    dc = np.empty(m)
    vr = np.empty(m, np.bool_)
    vc = np.empty(m, np.bool_)
    predc = np.empty(m, np.int64)  # column j reached from row predc[j]
    predr = np.empty(m, np.int64)  # row i reached from column predr[i] (-1: from the source)
    for _ in range(n * m - k):
        for i in range(m):
            dr[i] = -pr[i] if rc[i] < n else inf
            dc[i] = inf
            vr[i] = False
            vc[i] = False
            predr[i] = -1
            predc[i] = -1
        dt = inf
        predt = -1
        while True:
            # extract the closest unvisited node (rows, then columns, then the sink on ties)
            best = inf
            node = -1
            for i in range(m):
                if not vr[i] and dr[i] < best:
                    best = dr[i]
                    node = i
            for j in range(m):
                if not vc[j] and dc[j] < best:
                    best = dc[j]
                    node = m + j
            if node < 0 or dt <= best:
                break
            if node < m:
                i = node
                vr[i] = True
                d0 = dr[i] + pr[i]
                for j in range(m):
                    if not x[i, j] and not vc[j]:
                        r = d0 - a[i, j] - pc[j]
                        if r < dr[i]:
                            r = dr[i]  # reduced costs are >= 0; rounding may dip below by ~1 ulp
                        if r < dc[j]:
                            dc[j] = r
                            predc[j] = i
            else:
                j = node - m
                vc[j] = True
                d0 = dc[j] + pc[j]
                for i in range(m):
                    if x[i, j] and not vr[i]:
                        r = d0 + a[i, j] - pr[i]
                        if r < dc[j]:
                            r = dc[j]
                        if r < dr[i]:
                            dr[i] = r
                            predr[i] = j
                if cc[j] < n:
                    r = d0 - pt
                    if r < dc[j]:
                        r = dc[j]
                    if r < dt:
                        dt = r
                        predt = j
        # augment one unit along the path sink <- predt <- ... <- source
        j = predt
        cc[j] += 1
        while True:
            i = predc[j]
            x[i, j] = True
            jp = predr[i]
            if jp < 0:
                rc[i] += 1
                break
            x[i, jp] = False
            j = jp
        for i in range(m):
            pr[i] += min(dr[i], dt)
            pc[i] += min(dc[i], dt)
        pt += dt


@njit(parallel=True, cache=True)
def ssp_tiles(a: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`ssp_tile` on every tile of ``a`` (T, m, m) float64, in parallel over tiles; bool (T, m, m)."""
    t = a.shape[0]
    m = a.shape[1]
    x = np.zeros((t, m, m), np.bool_)
    for s in prange(t):
        ssp_tile(a[s], n, x[s])
    return x


@njit(cache=True)
def greedy_tile(a: np.ndarray, n: int, x: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Hubara et al. 2021's greedy into ``x`` (overwritten): entries by |w| descending (stable: lower flat index
    first on ties), kept while their row and column have room. True when every row and column got ``n``."""
    m = a.shape[0]
    flat = a.ravel()
    order = np.argsort(-flat, kind="mergesort")
    rc = np.zeros(m, np.int64)
    cc = np.zeros(m, np.int64)
    x[:, :] = False
    kept = 0
    for q in range(m * m):
        idx = order[q]
        i = idx // m
        j = idx % m
        if rc[i] < n and cc[j] < n:
            x[i, j] = True
            rc[i] += 1
            cc[j] += 1
            kept += 1
    return kept == n * m


@njit(parallel=True, cache=True)
def greedy_tiles(a: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """:func:`greedy_tile` on every tile of ``a`` (T, m, m); ``(x, complete)``."""
    t = a.shape[0]
    m = a.shape[1]
    x = np.zeros((t, m, m), np.bool_)
    done = np.zeros(t, np.bool_)
    for s in prange(t):
        done[s] = greedy_tile(a[s], n, x[s])
    return x, done


@njit(cache=True)
def _moves(a: np.ndarray, x: np.ndarray, tr: bool, firsts: np.ndarray, seconds: np.ndarray, tol: float,
           own: np.ndarray, other: np.ndarray, checked: np.ndarray, clock: int) -> tuple[bool, int]:  # pragma: no cover
    """One pass of 4-cycle moves over the row pairs (``tr``: column pairs) of one tile, round by round as in
    :func:`workbench.formats.transposable._row_moves`. Returns (a move was made, the clock).

    Bookkeeping that skips work but not moves: ``own[i]`` / ``other[j]`` stamp when row i / column j (columns /
    rows when ``tr``) last changed, ``checked[i, k]`` when the pair was last looked at. The moves of a pair depend
    on its two rows only, so a pair looked at (and found without a move) after both rows last changed is skipped."""
    m = a.shape[0]
    changed = False
    for r in range(firsts.shape[0]):
        for p in range(firsts.shape[1]):
            i = firsts[r, p]
            k = seconds[r, p]
            if checked[i, k] > own[i] and checked[i, k] > own[k]:
                continue
            clock += 1
            checked[i, k] = clock
            dv = -np.inf
            ev = -np.inf
            dj = 0
            el = 0
            for j in range(m):
                if tr:
                    xij, xkj, aij, akj = x[j, i], x[j, k], a[j, i], a[j, k]
                else:
                    xij, xkj, aij, akj = x[i, j], x[k, j], a[i, j], a[k, j]
                if xij and not xkj:
                    v = akj - aij
                    if v > dv:
                        dv = v
                        dj = j
                elif xkj and not xij:
                    v = aij - akj
                    if v > ev:
                        ev = v
                        el = j
            if dv + ev > tol:
                changed = True
                if tr:
                    x[dj, i] = False
                    x[el, i] = True
                    x[el, k] = False
                    x[dj, k] = True
                else:
                    x[i, dj] = False
                    x[i, el] = True
                    x[k, el] = False
                    x[k, dj] = True
                clock += 1
                own[i] = own[k] = other[dj] = other[el] = clock
    return changed, clock


@njit(parallel=True, cache=True)
def local_search_tiles(a: np.ndarray, x: np.ndarray, firsts: np.ndarray, seconds: np.ndarray,
                       max_sweeps: int) -> None:  # pragma: no cover - compiled
    """:func:`workbench.formats.transposable.local_search` per tile, in place on ``x`` (T, m, m): the same moves
    in the same order, so both give the same masks (pairs that cannot have a move are skipped, see :func:`_moves`)."""
    t = a.shape[0]
    m = a.shape[1]
    for s in prange(t):
        top = 0.0
        for v in a[s].ravel():
            if v > top:
                top = v
        tol = 1e-12 * max(top, 1e-300)
        rows = np.zeros(m, np.int64)
        cols = np.zeros(m, np.int64)
        row_checked = np.full((m, m), -1, np.int64)
        col_checked = np.full((m, m), -1, np.int64)
        clock = 0
        for _ in range(max_sweeps):
            changed, clock = _moves(a[s], x[s], False, firsts, seconds, tol, rows, cols, row_checked, clock)
            changed2, clock = _moves(a[s], x[s], True, firsts, seconds, tol, cols, rows, col_checked, clock)
            if not (changed or changed2):
                break


@njit(cache=True)
def repair_tile(a: np.ndarray, n: int, x: np.ndarray) -> None:  # pragma: no cover - compiled
    """Complete a selection ``x`` with at most ``n`` per row and column to exactly ``n``, in place: the repair of
    :func:`workbench.formats.masks._augment` with ``shortest=False`` (labels set once, breadth-first, best gain
    among the first labels; one augmenting path at a time), step for step, so both give the same masks."""
    m = a.shape[0]
    inf = np.inf
    dr = np.empty(m)
    dc = np.empty(m)
    pr = np.empty(m, np.int64)
    pc = np.empty(m, np.int64)
    while True:
        deficit = False
        for i in range(m):
            c = 0
            for j in range(m):
                c += x[i, j]
            dr[i] = 0.0 if c < n else inf
            deficit = deficit or c < n
            dc[i] = inf
            pr[i] = -1
            pc[i] = -1
        if not deficit:
            return
        for _ in range(2 * m + 2):
            for j in range(m):
                if dc[j] == inf:
                    best = inf
                    arg = 0
                    for i in range(m):
                        if not x[i, j]:
                            v = dr[i] + (-a[i, j])
                            if v < best:
                                best = v
                                arg = i
                    if best < inf:
                        dc[j] = best
                        pc[j] = arg
            changed = False
            for i in range(m):
                if dr[i] == inf:
                    best = inf
                    arg = 0
                    for j in range(m):
                        if x[i, j]:
                            v = dc[j] + a[i, j]
                            if v < best:
                                best = v
                                arg = j
                    if best < inf:
                        dr[i] = best
                        pr[i] = arg
                        changed = True
            if not changed:
                break
        best = inf
        j = 0
        for jj in range(m):
            c = 0
            for i in range(m):
                c += x[i, jj]
            if c < n and dc[jj] < best:
                best = dc[jj]
                j = jj
        for _ in range(m + 1):
            i = pc[j]
            x[i, j] = True
            jp = pr[i]
            if jp < 0:
                break
            x[i, jp] = False
            j = jp


@njit(parallel=True, cache=True)
def repair_tiles(a: np.ndarray, n: int, x: np.ndarray, todo: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`repair_tile` on the tiles ``todo`` (indices) of ``x`` (T, m, m), in place."""
    for q in prange(todo.shape[0]):
        s = todo[q]
        repair_tile(a[s], n, x[s])


@njit(parallel=True, cache=True)
def enumerate_mask(w: np.ndarray, n: int, choices: np.ndarray, patterns: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Exact transposable mask of a 2-D weight ``w`` (R, C), both multiples of m, by scoring every valid m×m
    pattern of every tile: ``choices`` (K, n) are the row choices (column subsets), ``patterns`` (X, m) the valid
    patterns as one row choice per row, in the order of :func:`workbench.formats.masks.transposable_patterns`.
    Per tile the K row-choice sums of each row are formed once (float64), then each pattern's score is the sum
    of m of them; the first best pattern wins (the same choice as the matrix product over patterns). Parallel
    over tile rows; the mask is written in place of the weight's layout (no tile copies)."""
    m = patterns.shape[1]
    k = choices.shape[0]
    x = patterns.shape[0]
    rows = w.shape[0]
    cols = w.shape[1]
    out = np.zeros((rows, cols), np.bool_)
    for tr in prange(rows // m):
        sums = np.empty((m, k))
        for tc in range(cols // m):
            r0 = tr * m
            c0 = tc * m
            for i in range(m):
                for q in range(k):
                    s = 0.0
                    for e in range(n):
                        s += abs(np.float64(w[r0 + i, c0 + choices[q, e]]))
                    sums[i, q] = s
            best = -1.0
            arg = 0
            for p in range(x):
                s = 0.0
                for i in range(m):
                    s += sums[i, patterns[p, i]]
                if s > best:
                    best = s
                    arg = p
            for i in range(m):
                q = patterns[arg, i]
                for e in range(n):
                    out[r0 + i, c0 + choices[q, e]] = True
    return out
