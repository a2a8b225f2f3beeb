"""Memory and time of the diffusion against the number of nodes, dense vs thresholded, on the synthetic SBM family.

``memory_scaling(sizes, hops=2, threshold=0.01)`` builds ``make_sbm(n)`` for each size (synthetic, seeded) and
computes its diffusion features both ways; a dense run whose estimate exceeds ``dense_limit`` (default: the memory
available) is not run: its row has ``refused=True`` and the estimate in ``estimate_bytes`` (the O(N²) wall).
``fit_slope(df)`` fits ``log(bytes) = a + k·log(N)`` per form: k ≈ 2 for dense, ≈ 1 for thresholded, and the
linear fit ``bytes ≈ b·N + c`` (``bytes_per_node`` = b).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from workbench.errors import DataError, MemoryBudgetError
from workbench.graphs.data import make_sbm
from workbench.graphs.diffusion import (available_memory, check_hops, check_threshold, dense_bytes_estimate,
                                        diffuse, sparse_bytes_bound)
from workbench.progress import Stopped, stop_callable

SCALING_COLUMNS = ["n_nodes", "n_edges", "form", "hops", "threshold", "refused", "estimate_bytes", "kernel_bytes",
                   "peak_bytes", "nnz", "seconds", "bound_bytes"]


def memory_scaling(sizes: Iterable[int], hops: int = 2, threshold: float = 0.01, *,
                   forms: Iterable[str] = ("dense", "thresholded"), dense_limit: int | None = None,
                   features: int = 16, seed: int = 0, sbm: dict | None = None,
                   stop: Any = None,
                   on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """One row per (size, form): see the module docstring; ``on_row(row)`` is called as each row is done.
    ``stop=`` (see :func:`workbench.progress.stop_callable`): the rows finished so far are returned."""
    should_stop = stop_callable(stop)
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2:
        raise DataError(f"sizes must be a non-empty list of node counts ≥ 2, got {sizes!r}")
    hops = check_hops(hops)
    threshold = check_threshold(threshold)
    if threshold is None:
        raise DataError("memory_scaling compares dense with thresholded: give threshold=ε ≥ 0, not None")
    forms = list(forms)
    if not forms or any(f not in ("dense", "thresholded") for f in forms):
        raise DataError(f"forms must be a subset of ('dense', 'thresholded'), got {forms!r}")
    limit = available_memory() if dense_limit is None else int(dense_limit)
    rows = []
    for n in sizes:
        g = make_sbm(n, features=features, seed=seed, **(sbm or {}))
        for form in forms:
            if should_stop():
                return pd.DataFrame(rows, columns=SCALING_COLUMNS)
            t = None if form == "dense" else threshold
            est = dense_bytes_estimate(n, hops, features) if form == "dense" else None
            row = {"n_nodes": n, "n_edges": g.n_edges, "form": form, "hops": hops, "threshold": t,
                   "refused": False, "estimate_bytes": est, "kernel_bytes": np.nan, "peak_bytes": np.nan,
                   "nnz": np.nan, "seconds": np.nan,
                   "bound_bytes": sparse_bytes_bound(n, hops, threshold) if t is not None else np.nan}
            try:
                d = diffuse(g.adjacency, g.x, hops, t, memory_limit=limit, stop=should_stop)
            except Stopped:
                return pd.DataFrame(rows, columns=SCALING_COLUMNS)
            except MemoryBudgetError:
                row["refused"] = True
            else:
                row.update(kernel_bytes=d.kernel_bytes, peak_bytes=d.peak_bytes, nnz=int(d.table["nnz"].sum()),
                           seconds=d.seconds)
                del d
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def fit_slope(df: pd.DataFrame, y: str = "kernel_bytes") -> pd.DataFrame:
    """Per form: the log–log exponent k of ``y`` against ``n_nodes`` and the linear ``bytes_per_node`` (rows that
    ran only; forms with fewer than two sizes are skipped)."""
    out = []
    for form, part in df[~df["refused"].astype(bool)].dropna(subset=[y]).groupby("form", sort=False):
        if part["n_nodes"].nunique() < 2:
            continue
        n, b = part["n_nodes"].to_numpy(float), part[y].to_numpy(float)
        k, _ = np.polyfit(np.log(n), np.log(b), 1)
        slope, intercept = np.polyfit(n, b, 1)
        out.append({"form": form, "metric": y, "loglog_exponent": float(k), "bytes_per_node": float(slope),
                    "intercept_bytes": float(intercept), "sizes": int(len(part))})
    return pd.DataFrame(out, columns=["form", "metric", "loglog_exponent", "bytes_per_node", "intercept_bytes",
                                      "sizes"])


__all__ = ["memory_scaling", "fit_slope", "SCALING_COLUMNS"]
