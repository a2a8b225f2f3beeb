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
problem. The matching and its duals come from two solvers written for this formulation. The first solve is a
forward–reverse auction with ε-scaling (:func:`_auction`, Bertsekas & Castañón) on the similarities rounded to
integers (``2^-40`` resolution, scaled by ``m + 1`` so that the final ε = 1 is exact for them); its prices are the
column duals. Then a primal–dual (Hungarian) solver (:func:`_max_weight`) makes the duals feasible and tight to ``tol``
on the exact similarities: it keeps ``u, v ≥ 0`` feasible and tight on the matching, and repairs every unmatched node
with a positive dual by a Dijkstra search over reduced costs (ending at an unmatched node of the other side, or where
a dual reaches 0 — the "leave it unmatched" option of the non-perfect problem). After the auction it has only
rounding to repair; it is warm-started in the later certificate rounds, where it changes few duals. (On weak, nearly
tied similarities — two independent 100,000-neuron layers — the searches alone build trees of thousands of nodes per
unmatched row: over 7 minutes for one layer, against 4 s for the auction.)

Candidates and certificate. Dense-ish layers (e.g. 784 inputs × 100,000 neurons) have billions of overlapping pairs,
too many to store. So the matching is solved on candidate pairs (each row's ``k`` most similar columns) and then
*certified*: one streaming pass over all overlapping pairs (an inverted index of ``b``'s inputs, never a stored
product) looks for pairs with ``s_ij ≥ u_i + v_j - tol`` that are not yet candidates. If there is none, the dual is
feasible for every pair, so the matching is optimal for the full problem, and every tight pair (``u_i + v_j = s_ij``)
is a candidate; otherwise those pairs join the candidates and the problem is solved again. A pass skips columns
that cannot break it (:func:`_cheap_columns`: a non-candidate pair is at most as similar as its row's ``k``-th
candidate).

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
from scipy.sparse.csgraph import connected_components

from workbench.errors import ShapeError

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
        if ac == 1:  # 0/1 rows (always in the first layer): the count is 1, no min
            for q in range(bt_ptr[c], bt_ptr[c + 1]):
                j = bt_idx[q]
                old = acc[j]
                touched[nt] = j  # branch-free: kept only when j is new
                nt += old == 0
                acc[j] = old + 1
        else:
            for q in range(bt_ptr[c], bt_ptr[c + 1]):
                j = bt_idx[q]
                old = acc[j]
                touched[nt] = j
                nt += old == 0
                bc = bt_cnt[q]
                acc[j] = old + (ac if ac < bc else bc)
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
        acc = np.zeros(nb, dtype=np.int32)
        touched = np.empty(nb + 1, dtype=np.int32)  # +1: room for the branch-free write
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
def _scan_slots(rows, slots, a_ptr, a_idx, a_cnt, sa, bt_ptr, bt_idx, bt_cnt, sb, u, v, tol, margin, c_ptr, c_idx,
                n_blocks):
    """The certificate scan: for each listed row, how many non-candidate pairs break it (``s ≥ u + v - tol``), how many
    are within ``margin`` of tight, and the first ``slots`` of the latter (column, similarity)."""
    n = rows.size
    nb = sb.size
    n_viol = np.zeros(n, dtype=np.int64)
    n_near = np.zeros(n, dtype=np.int64)
    out_j = np.empty((n, slots), dtype=np.int64)
    out_s = np.empty((n, slots), dtype=np.float64)
    step = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(nb, dtype=np.int32)
        touched = np.empty(nb + 1, dtype=np.int32)  # +1: room for the branch-free write
        flag = np.zeros(nb, dtype=np.bool_)
        for t in range(blk * step, min(n, (blk + 1) * step)):
            i = rows[t]
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = True
            nt = _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched)
            cv = 0
            cn = 0
            for q in range(nt):
                j = touched[q]
                inter = acc[j]
                acc[j] = 0
                if flag[j]:
                    continue
                s = inter / (sa[i] + sb[j] - inter)
                bound = u[i] + v[j]
                if s >= bound - margin:
                    if cn < slots:
                        out_j[t, cn] = j
                        out_s[t, cn] = s
                    cn += 1
                    if s >= bound - tol:
                        cv += 1
            n_viol[t] = cv
            n_near[t] = cn
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = False
    return n_viol, n_near, out_j, out_s


