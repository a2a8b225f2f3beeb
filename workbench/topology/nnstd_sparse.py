"""The exact sparse path of tie-exact NNSTD: one layer's optimal matching and tie classes without an n × n matrix.

Why it is exact. Two neurons that share no input are at Jaccard distance exactly 1 (similarity ``s = 0``), and
``d = 1 - s`` everywhere, so the optimal assignment costs ``n - max_σ Σ_i s(i, σ(i))``. Because ``s ≥ 0``, the
maximum over permutations equals the maximum-weight (not necessarily perfect) matching on the sparse bipartite graph
of *overlapping* pairs (weight = weighted Jaccard similarity ``Σ min / Σ max`` of the class counts; see
:mod:`workbench.topology.nnstd`): the rows it leaves unmatched are paired with the unmatched columns at cost 1 each,
and such a pair never overlaps (else the matching could grow). The one exception to "no overlap ⇒ distance 1" is two
empty neurons (distance 0): ``min(#empty in a, #empty in b)`` empty pairs are matched first (every optimal assignment
does so, by an exchange argument) and the rest of the problem never sees an empty–empty pair.

Duals. The LP dual of the maximum-weight matching is ``min Σ u + Σ v`` with ``u_i + v_j ≥ s_ij`` and ``u, v ≥ 0``.
Since ``u, v ≥ 0``, an optimal dual of the sparse problem also satisfies ``u_i + v_j ≥ 0 = s_ij`` on every implicit
(non-overlapping) pair, and its objective equals the assignment optimum: it is an optimal dual of the full n × n
problem. Given the solver's optimal matching σ, the dual is computed as shortest paths (Bellman–Ford rounds, no
negative cycle because σ is optimal): ``v_k`` = shortest distance from column ``k`` to a free column or to the sink,
over arcs ``σ(i) → j`` of length ``s(i, σ(i)) - s(i, j)`` (row ``i`` gives up its column and takes ``j``) and the arc
``σ(i) → sink`` of length ``s(i, σ(i))`` (row ``i`` becomes unmatched); ``u_i = s(i, σ(i)) - v_σ(i)`` and ``u = 0``
on unmatched rows, ``v = 0`` on free columns.

Candidates and certificate. Dense-ish layers (e.g. 784 inputs × 100,000 neurons) have billions of overlapping pairs,
too many to store. So the matching is solved on candidate pairs (each row's ``k`` most similar columns) and then
*certified*: one streaming pass over all overlapping pairs (an inverted index of ``b``'s inputs, never a stored
product) looks for pairs with ``s_ij ≥ u_i + v_j - tol`` that are not yet candidates. If there is none, the dual is
feasible for every pair, so the matching is optimal for the full problem, and every tight pair (``u_i + v_j = s_ij``)
is a candidate; otherwise those pairs join the candidates and the problem is solved again.

Tie classes (the same definition as the dense path, :func:`workbench.topology.nnstd.optimal_matching_classes`): a pair
is used by some optimal assignment iff it is tight under the optimal dual and lies on an alternating cycle of tight
pairs; the classes are the strongly connected components of the tight exchange graph on columns (arc ``σ(i) → j``
when pair ``(i, j)`` is tight). Explicit tight pairs come from the candidates. Implicit pairs (``s = 0``) are tight iff
``u_i = 0`` and ``v_j = 0``; with ``Z_a = {i: u_i = 0}``, ``Z_b = {j: v_j = 0}`` every pair of ``Z_a × Z_b`` is
implicit (an overlapping one would violate the dual), so the implicit tight arcs form the complete block ``{σ(i): i ∈
Z_a} → Z_b``. It is represented by one hub node ``H`` (``σ(i) → H → j``): a path through the hub between two distinct
columns exists iff the direct arc does, so the components on columns are unchanged. Unmatched rows are paired with
unmatched columns at cost 1 in any order (all such pairs are implicit and tight, and those columns all lie in the
hub's component), so their explicit tight pairs are arcs from ``H``.

Cost: the scan touches ``Σ_c deg_a(c) · deg_b(c)`` (row, column) incidences per pass (``c`` runs over the inputs),
memory is O(n · k + nnz). With numba installed the scans are compiled and run in parallel over rows; without it they
run as plain Python (correct, slow: for small layers only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

try:  # the compiled scans; plain Python without numba (the `cpu` extra)
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False
    prange = range

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


# ------------------------------------------------------------------------------------------------------- scans
@njit(cache=True)
def _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched):
    """Intersections ``Σ_c min(a_ic, b_jc)`` of row ``i`` with every overlapping row ``j`` of b: into ``acc[j]``,
    the touched ``j`` listed in ``touched``; returns how many."""
    nt = 0
    for p in range(a_ptr[i], a_ptr[i + 1]):
        c = a_idx[p]
        ac = a_cnt[p]
        for q in range(bt_ptr[c], bt_ptr[c + 1]):
            j = bt_idx[q]
            if acc[j] == 0:
                touched[nt] = j
                nt += 1
            bc = bt_cnt[q]
            acc[j] += ac if ac < bc else bc
    return nt


@njit(cache=True, parallel=True)
def _scan_topk(a_ptr, a_idx, a_cnt, sa, bt_ptr, bt_idx, bt_cnt, sb, k, n_blocks):
    """Each row's ``k`` most similar overlapping columns (ties: smaller column first); -1 where fewer overlap."""
    n = a_ptr.size - 1
    nb = sb.size
    top_j = -np.ones((n, k), dtype=np.int64)
    top_s = np.zeros((n, k), dtype=np.float64)
    step = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(nb, dtype=np.int64)
        touched = np.empty(nb, dtype=np.int64)
        for i in range(blk * step, min(n, (blk + 1) * step)):
            nt = _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched)
            filled = 0
            for t in range(nt):
                j = touched[t]
                inter = acc[j]
                acc[j] = 0
                s = inter / (sa[i] + sb[j] - inter)
                # insertion into the sorted top list (descending s, ascending j)
                if filled == k:
                    ls = top_s[i, k - 1]
                    if s < ls or (s == ls and j > top_j[i, k - 1]):
                        continue
                    pos = k - 1
                else:
                    pos = filled
                    filled += 1
                while pos > 0 and (top_s[i, pos - 1] < s or (top_s[i, pos - 1] == s and top_j[i, pos - 1] > j)):
                    top_s[i, pos] = top_s[i, pos - 1]
                    top_j[i, pos] = top_j[i, pos - 1]
                    pos -= 1
                top_s[i, pos] = s
                top_j[i, pos] = j
    return top_j, top_s


