"""Node classification on one graph: DCNN (dense or thresholded) against two baselines, over repeated splits.

``node_classification(graph, method=..., hops=..., threshold=...)`` returns one tidy DataFrame, a row per (method,
split): test accuracy, the peak memory and the time of the method's graph computation, and the training time.

- ``"dcnn"``: :class:`~workbench.graphs.DCNN`; the diffusion ``P*X`` is computed once (transductive, no labels
  involved) and the classifier is trained on each split's training nodes by the project's one ``train`` loop
  (:func:`workbench.dynamics.train`: SGD with momentum on mini-batches of nodes, Atwood & Towsley trained theirs
  by backpropagation on mini-batches too). No adapter beyond a tiny handle object was needed: the loop takes
  ``(Z[train], y[train])`` / ``(Z[test], y[test])`` like any dataset.
- ``"label_propagation"``: Zhu & Ghahramani 2002: ``F ← P F`` with the training nodes clamped to their one-hot
  labels, from F = clamped labels, until the change is below 1e-6 or 200 iterations; predict argmax. Uses the graph,
  not the features.
- ``"logistic"``: scikit-learn's ``LogisticRegression`` on the standardised features alone (no graph).

Splits are stratified: for split s (seed ``seed + s``) each class puts ``round(train_fraction · count)`` of its
nodes (at least one, and at least one left for testing when it has two or more) in the training set; the rest are
tested. ``peak_bytes`` is tracemalloc's peak (see :mod:`workbench.graphs.diffusion`) during the diffusion (dcnn),
the propagation, or the fit; ``kernel_bytes`` the stored diffusion kernel (dcnn only).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from workbench.errors import DataError
from workbench.graphs.data import REAL_GRAPHS, Graph, check_graph, load_graph
from workbench.graphs.diffusion import check_dense_memory, check_hops, check_threshold, peak_memory, transition_matrix

METHODS = ("dcnn", "label_propagation", "logistic")
COLUMNS = ["graph", "synthetic", "labels", "n_nodes", "n_edges", "method", "form", "hops", "threshold", "split",
           "n_train", "n_test", "accuracy", "train_accuracy", "peak_bytes", "kernel_bytes", "seconds_graph",
           "seconds_train"]


def stratified_split(y: np.ndarray, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), stratified by class (see the module docstring)."""
    rng = np.random.default_rng(seed)
    train = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = int(round(train_fraction * len(members)))
        k = max(1, min(k, len(members) - 1)) if len(members) >= 2 else len(members)
        train.append(members[:k])
    tr = np.sort(np.concatenate(train))
    te = np.setdiff1d(np.arange(len(y)), tr)
    return tr, te


def label_propagation(adjacency: sp.spmatrix, y: np.ndarray, train: np.ndarray, classes: int,
                      max_iter: int = 200, tol: float = 1e-6) -> np.ndarray:
    """Predicted class of every node by label propagation (Zhu & Ghahramani 2002; see the module docstring)."""
    p = transition_matrix(adjacency, dtype=np.float64)
    clamp = np.zeros((len(y), classes))
    clamp[train, y[train]] = 1.0
    f = clamp.copy()
    for _ in range(max_iter):
        new = p @ f
        new[train] = clamp[train]
        delta = float(np.abs(new - f).max())
        f = new
        if delta < tol:
            break
    return f.argmax(axis=1)


class _SplitHandle:
    """The minimum the ``train`` loop asks of a handle: a model and (x, y) for training and testing."""

    def __init__(self, name: str, model, z, y, train, test) -> None:
        import torch

        self.name, self.model = name, model
        yt = torch.as_tensor(y, dtype=torch.long)
        tr, te = torch.as_tensor(train), torch.as_tensor(test)
        self._train = (z[tr], yt[tr])
        self._test = (z[te], yt[te])

    def train_data(self):
        return self._train

    def test_data(self):
        return self._test


def _resolve(graph: Graph | str) -> Graph:
    if isinstance(graph, str):
        if graph.startswith("sbm-"):
            from workbench.graphs.data import make_sbm

            try:
                n = int(float(graph[4:]))
            except ValueError:
                raise DataError(f"graph name {graph!r}: 'sbm-N' needs an integer N, e.g. 'sbm-1000'") from None
            return make_sbm(n)
        return load_graph(graph)
    return check_graph(graph)