@njit(cache=True, parallel=True)
def _scan_pairs(rows, fill, offsets, a_ptr, a_idx, a_cnt, sa, bt_ptr, bt_idx, bt_cnt, sb, u, v, slack, c_ptr, c_idx,
                n_blocks, out_i, out_j, out_s):
    """For each listed row ``i``: the non-candidate columns ``j`` (candidates: CSR ``c_ptr, c_idx``) with
    ``s_ij ≥ u_i + v_j - slack``. Returns their count per listed row; with ``fill``, also writes them (row, column,
    similarity) into ``out_*`` from ``offsets[t]`` on (the cumulative counts of a counting pass)."""
    n = rows.size
    nb = sb.size
    count = np.zeros(n, dtype=np.int64)
    step = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(nb, dtype=np.int32)
        touched = np.empty(nb + 1, dtype=np.int32)  # +1: room for the branch-free write
        flag = np.zeros(nb, dtype=np.bool_)
        for t in range(blk * step, min(n, (blk + 1) * step)):
            i = rows[t]
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = True
            nt = _touch(i, a_ptr, a_idx, a_cnt, bt_ptr, bt_idx, bt_cnt, acc, touched)
            cnt = 0
            base = offsets[t] if fill else 0
            for q in range(nt):
                j = touched[q]
                inter = acc[j]
                acc[j] = 0
                if flag[j]:
                    continue
                s = inter / (sa[i] + sb[j] - inter)
                if s >= u[i] + v[j] - slack:
                    if fill:
                        out_i[base + cnt] = i
                        out_j[base + cnt] = j
                        out_s[base + cnt] = s
                    cnt += 1
            count[t] = cnt
            for p in range(c_ptr[i], c_ptr[i + 1]):
                flag[c_idx[p]] = False
    return count


# ------------------------------------------------------------------------------------------------------- matching
@njit(cache=True)
def _heap_push(hk, hn, size, key, node):
    pos = size
    hk[pos] = key
    hn[pos] = node
    while pos > 0:
        par = (pos - 1) >> 1
        if hk[par] <= hk[pos]:
            break
        hk[par], hk[pos] = hk[pos], hk[par]
        hn[par], hn[pos] = hn[pos], hn[par]
        pos = par
    return size + 1


@njit(cache=True)
def _heap_pop(hk, hn, size):
    key, node = hk[0], hn[0]
    size -= 1
    hk[0], hn[0] = hk[size], hn[size]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and hk[left + 1] < hk[left]:
            c = left + 1
        if hk[pos] <= hk[c]:
            break
        hk[pos], hk[c] = hk[c], hk[pos]
        hn[pos], hn[c] = hn[c], hn[pos]
        pos = c
    return key, node, size