@njit(cache=True, parallel=True)
def _scan_violations(a_ptr, a_idx, a_cnt, sa, bt_ptr, bt_idx, bt_cnt, sb, u, v, tol, c_ptr, c_idx, n_blocks):
    """Per row: how many non-candidate columns ``j`` have ``s_ij ≥ u_i + v_j - tol`` (candidates: CSR c_ptr/c_idx)."""
    n = a_ptr.size - 1
    nb = sb.size
    count = np.zeros(n, dtype=np.int64)
    step = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(nb, dtype=np.int64)
        touched = np.empty(nb, dtype=np.int64)
        flag = np.zeros(nb, dtype=np.bool_)
        for i in range(blk * step, min(n, (blk + 1) * step)):
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = True
            nt = _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched)
            cnt = 0
            for t in range(nt):
                j = touched[t]
                inter = acc[j]
                acc[j] = 0
                if not flag[j] and inter / (sa[i] + sb[j] - inter) >= u[i] + v[j] - tol:
                    cnt += 1
            count[i] = cnt
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = False
    return count


@njit(cache=True)
def _collect_violations(rows, total, a_ptr, a_idx, a_cnt, sa, bt_ptr, bt_idx, bt_cnt, sb, u, v, tol, c_ptr, c_idx):
    """The pairs counted by :func:`_scan_violations` for the given rows: (row, column, similarity)."""
    nb = sb.size
    acc = np.zeros(nb, dtype=np.int64)
    touched = np.empty(nb, dtype=np.int64)
    flag = np.zeros(nb, dtype=np.bool_)
    out_i = np.empty(total, dtype=np.int64)
    out_j = np.empty(total, dtype=np.int64)
    out_s = np.empty(total, dtype=np.float64)
    m = 0
    for i in rows:
        for p in range(c_ptr[i], c_ptr[i + 1]):
            flag[c_idx[p]] = True
        nt = _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched)
        for t in range(nt):
            j = touched[t]
            inter = acc[j]
            acc[j] = 0
            s = inter / (sa[i] + sb[j] - inter)
            if not flag[j] and s >= u[i] + v[j] - tol:
                out_i[m] = i
                out_j[m] = j
                out_s[m] = s
                m += 1
        for p in range(c_ptr[i], c_ptr[i + 1]):
            flag[c_idx[p]] = False
    return out_i[:m], out_j[:m], out_s[:m]


# ------------------------------------------------------------------------------------------------------- solver
@dataclass
class SparseMatching:
    """One layer's optimal assignment on the sparse path: ``sigma`` (column of each row, a permutation), the tie
    classes of rows and columns (labels ``0 … n_classes-1``), and what it took (``candidates``: pairs the matching saw,
    ``rounds``: solve-and-certify rounds, ``scanned``: incidences touched per scan)."""

    sigma: np.ndarray
    row_class: np.ndarray
    col_class: np.ndarray
    n_classes: int
    candidates: int
    rounds: int
    scanned: int


