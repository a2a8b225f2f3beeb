"""numba kernels of :class:`workbench.hashing.slide.HashedSparseLinear` (SLIDE, Chen et al. MLSys 2020; the CPU
follow-up of Daghaghi et al. MLSys 2021): per-input active sets held as a left-aligned ``(B, A)`` index with a count
per row, and the sparse products over them, without materializing the ``(B, A, d)`` gathered weights.

- :func:`union_active`: the union of the L retrieved buckets of each input (plus one extra id per input, the label
  SLIDE adds at the output layer), deduplicated with a per-thread stamp array (``O(retrieved)`` per input, no sort).
- :func:`sparse_logits`: ``out[b, a] = ⟨h[b], W[idx[b, a]]⟩ + bias[idx[b, a]]`` for ``a < count[b]`` (0 beyond).
- :func:`sparse_softmax_xent`: the same logits, the softmax cross-entropy over each active set and its gradient
  with respect to the logits, fused (no ``(B, A)`` passes in torch).
- :func:`sparse_grad_input`: ``gh[b] = Σ_a g[b, a] · W[idx[b, a]]``.
- :func:`row_csr` + :func:`sparse_grad_rows`: the weight gradient only on the rows some input touched:
  ``gW[u] = Σ_{(b, a): idx[b, a] = rows[u]} g[b, a] · h[b]`` (rows ascending, each once), parallel over rows so
  no two threads write the same row.

Every kernel is ``@njit(parallel=True)`` over inputs or rows (``prange``), compiled once per process and cached on disk
by numba; ``fastmath`` allows only reassociation and contraction (the inner dot products vectorize, AVX2/AVX-512),
so a dot product differs from a sequential sum by at most the usual ``d·u·Σ|h||w|`` bound.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

_FM = {"reassoc", "contract"}


@njit(parallel=True, cache=True)
def _union(lo, hi, ids, extra, n_items, out, count, chunks):  # pragma: no cover - compiled
    B, L = lo.shape
    for c in prange(chunks):
        mark = np.zeros(n_items, np.int32)
        for b in range(c, B, chunks):
            stamp = b + 1
            n = 0
            e = extra[b]
            if e >= 0:
                mark[e] = stamp
                out[b, n] = e
                n += 1
            for t in range(L):
                for p in range(lo[b, t], hi[b, t]):
                    j = ids[p]
                    if mark[j] != stamp:
                        mark[j] = stamp
                        out[b, n] = j
                        n += 1
            count[b] = n


def union_active(lo: np.ndarray, hi: np.ndarray, ids: np.ndarray, extra: np.ndarray,
                 n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``(idx (B, A), count (B,))``: row ``b`` holds ``extra[b]`` first (when ``≥ 0``), then every distinct id of
    ``ids[lo[b, t]:hi[b, t]]`` over the tables ``t`` in order of first appearance; ``A = max(count)``."""
    B = lo.shape[0]
    bound = int((hi - lo).sum(1).max()) + 1 if B else 1
    out = np.empty((B, max(bound, 1)), np.int64)  # only the first count[b] of each row are written
    count = np.zeros(B, np.int64)
    _union(lo, hi, ids, extra, n_items, out, count, max(1, min(B, get_num_threads())))
    width = max(int(count.max()) if B else 1, 1)
    res = np.ascontiguousarray(out[:, :width])
    res[np.arange(width)[None, :] >= count[:, None]] = 0
    return res, count


@njit(parallel=True, fastmath=_FM, cache=True)
def sparse_logits(h, w, bias, idx, count, out):  # pragma: no cover - compiled
    B, d = h.shape
    for b in prange(B):
        for a in range(count[b]):
            j = idx[b, a]
            s = bias[j]
            for k in range(d):
                s += h[b, k] * w[j, k]
            out[b, a] = s


@njit(parallel=True, fastmath=_FM, cache=True)
def sparse_softmax_xent(h, w, bias, idx, count, tpos, scale, losses, g):  # pragma: no cover - compiled
    """Per input ``b``: the active logits ``z_a``, ``losses[b] = logsumexp(z) − z[tpos[b]]`` and
    ``g[b, a] = scale·(softmax(z)_a − [a = tpos[b]])`` (0 beyond ``count[b]``): the softmax cross-entropy over the
    active set and its gradient with respect to the logits, in one pass over the active rows."""
    B, d = h.shape
    for b in prange(B):
        n = count[b]
        m = -np.inf
        for a in range(n):
            j = idx[b, a]
            s = bias[j]
            for k in range(d):
                s += h[b, k] * w[j, k]
            g[b, a] = s
            if s > m:
                m = s
        tot = 0.0
        for a in range(n):
            tot += np.exp(g[b, a] - m)
        lse = m + np.log(tot)
        losses[b] = lse - g[b, tpos[b]]
        for a in range(n):
            g[b, a] = scale * np.exp(g[b, a] - lse)
        g[b, tpos[b]] -= scale
        for a in range(n, g.shape[1]):
            g[b, a] = 0.0


@njit(parallel=True, fastmath=_FM, cache=True)
def sparse_grad_input(g, w, idx, count, out):  # pragma: no cover - compiled
    B, d = out.shape
    for b in prange(B):
        for k in range(d):
            out[b, k] = 0.0
        for a in range(count[b]):
            j = idx[b, a]
            gv = g[b, a]
            for k in range(d):
                out[b, k] += gv * w[j, k]


@njit(cache=True)
def row_csr(idx, count, n_items):  # pragma: no cover - compiled
    """``(rows, ptr, pairs)``: the distinct ids of ``idx`` (ascending), and for row ``u`` the flat positions
    ``b·A + a`` of its occurrences in ``pairs[ptr[u]:ptr[u+1]]``."""
    B, A = idx.shape
    slot = np.zeros(n_items, np.int64)
    for b in range(B):
        for a in range(count[b]):
            slot[idx[b, a]] += 1
    n_rows = 0
    for j in range(n_items):
        if slot[j] > 0:
            n_rows += 1
    rows = np.empty(n_rows, np.int64)
    ptr = np.zeros(n_rows + 1, np.int64)
    u = 0
    for j in range(n_items):
        c = slot[j]
        if c > 0:
            rows[u] = j
            ptr[u + 1] = ptr[u] + c
            slot[j] = u
            u += 1
    fill = ptr[:-1].copy()
    pairs = np.empty(ptr[n_rows], np.int64)
    for b in range(B):
        for a in range(count[b]):
            u = slot[idx[b, a]]
            pairs[fill[u]] = b * A + a
            fill[u] += 1
    return rows, ptr, pairs


@njit(parallel=True, fastmath=_FM, cache=True)
def sparse_grad_rows(g, h, ptr, pairs, width, gw, gb):  # pragma: no cover - compiled
    d = h.shape[1]
    for u in prange(ptr.shape[0] - 1):
        for k in range(d):
            gw[u, k] = 0.0
        s = 0.0
        for p in range(ptr[u], ptr[u + 1]):
            q = pairs[p]
            b = q // width
            gv = g[b, q - b * width]
            s += gv
            for k in range(d):
                gw[u, k] += gv * h[b, k]
        gb[u] = s


__all__ = ["union_active", "sparse_logits", "sparse_softmax_xent", "sparse_grad_input", "row_csr", "sparse_grad_rows"]
