"""Diffusion features P⁰X … P^H X, dense (the reference) or thresholded sparse, with their memory measured.

Atwood & Towsley 2016 ("Diffusion-Convolutional Neural Networks"): with ``P = D⁻¹A`` the degree-normalised
transition matrix (row i of P is the one-step random-walk distribution from node i), a DCNN for node classification
reads the tensor ``P* X`` whose hop-h slice is ``P^h X``. The paper's form stores the power series ``P*`` =
[P⁰, P¹, …, P^H] densely: (H+1)·N² numbers, O(N²) memory per hop, the wall this module makes visible.

Atwood, Pal, Towsley & Swami 2017 ("Sparse Diffusion-Convolutional Neural Networks", arXiv 1710.09813) threshold the
diffusion: entries below ``ε`` are dropped. Here the dropping happens at every hop,
``Q₀ = I``, ``Q_h = T_ε(P · Q_{h-1})`` with ``T_ε`` zeroing entries ``< ε``, stored as ``scipy.sparse`` CSR (the
product is formed in blocks of ``CHUNK_ROWS`` rows of P, each thresholded at once, so the unthresholded
intermediate stays small). Since
every row of ``P^h`` is a probability distribution (rows of ``Q_h`` sum to at most 1: entries are non-negative and
dropping only removes mass), a row keeps at most ``1/ε`` entries: ``nnz(Q_h) ≤ N/ε``, memory O(N) per hop for a
fixed ε. At ``ε = 0`` nothing is dropped and ``Q_h = P^h`` exactly (up to floating-point summation order).
Isolated nodes have a zero row in P (their features do not diffuse).

Both forms keep the whole power series while they work (the paper's ``P*``), so their memory compares like for
like. Memory is reported two ways: ``kernel_bytes``, the bytes of the stored kernel (dense: (H+1)·N²·itemsize;
sparse: the CSR arrays' ``nbytes``), and ``peak_bytes``, the peak of Python-tracked allocations (``tracemalloc``,
which sees every NumPy/SciPy array buffer; SciPy's C++ scratch vectors of O(N) are not seen) during the computation,
above what was allocated when it started. A dense run is refused *before allocating* when its estimate
(:func:`dense_bytes_estimate`) exceeds the memory available (``MemAvailable`` of ``/proc/meminfo``, or
``memory_limit=``).
"""

from __future__ import annotations

import math
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from workbench.checks import available_memory, format_bytes  # noqa: F401 (re-exported: graphs.available_memory)
from workbench.errors import DataError, MemoryBudgetError, NonFiniteError
from workbench.progress import Stopped, stop_callable

#: rows of P multiplied at once in the thresholded product (bounds the unthresholded intermediate)
CHUNK_ROWS = 16384


def check_hops(hops) -> int:
    """``hops`` as an int ≥ 0 (else DataError)."""
    if isinstance(hops, bool) or not isinstance(hops, (int, np.integer)) or hops < 0:
        raise DataError(f"hops must be an integer ≥ 0 (the largest power H of P⁰X … P^H X), got {hops!r}")
    return int(hops)