def node_classification(graph: Graph | str, method: str | Sequence[str] = "dcnn", hops: int = 2,
                        threshold: float | None = None, *, splits: int = 5, train_fraction: float = 0.5,
                        epochs: float = 30, batch_size: int = 32, lr: float = 0.1, seed: int = 0,
                        memory_limit: int | None = None, diffusion=None, progress: bool = False,
                        stop=None) -> pd.DataFrame:
    """Accuracy over ``splits`` stratified splits, peak memory and time of each method (one tidy DataFrame, columns
    :data:`COLUMNS`).

    ``graph``: a :class:`Graph`, a bundled name (``"karate"``, ...) or ``"sbm-N"`` (synthetic, seed 0).
    ``method``: one of :data:`METHODS` or a list of them. ``hops``/``threshold``: the DCNN's (``threshold=None``:
    dense, refused before allocating when its estimate exceeds ``memory_limit``, default the memory available).
    ``epochs``/``batch_size``/``lr``: the ``train`` loop's (SGD, momentum 0.9). ``diffusion``: features from an
    earlier ``DCNN.diffuse`` of the same graph/hops/threshold, reused instead of recomputed (its memory and time
    reported). ``stop``: passed to ``train`` (a callable or event).
    """
    g = _resolve(graph)
    methods = [method] if isinstance(method, str) else list(method)
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise DataError(f"method must be one of {METHODS} or a list of them, got {method!r}")
    hops = check_hops(hops)
    threshold = check_threshold(threshold)
    if isinstance(splits, bool) or int(splits) != splits or splits < 1:
        raise DataError(f"splits must be a positive integer, got {splits!r}")
    if not 0.0 < float(train_fraction) < 1.0:
        raise DataError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if len(g.classes) < 2:
        raise DataError(f"graph {g.name!r} has {len(g.classes)} class; node classification needs at least two")
    if "dcnn" in methods and threshold is None and diffusion is None:
        check_dense_memory(g.n_nodes, hops, g.x.shape[1], memory_limit=memory_limit,
                           what=f"dense DCNN on {g.name!r}")
    base = {"graph": g.name, "synthetic": g.synthetic, "labels": g.labels, "n_nodes": g.n_nodes,
            "n_edges": g.n_edges}
    split_idx = [stratified_split(g.y, float(train_fraction), seed + s) for s in range(int(splits))]
    rows: list[dict[str, Any]] = []
    for m in methods:
        if m == "dcnn":
            rows += _dcnn_rows(g, hops, threshold, split_idx, base, epochs=epochs, batch_size=batch_size, lr=lr,
                               seed=seed, memory_limit=memory_limit, diffusion=diffusion, progress=progress,
                               stop=stop)
        elif m == "label_propagation":
            for s, (tr, te) in enumerate(split_idx):
                t0 = time.perf_counter()
                with peak_memory() as mem:
                    pred = label_propagation(g.adjacency, g.y, tr, g.n_classes)
                rows.append({**base, "method": m, "form": "graph", "hops": None, "threshold": None, "split": s,
                             "n_train": len(tr), "n_test": len(te), "accuracy": float((pred[te] == g.y[te]).mean()),
                             "train_accuracy": float((pred[tr] == g.y[tr]).mean()),
                             "peak_bytes": mem["peak_bytes"], "kernel_bytes": 0,
                             "seconds_graph": time.perf_counter() - t0, "seconds_train": 0.0})
        else:
            from sklearn.linear_model import LogisticRegression
            from sklearn.preprocessing import StandardScaler

            for s, (tr, te) in enumerate(split_idx):
                t0 = time.perf_counter()
                with peak_memory() as mem:
                    scaler = StandardScaler().fit(g.x[tr])
                    clf = LogisticRegression(max_iter=500).fit(scaler.transform(g.x[tr]), g.y[tr])
                    acc = float(clf.score(scaler.transform(g.x[te]), g.y[te]))
                    tr_acc = float(clf.score(scaler.transform(g.x[tr]), g.y[tr]))
                rows.append({**base, "method": m, "form": "features", "hops": None, "threshold": None, "split": s,
                             "n_train": len(tr), "n_test": len(te), "accuracy": acc, "train_accuracy": tr_acc,
                             "peak_bytes": mem["peak_bytes"], "kernel_bytes": 0, "seconds_graph": 0.0,
                             "seconds_train": time.perf_counter() - t0})
    return pd.DataFrame(rows, columns=COLUMNS)


def _dcnn_rows(g: Graph, hops: int, threshold: float | None, split_idx, base, *, epochs, batch_size, lr, seed,
               memory_limit, diffusion, progress, stop) -> list[dict]:
    import torch

    from workbench.dynamics.train import train
    from workbench.graphs.dcnn import DCNN

    model = DCNN(hops, g.x.shape[1], g.n_classes, threshold=threshold)
    if diffusion is None:
        z = model.diffuse(g, memory_limit=memory_limit)
        memory = model.memory
    else:
        z, memory = diffusion
        z = torch.as_tensor(z)
        if tuple(z.shape) != (g.n_nodes, hops + 1, g.x.shape[1]):
            raise DataError(f"diffusion= features have shape {tuple(z.shape)}, expected "
                            f"{(g.n_nodes, hops + 1, g.x.shape[1])} for graph {g.name!r} with hops={hops}")
    rows = []
    for s, (tr, te) in enumerate(split_idx):
        handle = _SplitHandle(g.name, model, z, g.y, tr, te)
        t0 = time.perf_counter()
        res = train(handle, batch_size=min(int(batch_size), len(tr)), lr=lr, epochs=epochs, seed=seed + s,
                    reinit=True, eval_every=max(float(epochs), 1.0), track_points=4, progress=progress, stop=stop)
        final = res.final()
        rows.append({**base, "method": "dcnn", "form": model.form, "hops": hops, "threshold": threshold, "split": s,
                     "n_train": len(tr), "n_test": len(te), "accuracy": float(final["test_acc"]),
                     "train_accuracy": float(final["train_acc"]), "peak_bytes": int(memory["peak_bytes"]),
                     "kernel_bytes": int(memory["kernel_bytes"]), "seconds_graph": float(memory["seconds"]),
                     "seconds_train": time.perf_counter() - t0})
        if res.stopped or res.interrupted:
            break
    return rows


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of accuracy over splits, with memory and time, per graph and method/form."""
    keys = ["graph", "method", "form", "hops", "threshold"]
    d = df.assign(hops=df["hops"].astype(object).where(df["hops"].notna(), "-"),
                  threshold=df["threshold"].astype(object).where(df["threshold"].notna(), "-"))
    out = d.groupby(keys, sort=False, dropna=False).agg(
        accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"), splits=("split", "count"),
        peak_bytes=("peak_bytes", "max"), kernel_bytes=("kernel_bytes", "max"),
        seconds_graph=("seconds_graph", "mean"), seconds_train=("seconds_train", "mean")).reset_index()
    out["accuracy_std"] = out["accuracy_std"].fillna(0.0)
    return out


__all__ = ["node_classification", "label_propagation", "stratified_split", "accuracy_table", "METHODS", "COLUMNS",
           "REAL_GRAPHS"]