@njit(cache=True)
def _search(root, ptr, idx, w, u, v, mate_s, mate_o, dist_o, done_o, pred_o, d_s, hk, hn, tree, settled):
    """One primal–dual step of the maximum-weight matching from a deficient node ``root`` (unmatched with a
    positive dual): Dijkstra on reduced costs ``u_x + v_j - w_xj ≥ 0`` over alternating paths. It ends at the nearest
    of: an unmatched node of the other side (augment), or a tree node ``x`` whose dual reaches 0 (node ``-1 - x``
    in the heap: flip the path to ``x`` and leave ``x`` unmatched). Duals move by the Dijkstra distances so that they
    stay feasible, ≥ 0, and tight on the matching. ``u, mate_s, ptr…`` are the root's side, ``v, mate_o`` the other."""
    inf = np.inf
    size = 0
    nt = 0
    ns = 0
    d_s[root] = 0.0
    tree[nt] = root
    nt += 1
    size = _heap_push(hk, hn, size, u[root], -1 - root)
    x = root
    dx = 0.0
    delta = 0.0
    term = -1
    while True:
        if x >= 0:  # scan the new tree node x
            for p in range(ptr[x], ptr[x + 1]):
                j = idx[p]
                if done_o[j]:
                    continue
                r = u[x] + v[j] - w[p]
                if r < 0.0:
                    r = 0.0
                nd = dx + r
                if nd < dist_o[j]:
                    if dist_o[j] == inf:
                        settled[ns] = j  # touched (reset later); settled = done_o
                        ns += 1
                    dist_o[j] = nd
                    pred_o[j] = x
                    size = _heap_push(hk, hn, size, nd, j)
            x = -1
        key, node, size = _heap_pop(hk, hn, size)
        if node < 0:  # a tree node's dual reaches 0
            delta = key
            term = node
            break
        if done_o[node] or key > dist_o[node]:
            continue
        done_o[node] = True
        y = mate_o[node]
        if y < 0:
            delta = key
            term = node
            break
        d_s[y] = key
        tree[nt] = y
        nt += 1
        size = _heap_push(hk, hn, size, key + u[y], -1 - y)
        x = y
        dx = key
    # duals
    for t in range(nt):
        y = tree[t]
        nu = u[y] - (delta - d_s[y])
        u[y] = nu if nu > 0.0 else 0.0
    for t in range(ns):
        j = settled[t]
        if done_o[j] and dist_o[j] < delta:
            v[j] += delta - dist_o[j]
    # augment
    if term < 0:
        xe = -1 - term
        if xe == root:
            j = -1
        else:
            j = mate_s[xe]
            mate_s[xe] = -1
    else:
        j = term
    while j >= 0:
        y = pred_o[j]
        nxt = mate_s[y]
        mate_s[y] = j
        mate_o[j] = y
        if y == root:
            break
        j = nxt
    # reset
    for t in range(ns):
        j = settled[t]
        dist_o[j] = inf
        done_o[j] = False
        pred_o[j] = -1


@njit(cache=True)
def _max_weight(r_ptr, r_idx, r_w, c_ptr, c_idx, c_w, mate_r, mate_c, u, v, tol):
    """Exact maximum-weight bipartite matching with duals ``u, v ≥ 0`` (primal–dual, warm-started from the given
    ``mate_r, mate_c, u, v``, which must be dual feasible and tight on the matching): every unmatched node with a
    positive dual is resolved by :func:`_search` from its side until none is left."""
    n_r = r_ptr.size - 1
    n_c = c_ptr.size - 1
    nn = max(n_r, n_c)
    cap = r_idx.size + 2 * nn + 2
    hk = np.empty(cap, dtype=np.float64)
    hn = np.empty(cap, dtype=np.int64)
    dist_o = np.full(nn, np.inf)
    done_o = np.zeros(nn, dtype=np.bool_)
    pred_o = -np.ones(nn, dtype=np.int64)
    d_s = np.zeros(nn)
    tree = np.empty(nn, dtype=np.int64)
    settled = np.empty(nn, dtype=np.int64)
    for i in range(n_r):
        if mate_r[i] < 0 and u[i] > tol:
            _search(i, r_ptr, r_idx, r_w, u, v, mate_r, mate_c, dist_o, done_o, pred_o, d_s, hk, hn, tree, settled)
    for j in range(n_c):
        if mate_c[j] < 0 and v[j] > tol:
            _search(j, c_ptr, c_idx, c_w, v, u, mate_c, mate_r, dist_o, done_o, pred_o, d_s, hk, hn, tree, settled)


#: The auction's weights are integers: ``round(s · 2^bits) · (m + 1)`` (``bits`` ≤ 40, fewer for huge ``m`` so that
#: prices stay below 2^62); with the final ε = 1 the matching is optimal for the rounded weights (gap < ``m`` units).
AUCTION_BITS = 40
#: ε is divided by this factor between the auction's scaling phases.
AUCTION_ALPHA = 5
_NULL = -2  # an auction row's "stay unmatched" option (value 0, no price)