def check_threshold(threshold) -> float | None:
    """``threshold`` as None (dense) or a finite float ≥ 0 (else DataError)."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise DataError(f"threshold must be None (dense) or a number ≥ 0, got {threshold!r}")
    t = float(threshold)
    if not math.isfinite(t) or t < 0:
        raise DataError(f"threshold must be None (dense) or a finite number ≥ 0 (entries below it are dropped), "
                        f"got {threshold!r}")
    return t


def transition_matrix(adjacency: sp.spmatrix, dtype=np.float64) -> sp.csr_matrix:
    """``P = D⁻¹A`` as CSR (``dtype``); rows of isolated nodes are zero."""
    a = sp.csr_matrix(adjacency, dtype=dtype)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return sp.csr_matrix(sp.diags(inv.astype(dtype)) @ a, dtype=dtype)


def dense_bytes_estimate(n: int, hops: int, features: int, dtype=np.float32) -> int:
    """Bytes a dense diffusion of ``n`` nodes allocates: the stored power series (H+1)·N² (P¹ is P itself, so P is
    not counted twice; at H = 0 the identity is stored) plus the features N·(H+1)·F, all of ``dtype``."""
    item = np.dtype(dtype).itemsize
    return int(((hops + 1) * n * n + n * (hops + 1) * features) * item)


def sparse_bytes_bound(n: int, hops: int, threshold: float, dtype=np.float32) -> float:
    """The provable bound on the thresholded kernel: per hop ``min(N/ε, N²)`` entries of value + int32 index, plus
    the row pointers (inf when ε = 0 and N is unbounded: there is no O(N) bound without thresholding)."""
    item = np.dtype(dtype).itemsize + 4
    per_row = n if threshold <= 0 else min(n, math.floor(1.0 / threshold))
    return float((hops + 1) * (n * per_row * item + (n + 1) * 4))


def check_dense_memory(n: int, hops: int, features: int, dtype=np.float32, memory_limit: int | None = None,
                       what: str = "dense diffusion") -> int:
    """Raise :class:`MemoryBudgetError` when :func:`dense_bytes_estimate` exceeds ``memory_limit`` (default: the
    memory available now); return the estimate otherwise. Allocates nothing."""
    estimate = dense_bytes_estimate(n, hops, features, dtype)
    limit = available_memory() if memory_limit is None else int(memory_limit)
    if estimate > limit:
        raise MemoryBudgetError(
            f"{what} of N={n} nodes, hops={hops}, {features} features ({np.dtype(dtype).name}) needs an estimated "
            f"{format_bytes(estimate)} ((H+1)·N² kernel + features), more than the {format_bytes(limit)} "
            f"available; use threshold=ε (O(N) memory) or fewer nodes")
    return estimate


@contextmanager
def peak_memory() -> Iterator[dict]:
    """Measure the peak of tracemalloc-tracked allocations inside the block, above the level at its start.

    Yields a dict whose ``"peak_bytes"`` is filled on exit. Nested use is allowed (an outer trace keeps running)."""
    out: dict = {"peak_bytes": 0}
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        yield out
    finally:
        _, peak = tracemalloc.get_traced_memory()
        out["peak_bytes"] = max(0, int(peak - base))
        if started:
            tracemalloc.stop()


@dataclass
class Diffusion:
    """What :func:`diffuse` returns: the features and how much memory and time they took."""

    features: np.ndarray  # N × (H+1) × F
    table: pd.DataFrame  # one row per hop: hop, nnz, kernel_bytes, max_row_nnz, row_sum_max
    form: str  # "dense" or "thresholded"
    hops: int
    threshold: float | None
    kernel_bytes: int  # stored kernel, all hops
    peak_bytes: int  # tracemalloc peak during the computation
    seconds: float
    kernel: list | None = field(default=None, repr=False)  # P^h (dense arrays) or Q_h (CSR) when keep_kernel

    def summary(self) -> dict:
        n = self.features.shape[0]
        return {"form": self.form, "n_nodes": n, "hops": self.hops, "threshold": self.threshold,
                "kernel_bytes": self.kernel_bytes, "peak_bytes": self.peak_bytes,
                "nnz": int(self.table["nnz"].sum()), "seconds": self.seconds}


def _threshold_csr(m: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    if threshold > 0:
        m.data[m.data < threshold] = 0
    m.eliminate_zeros()
    return m


def diffuse(adjacency: sp.spmatrix, x: np.ndarray, hops: int, threshold: float | None = None, *,
            dtype=np.float32, memory_limit: int | None = None, keep_kernel: bool = False,
            chunk_rows: int = CHUNK_ROWS, stop: Any = None) -> Diffusion:
    """Diffusion features ``[P⁰X, …, P^H X]`` (N × (H+1) × F) of the graph ``adjacency`` with features ``x``.

    ``threshold=None``: the dense reference, storing every ``P^h`` as an N × N array (refused beforehand with a
    :class:`MemoryBudgetError` when :func:`dense_bytes_estimate` exceeds ``memory_limit``, default the memory
    available). ``threshold=ε ≥ 0``: the thresholded sparse kernel ``Q_h = T_ε(P Q_{h-1})`` (see the module
    docstring). ``keep_kernel=True`` keeps the matrices in ``.kernel``. ``stop=`` (see :func:`workbench.progress.stop_callable`)
    is polled before each hop; once it is set the run is abandoned with :class:`workbench.progress.Stopped` (half a
    kernel is no result).

    >>> import scipy.sparse as sp, numpy as np
    >>> a = sp.csr_matrix(np.array([[0, 1], [1, 0]]))
    >>> diffuse(a, np.array([[1.0], [0.0]]), hops=1).features[:, :, 0].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    hops = check_hops(hops)
    threshold = check_threshold(threshold)
    should_stop = stop_callable(stop)
    if not sp.issparse(adjacency):
        adjacency = sp.csr_matrix(np.asarray(adjacency))
    n = adjacency.shape[0]
    if n == 0 or adjacency.shape != (n, n):
        raise DataError(f"adjacency must be a non-empty square matrix, got shape {adjacency.shape}")
    if adjacency.nnz == 0:
        raise DataError(f"the graph has {n} nodes and no edges; diffusion needs at least one edge")
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise DataError(f"features must be N × F with N = {n} nodes, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise NonFiniteError(f"features hold NaN or inf on {int((~np.isfinite(x)).any(axis=1).sum())} of {n} "
                             f"nodes; features must be finite")
    f = x.shape[1]
    if threshold is None:
        check_dense_memory(n, hops, f, dtype, memory_limit)

    def check(done: int) -> None:
        if should_stop():
            raise Stopped(f"diffusion stopped by stop= after {done} of {hops} hops")
    x = x.astype(dtype, copy=False)
    rows = []
    t0 = time.perf_counter()
    with peak_memory() as mem:
        p = transition_matrix(adjacency, dtype=dtype)
        out = np.empty((n, hops + 1, f), dtype=dtype)
        out[:, 0, :] = x
        if threshold is None:
            kernel = [np.eye(n, dtype=dtype)]
            if hops >= 1:
                kernel.append(p.toarray())
            for h in range(2, hops + 1):
                check(h - 1)
                kernel.append(kernel[1] @ kernel[-1])
            for h in range(1, hops + 1):
                out[:, h, :] = kernel[h] @ x
            for h, k in enumerate(kernel):
                nz = np.count_nonzero(k, axis=1)
                rows.append({"hop": h, "nnz": int(nz.sum()), "kernel_bytes": int(k.nbytes),
                             "max_row_nnz": int(nz.max()), "row_sum_max": float(k.sum(axis=1).max())})
        else:
            kernel = [sp.identity(n, dtype=dtype, format="csr")]
            for h in range(1, hops + 1):
                check(h - 1)
                prev = kernel[-1]
                parts = [_threshold_csr(p[i:i + chunk_rows] @ prev, threshold) for i in range(0, n, chunk_rows)]
                q = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
                del parts
                out[:, h, :] = q @ x
                kernel.append(q)
            for h, k in enumerate(kernel):
                nz = np.diff(k.indptr)
                rows.append({"hop": h, "nnz": int(k.nnz),
                             "kernel_bytes": int(k.data.nbytes + k.indices.nbytes + k.indptr.nbytes),
                             "max_row_nnz": int(nz.max()), "row_sum_max": float(np.asarray(k.sum(axis=1)).max())})
        del p
    seconds = time.perf_counter() - t0
    table = pd.DataFrame(rows, columns=["hop", "nnz", "kernel_bytes", "max_row_nnz", "row_sum_max"])
    return Diffusion(features=out, table=table, form="dense" if threshold is None else "thresholded", hops=hops,
                     threshold=threshold, kernel_bytes=int(table["kernel_bytes"].sum()),
                     peak_bytes=int(mem["peak_bytes"]), seconds=seconds,
                     kernel=kernel if keep_kernel else None)


__all__ = ["Diffusion", "diffuse", "check_dense_memory", "format_bytes", "transition_matrix", "dense_bytes_estimate",
           "sparse_bytes_bound", "available_memory", "peak_memory", "check_hops", "check_threshold", "CHUNK_ROWS"]