def scan_work(ca: sp.csr_matrix, cb: sp.csr_matrix) -> int:
    """(row, column) incidences one scan touches: ``Σ_c deg_a(c) · deg_b(c)`` over the inputs ``c`` (the size the
    product ``a · bᵀ`` would have before merging duplicates)."""
    da = np.bincount(ca.indices, minlength=ca.shape[1]).astype(np.int64)
    db = np.bincount(cb.indices, minlength=cb.shape[1]).astype(np.int64)
    return int(da @ db)


def _n_blocks(n: int) -> int:
    if not HAVE_NUMBA:
        return 1
    import numba

    return max(1, min(n, 8 * numba.get_num_threads()))


def _solve(n: int, ei: np.ndarray, ej: np.ndarray, es: np.ndarray) -> np.ndarray:
    """Maximum-weight matching on the candidate pairs (similarities ``es > 0``): column of each row, -1 if none.

    As a minimum-cost full matching (scipy's LAPJVsp) of rows into the columns plus one private dummy column per row:
    cost ``2 - s`` for a pair (in ``(1, 2]``: never an implicit zero), ``2`` for the dummy."""
    rows = np.concatenate([ei, np.arange(n)])
    cols = np.concatenate([ej, n + np.arange(n)])
    cost = np.concatenate([2.0 - es, np.full(n, 2.0)])
    g = sp.csr_matrix((cost, (rows, cols)), shape=(n, 2 * n))
    r, c = min_weight_full_bipartite_matching(g)
    match = np.full(n, -1, dtype=np.int64)
    match[r] = np.where(c < n, c, -1)
    return match