@njit(cache=True)
def _auction(r_ptr, r_idx, r_w, c_ptr, c_idx, c_w, price, asg, own, eps0, alpha):
    """Maximum-weight (not necessarily perfect) matching on integer weights by the forward–reverse auction with
    ε-scaling (Bertsekas & Castañón 1993, asymmetric assignment; Bertsekas 1998, *Network Optimization* §7):

    * every row may stay unmatched (the option ``_NULL``: value 0, no price); ``asg`` is a row's column or ``_NULL``;
    * forward bids: an unassigned row takes its best column ``j1`` (value ``w - p``) and raises ``p[j1]`` by its margin
      over the second best option (at least the null option's 0) plus ε, evicting the owner;
    * reverse bids: a column left unassigned with a positive price offers itself to its best row ``i1`` (value ``w -
      π_i``, ``π`` = the rows' current values) at ``max(0, second best - ε)`` — or drops its price to 0 — so that
      every unassigned column ends at price 0, the condition for optimality of a non-perfect matching;
    * ε starts at ``eps0`` and is divided by ``alpha`` per phase down to 1; each phase keeps the prices and the rows
      still within ε of their best option.

    At the end every row is within ε = 1 of its best option and unassigned columns have price 0, so the duals ``u_i =
    max(0, max_j w_ij - p_j)``, ``v = p`` are within ``m`` units of the matching's weight: with weights that are
    multiples of ``m + 1`` the matching is optimal. Where the primal–dual searches of :func:`_max_weight` build huge
    trees on weak, nearly tied similarities (two independent 100,000-neuron layers), this takes seconds."""
    n_r = r_ptr.size - 1
    n_c = c_ptr.size - 1
    eps = eps0
    qr = np.empty(max(n_r, 1), dtype=np.int64)
    qc = np.empty(max(n_c, 1), dtype=np.int64)
    inq = np.zeros(n_c, dtype=np.bool_)
    pi = np.zeros(n_r, dtype=np.int64)  # the value of each row's assignment
    bids = 0
    while True:
        # rows no longer within ε of their best option start the phase unassigned
        nq = 0
        for r in range(n_r):
            a = asg[r]
            if a != -1:
                best = 0
                cur = 0
                for e in range(r_ptr[r], r_ptr[r + 1]):
                    val = r_w[e] - price[r_idx[e]]
                    if val > best:
                        best = val
                    if r_idx[e] == a:
                        cur = val
                if cur >= best - eps:
                    pi[r] = cur
                    continue
                if a >= 0:
                    own[a] = -1
                asg[r] = -1
            qr[nq] = r
            nq += 1
        # forward bids (FIFO)
        head = 0
        tail = nq % n_r if n_r else 0
        cnt = nq
        while cnt > 0:
            r = qr[head]
            head = (head + 1) % n_r
            cnt -= 1
            b1 = 0  # the null option
            b2 = 0
            j1 = _NULL
            for e in range(r_ptr[r], r_ptr[r + 1]):
                val = r_w[e] - price[r_idx[e]]
                if val > b1:
                    b2 = b1
                    b1 = val
                    j1 = r_idx[e]
                elif val > b2:
                    b2 = val
            if j1 == _NULL:
                asg[r] = _NULL
                pi[r] = 0
                continue
            price[j1] += b1 - b2 + eps
            bids += 1
            old = own[j1]
            own[j1] = r
            asg[r] = j1
            pi[r] = b2 - eps
            if old >= 0:
                asg[old] = -1
                qr[tail] = old
                tail = (tail + 1) % n_r
                cnt += 1
        # reverse bids: unassigned columns with a positive price
        nq = 0
        for j in range(n_c):
            if own[j] < 0 and price[j] > 0:
                qc[nq] = j
                inq[j] = True
                nq += 1
        head = 0
        tail = nq % n_c if n_c else 0
        cnt = nq
        while cnt > 0:
            j = qc[head]
            head = (head + 1) % n_c
            cnt -= 1
            inq[j] = False
            if own[j] >= 0 or price[j] <= 0:
                continue
            g1 = -(1 << 62)
            g2 = -(1 << 62)
            i1 = -1
            w1 = 0
            for e in range(c_ptr[j], c_ptr[j + 1]):
                val = c_w[e] - pi[c_idx[e]]
                if val > g1:
                    g2 = g1
                    g1 = val
                    i1 = c_idx[e]
                    w1 = c_w[e]
                elif val > g2:
                    g2 = val
            if g1 < eps:
                price[j] = 0
                continue
            p_new = g2 - eps
            if p_new < 0:
                p_new = 0
            price[j] = p_new
            bids += 1
            prev = asg[i1]
            asg[i1] = j
            own[j] = i1
            pi[i1] = w1 - p_new
            if prev >= 0:
                own[prev] = -1
                if price[prev] > 0 and not inq[prev]:
                    qc[tail] = prev
                    tail = (tail + 1) % n_c
                    cnt += 1
                    inq[prev] = True
        if eps == 1:
            break
        eps = max(1, eps // alpha)
    return bids


@njit(cache=True)
def _prepare(r_ptr, r_idx, r_w, mate_r, mate_c, u, v, tol):
    """Make ``u`` feasible on every pair (``u_i = max(u_i, max_j s_ij - v_j)``), unmatch rows whose pair is no longer
    tight, and match greedily along tight pairs to free columns (a warm start for :func:`_max_weight`)."""
    n_r = r_ptr.size - 1
    for i in range(n_r):
        mx = 0.0
        for p in range(r_ptr[i], r_ptr[i + 1]):
            t = r_w[p] - v[r_idx[p]]
            if t > mx:
                mx = t
        if mx > u[i]:
            u[i] = mx
        m = mate_r[i]
        if m >= 0:
            for p in range(r_ptr[i], r_ptr[i + 1]):
                if r_idx[p] == m:
                    if u[i] + v[m] - r_w[p] > tol:
                        mate_r[i] = -1
                        mate_c[m] = -1
                    break
    for i in range(n_r):
        if mate_r[i] >= 0 or u[i] <= tol:
            continue
        for p in range(r_ptr[i], r_ptr[i + 1]):
            j = r_idx[p]
            if mate_c[j] < 0 and u[i] + v[j] - r_w[p] <= tol:
                mate_r[i] = j
                mate_c[j] = i
                break


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


def _csr(n_r: int, n_c: int, ei: np.ndarray, ej: np.ndarray, es: np.ndarray, *more: np.ndarray):
    """Pairs ``(ei, ej)`` as CSR by row: ``ptr, idx, weights`` (and each array of ``more`` in the same order); the
    weights keep their dtype (float, or the auction's int64)."""
    order = np.lexsort((ej, ei))
    ptr = np.zeros(n_r + 1, dtype=np.int64)
    np.cumsum(np.bincount(ei, minlength=n_r), out=ptr[1:])
    return (ptr, ej[order].astype(np.int64), es[order]) + tuple(w[order] for w in more)


#: The second round re-solves from scratch by the auction when the first certificate added more than this fraction
#: of new candidate pairs (warm-started searches then build huge trees: 24 s against 4 s for 92,739 new pairs on two
#: independent 100,000-neuron second layers); otherwise, and in every later round, the primal–dual searches warm-start
#: from the last duals and change them only locally (so the rounds converge: few rows' duals go down).
COLD_FRACTION = 0.01


def _solve(m: int, ei: np.ndarray, ej: np.ndarray, es: np.ndarray, state: tuple | None,
           tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-weight matching on the candidate pairs with optimal duals ``u, v ≥ 0``. Without ``state``: by
    :func:`_auction` on the similarities rounded to integers (its prices become ``v``); with ``state`` (the previous
    round's ``mate_r, mate_c, u, v``): warm-started from it. Either way :func:`_prepare` and :func:`_max_weight` then
    make the duals feasible and tight to ``tol`` on the exact similarities (after the auction only rounding is left to
    repair). Returns the new state."""
    bits = min(AUCTION_BITS, 61 - int(m + 1).bit_length())
    wi = np.round(es * 2.0 ** bits).astype(np.int64) * (m + 1)  # the auction's integer weights
    r_ptr, r_idx, r_w, r_wi = _csr(m, m, ei, ej, es, wi)
    c_ptr, c_idx, c_w, c_wi = _csr(m, m, ej, ei, es, wi)
    if state is None:
        price = np.zeros(m, dtype=np.int64)
        asg = -np.ones(m, dtype=np.int64)
        own = -np.ones(m, dtype=np.int64)
        eps0 = max(1, int(wi.max(initial=0)) // AUCTION_ALPHA)
        _auction(r_ptr, r_idx, r_wi, c_ptr, c_idx, c_wi, price, asg, own, eps0, AUCTION_ALPHA)
        mate_r = np.where(asg >= 0, asg, -1).astype(np.int64)
        mate_c = own
        u, v = np.zeros(m), price / (2.0 ** bits * (m + 1))
    else:
        mate_r, mate_c, u, v = (x.copy() for x in state)
    _prepare(r_ptr, r_idx, r_w, mate_r, mate_c, u, v, tol)
    _max_weight(r_ptr, r_idx, r_w, c_ptr, c_idx, c_w, mate_r, mate_c, u, v, tol)
    return mate_r, mate_c, u, v


def _violations(rows: np.ndarray, args: tuple, u: np.ndarray, v: np.ndarray, tol: float, margin: float,
                ei: np.ndarray, ej: np.ndarray, m: int, nblk: int, slots: int = 8
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-candidate pairs of the listed rows that break the certificate (``s_ij ≥ u_i + v_j - tol``); in the rows
    that have one, every pair within ``margin`` of tight is returned (so that the next round needs fewer)."""
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    if rows.size == 0:
        return empty
    cand = sp.csr_matrix((np.ones(ei.size, dtype=np.int8), (ei, ej)), shape=(m, m))
    cand.sort_indices()
    c_ptr, c_idx = cand.indptr.astype(np.int64), cand.indices.astype(np.int64)
    n_viol, n_near, slot_j, slot_s = _scan_slots(rows, slots, *args, u, v, tol, margin, c_ptr, c_idx, nblk)
    hit = n_viol > 0
    if not hit.any():
        return empty
    fits = hit & (n_near <= slots)
    take = np.arange(slots)[None, :] < n_near[:, None]
    take &= fits[:, None]
    oi = np.repeat(rows, slots).reshape(rows.size, slots)[take]
    parts = [(oi, slot_j[take], slot_s[take])]
    over = rows[hit & ~fits]  # rows with more near-tight pairs than slots: count, then fill
    if over.size:
        cnt = _scan_pairs(over, False, over, *args, u, v, margin, c_ptr, c_idx, nblk, *empty)
        offsets = np.zeros(over.size, dtype=np.int64)
        np.cumsum(cnt[:-1], out=offsets[1:])
        total = int(cnt.sum())
        out = (np.empty(total, np.int64), np.empty(total, np.int64), np.empty(total))
        _scan_pairs(over, True, offsets, *args, u, v, margin, c_ptr, c_idx, nblk, *out)
        parts.append(out)
    out = tuple(np.concatenate([p[x] for p in parts]) for x in range(3))
    return out


def _cheap_columns(args: tuple, rows: np.ndarray, kth: np.ndarray, u: np.ndarray, v: np.ndarray,
                   margin: float) -> tuple:
    """The scan arguments with ``b``'s inverted index cut to the columns a certificate pass over ``rows`` can find.

    A non-candidate pair ``(i, j)`` is outside row ``i``'s top-k list, so ``s_ij ≤ kth_i``; it breaks the certificate
    or comes within ``margin`` of it only if ``s_ij ≥ u_i + v_j - margin``, hence only if ``v_j ≤ kth_i - u_i +
    margin``. Columns above ``max_i (kth_i - u_i) + margin`` over the listed rows are left out of the index: the pass
    finds the same pairs (intersections with the columns kept are still complete, every input of such a column stays
    in the index). The auction leaves most of the dual on the columns (first layer of two independent 100,000-neuron
    networks: median ``v`` 0.12 against median ``u`` 0.03, ``kth`` ≈ 0.12), so most columns drop out."""
    if rows.size == 0:
        return args
    theta = float(np.max(kth[rows] - u[rows])) + margin
    keep = v <= theta
    if keep.all():
        return args
    bt_ptr, bt_idx, bt_cnt = args[4], args[5], args[6]
    on = keep[bt_idx]
    inputs = np.repeat(np.arange(bt_ptr.size - 1), np.diff(bt_ptr))
    ptr = np.zeros_like(bt_ptr)
    np.cumsum(np.bincount(inputs[on], minlength=bt_ptr.size - 1), out=ptr[1:])
    return args[:4] + (ptr, bt_idx[on], bt_cnt[on]) + args[7:]


def sparse_matching_classes(ca: sp.csr_matrix, cb: sp.csr_matrix, *, tol: float = 1e-9, k: int = 24,
                            margin: float = 0.002, max_rounds: int = 50) -> SparseMatching:
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
        raise ShapeError(f"sparse_matching_classes: the layers to match have shapes {ca.shape} and {cb.shape}; "
                         "both must be n × m with the same n and m")
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
        args = (a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data.astype(np.int32), sa,
                bt.indptr.astype(np.int64), bt.indices.astype(np.int32), bt.data.astype(np.int32), sb)
        nblk = _n_blocks(m)
        kk = max(1, min(k, m))
        top_j, top_s = _scan_topk(*args, kk, nblk)
        ok = top_j >= 0
        ei = np.repeat(np.arange(m), kk)[ok.ravel()]
        ej, es = top_j[ok], top_s[ok]
        # a pair outside row i's top-k list is at most as similar as its k-th; -inf: the list holds every overlap
        kth = np.where(ok[:, -1], top_s[:, -1], -np.inf)
        # the same scans from b's side (for columns whose dual went down)
        at = sp.csr_matrix(a.T)
        at.sort_indices()
        b.sort_indices()
        targs = (b.indptr.astype(np.int64), b.indices.astype(np.int32), b.data.astype(np.int32), sb,
                 at.indptr.astype(np.int64), at.indices.astype(np.int32), at.data.astype(np.int32), sa)
        state = None
        cold = True
        rows = np.arange(m, dtype=np.int64)  # rows to certify (all, the first time)
        cols = np.empty(0, dtype=np.int64)   # columns to certify from b's side
        while True:
            rounds += 1
            state = _solve(m, ei, ej, es, None if cold else state, tol)
            match, _, u, v = state
            if rounds > 1:  # a certified pair can only break where a dual went down
                rows = np.flatnonzero(u < prev_u).astype(np.int64)
                cols = np.flatnonzero(v < prev_v).astype(np.int64)
            prev_u, prev_v = u.copy(), v.copy()
            new = [_violations(rows, _cheap_columns(args, rows, kth, u, v, margin), u, v, tol, margin, ei, ej, m, nblk)]
            nj, ni, ns_ = _violations(cols, targs, v, u, tol, margin, ej, ei, m, nblk)
            new.append((ni, nj, ns_))
            if not any(x[0].size for x in new):
                break
            if rounds >= max_rounds:  # pragma: no cover - a safety net
                raise RuntimeError(f"nnstd sparse path: no certificate after {rounds} rounds")
            ni = np.concatenate([x[0] for x in new])
            nj = np.concatenate([x[1] for x in new])
            ns_ = np.concatenate([x[2] for x in new])
            # a pair found from both sides is added once
            key = np.unique(ni * m + nj, return_index=True)[1]
            cold = rounds == 1 and key.size > COLD_FRACTION * ei.size  # once: warm rounds always converge
            ei, ej, es = np.concatenate([ei, ni[key]]), np.concatenate([ej, nj[key]]), np.concatenate([es, ns_[key]])
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