def _duals(n: int, match: np.ndarray, ei: np.ndarray, ej: np.ndarray, es: np.ndarray,
           tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal duals ``u, v ≥ 0`` of the matching ``match`` (see the module docstring): Bellman–Ford rounds."""
    matched = match >= 0
    s_match = np.zeros(n)
    # similarity of each matched pair, read from the candidate list (every matched pair is a candidate)
    on = matched[ei] & (ej == match[ei])
    s_match[ei[on]] = es[on]
    v = np.zeros(n)
    v[match[matched]] = s_match[matched]  # the arc to the sink
    arc = matched[ei] & (ej != match[ei])
    tail = match[ei[arc]]
    w = s_match[ei[arc]] - es[arc]
    head = ej[arc]
    order = np.argsort(tail, kind="stable")
    tail, w, head = tail[order], w[order], head[order]
    if tail.size:
        starts = np.flatnonzero(np.r_[True, tail[1:] != tail[:-1]])
        heads_of = tail[starts]
        for _ in range(n + 2):
            cand = np.minimum.reduceat(w + v[head], starts)
            better = cand < v[heads_of] - tol
            if not better.any():
                break
            v[heads_of[better]] = cand[better]
        else:  # pragma: no cover - impossible for an optimal matching
            raise RuntimeError("nnstd sparse path: the matching is not optimal (negative cycle in the duals)")
    v = np.maximum(v, 0.0)
    u = np.zeros(n)
    u[matched] = np.maximum(s_match[matched] - v[match[matched]], 0.0)
    return u, v


def sparse_matching_classes(ca: sp.csr_matrix, cb: sp.csr_matrix, *, tol: float = 1e-9, k: int = 8,
                            max_rounds: int = 50) -> SparseMatching:
    """Optimal assignment of rows of ``ca`` to rows of ``cb`` (n × m nonnegative integer class counts, equal ``n``)
    under the weighted Jaccard distance, and the tie classes of all optimal assignments, on the sparse path.

    The same result as :func:`workbench.topology.nnstd.optimal_matching_classes` on the dense matrix
    :func:`~workbench.topology.nnstd.jaccard_distance_matrix` ``(ca, cb)`` (the same classes; the matching is one of
    the optimal ones), without forming it: see the module docstring for the argument.
    """
    ca = sp.csr_matrix(ca, dtype=np.int64)
    cb = sp.csr_matrix(cb, dtype=np.int64)
    ca.sum_duplicates()
    cb.sum_duplicates()
    n = ca.shape[0]
    if cb.shape != ca.shape:
        raise ValueError(f"sparse_matching_classes: shapes {ca.shape} and {cb.shape} differ")
    sa_all = np.asarray(ca.sum(axis=1)).ravel()
    sb_all = np.asarray(cb.sum(axis=1)).ravel()
    # --- empty neurons: min(#empty a, #empty b) empty pairs are matched first (distance 0)
    ea, eb = np.flatnonzero(sa_all == 0), np.flatnonzero(sb_all == 0)
    k0 = min(ea.size, eb.size)
    keep_r = np.ones(n, dtype=bool)
    keep_c = np.ones(n, dtype=bool)
    keep_r[ea[:k0]] = False
    keep_c[eb[:k0]] = False
    R, C = np.flatnonzero(keep_r), np.flatnonzero(keep_c)
    m = R.size
    sigma = np.full(n, -1, dtype=np.int64)
    sigma[ea[:k0]] = eb[:k0]
    row_lab = np.full(n, -1, dtype=np.int64)
    col_lab = np.full(n, -1, dtype=np.int64)
    rounds = n_cand = 0
    a = ca[R]
    b = cb[C]
    work = scan_work(a, b) if m else 0
    if m:
        sa, sb = sa_all[R].astype(np.int64), sb_all[C].astype(np.int64)
        bt = sp.csr_matrix(b.T)
        bt.sort_indices()
        a.sort_indices()
        args = (a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data.astype(np.int64), sa,
                bt.indptr.astype(np.int64), bt.indices.astype(np.int64), bt.data.astype(np.int64), sb)
        nblk = _n_blocks(m)
        kk = max(1, min(k, m))
        top_j, top_s = _scan_topk(*args, kk, nblk)
        ok = top_j >= 0
        ei = np.repeat(np.arange(m), kk)[ok.ravel()]
        ej, es = top_j[ok], top_s[ok]
        while True:
            rounds += 1
            match = _solve(m, ei, ej, es)
            u, v = _duals(m, match, ei, ej, es, tol)
            cand = sp.csr_matrix((np.ones(ei.size, dtype=np.int8), (ei, ej)), shape=(m, m))
            cand.sort_indices()
            c_ptr, c_idx = cand.indptr.astype(np.int64), cand.indices.astype(np.int64)
            count = _scan_violations(*args, u, v, tol, c_ptr, c_idx, nblk)
            total = int(count.sum())
            if total == 0:
                break
            if rounds >= max_rounds:  # pragma: no cover - a safety net
                raise RuntimeError(f"nnstd sparse path: no certificate after {rounds} rounds")
            ni, nj, ns = _collect_violations(np.flatnonzero(count), total, *args, u, v, tol, c_ptr, c_idx)
            ei, ej, es = np.concatenate([ei, ni]), np.concatenate([ej, nj]), np.concatenate([es, ns])
        n_cand = int(ei.size)
        # --- the tight exchange graph on columns 0..m-1 plus the hub m
        matched = match >= 0
        hub = m
        tight = np.abs(u[ei] + v[ej] - es) <= tol
        mi = matched[ei]
        src = np.where(mi, match[ei], hub)
        keep = tight & (ej != np.where(mi, match[ei], -1))
        t_src, t_dst = src[keep], ej[keep]
        z_rows = np.flatnonzero(matched & (u <= tol))
        free_cols = np.setdiff1d(np.arange(m), match[matched])
        into_hub = np.concatenate([match[z_rows], free_cols])
        out_hub = np.flatnonzero(v <= tol)
        g_src = np.concatenate([t_src, into_hub, np.full(out_hub.size, hub)])
        g_dst = np.concatenate([t_dst, np.full(into_hub.size, hub), out_hub])
        g = sp.csr_matrix((np.ones(g_src.size, dtype=np.int8), (g_src, g_dst)), shape=(m + 1, m + 1))
        _, lab = connected_components(g, directed=True, connection="strong")
        r_lab = np.where(matched, lab[np.where(matched, match, 0)], lab[hub])
        row_lab[R] = r_lab
        col_lab[C] = lab[:m]
        # the full assignment: unmatched rows take the free columns in order (all at distance 1)
        sub_sigma = match.copy()
        sub_sigma[~matched] = free_cols
        sigma[R] = C[sub_sigma]
        hub_label = lab[hub]
        next_label = int(lab.max()) + 1
    else:
        hub_label, next_label = -1, 0
    if k0:
        leftover = ea.size != eb.size
        g_label = hub_label if (leftover and m) else next_label
        row_lab[ea[:k0]] = g_label
        col_lab[eb[:k0]] = g_label
    # contiguous labels in order of first appearance over columns
    uniq, inv = np.unique(np.concatenate([col_lab, row_lab]), return_inverse=True)
    col_class, row_class = inv[:n], inv[n:]
    return SparseMatching(sigma, row_class.astype(np.int64), col_class.astype(np.int64), int(uniq.size),
                          n_cand, rounds, work)


__all__ = ["sparse_matching_classes", "SparseMatching", "scan_work", "HAVE_NUMBA"]
