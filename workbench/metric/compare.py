"""``compare_metrics``: kNN accuracy of metric learners over repeated stratified splits, with a paired test.

Every method sees the same splits (``StratifiedShuffleSplit`` with one seed); features are standardized with the
training part's mean and standard deviation; the learned map is fitted on the training part and a ``k``-nearest-
neighbour classifier (Euclidean distance in the learned space, i.e. the Mahalanobis distance ``M = LᵀL``) is scored
on the test part. Per method: accuracy mean ± sd over the splits, mean fit time, and a paired t-test of the
per-split accuracies against gradient NCA (scikit-learn's ``NeighborhoodComponentsAnalysis``), the anchor. A method
that cannot run here (metric-learn missing or broken beside the installed packages) gets a row whose ``status``
says why instead of numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError, UnavailableError
from workbench.metric.data import load_dataset
from workbench.metric.fit import METHODS, check_data, fit_metric
from workbench.progress import progress_bar, stop_callable

__all__ = ["compare_metrics", "knn_accuracy", "COMPARE_COLUMNS"]

COMPARE_COLUMNS = ["dataset", "method", "k", "splits", "accuracy_mean", "accuracy_sd", "fit_seconds",
                   "diff_vs_nca", "p_vs_nca", "energy", "status", "accuracies"]


def knn_accuracy(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray, y_test: np.ndarray,
                 k: int = 3) -> float:
    """Accuracy of the ``k``-nearest-neighbour rule (Euclidean in the given space) on the test part."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(Z_train))).fit(Z_train, y_train)
    return float((clf.predict(Z_test) == y_test).mean())


def _paired(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    if len(d) < 2:
        return float("nan")
    if np.allclose(d, d[0]):
        return 1.0 if abs(d[0]) < 1e-12 else 0.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b).pvalue)


def compare_metrics(datasets: Any = ("iris", "wine", "breast_cancer", "digits"),
                    methods: Sequence[str] = ("euclidean", "nca", "free_energy", "lmnn", "itml"), *, k: int = 3,
                    splits: int = 5, test_size: float = 0.3, seed: int = 0,
                    options: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                    stop: Any = None, on_result: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """One tidy row per (data set, method): ``COMPARE_COLUMNS``.

    ``datasets``: names (see :func:`~workbench.metric.data.load_dataset`), a mapping name → ``(X, y)``, or a mix of
    both in a mapping whose values are names. ``options``: per method keyword options for
    :func:`~workbench.metric.fit.fit_metric` (e.g. ``{"free_energy": {"steps": 1000}}``). ``accuracies`` holds the
    per-split accuracies (same split order for every method); ``diff_vs_nca`` is the mean paired difference and
    ``p_vs_nca`` the two-sided paired t-test p-value (1.0 when the accuracies are identical on every split).
    ``on_result(row)`` is called as each row is done; ``stop`` (callable or Event) ends the comparison early.
    """
    from sklearn.model_selection import StratifiedShuffleSplit

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k (neighbours of the kNN rule) must be an integer ≥ 1, got {k!r}")
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or splits < 1:
        raise DataError(f"splits must be an integer ≥ 1, got {splits!r}")
    if not 0 < test_size < 1:
        raise DataError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    methods = list(methods)
    for m in methods:
        if m not in METHODS:
            raise DataError(f"unknown method {m!r}; accepted: {', '.join(METHODS)}")
    options = {m: dict(v) for m, v in (options or {}).items()}
    if isinstance(datasets, str):
        datasets = [datasets]
    named = datasets.items() if isinstance(datasets, Mapping) else [(d, d) for d in datasets]
    data = {}
    for name, value in named:  # load and check everything before any work
        X, y = load_dataset(value) if isinstance(value, str) else value
        Xa, codes, classes = check_data(X, y)
        counts = np.bincount(codes)
        if counts.min() < 2:
            raise DataError(f"{name}: a class has a single sample; a stratified split needs ≥ 2 per class")
        n_train = len(codes) - int(np.ceil(test_size * len(codes)))
        if k > n_train:
            raise DataError(f"{name}: k={k} exceeds the {n_train} training samples of a split")
        if k > 1 and counts.min() * (1 - test_size) < 2:
            raise DataError(f"{name}: class {classes[int(np.argmin(counts))].item()!r} has {counts.min()} samples; with "
                            f"k={k} each class needs at least 2 in the training part of a split")
        data[str(name)] = (Xa, codes)
    stop_fn = stop_callable(stop)
    rows: list[dict[str, Any]] = []
    total = len(data) * len(methods)
    with progress_bar(total=total, desc="compare_metrics", disable=not progress) as bar:
        for name, (X, codes) in data.items():
            sss = StratifiedShuffleSplit(n_splits=splits, test_size=test_size, random_state=seed)
            parts = list(sss.split(X, codes))
            accs: dict[str, np.ndarray] = {}
            for method in methods:
                if stop_fn():
                    break
                row: dict[str, Any] = dict(dataset=name, method=method, k=int(k), splits=int(splits))
                acc, times, energies = [], [], []
                try:
                    for i, (tr, te) in enumerate(parts):
                        mu, sd = X[tr].mean(0), X[tr].std(0)
                        sd[sd == 0] = 1.0
                        Xtr, Xte = (X[tr] - mu) / sd, (X[te] - mu) / sd
                        opts = dict(options.get(method, {}))
                        if method == "lmnn":
                            opts.setdefault("n_neighbors", k)
                        m = fit_metric(Xtr, codes[tr], method, seed=seed + i, progress=False, **opts)
                        acc.append(knn_accuracy(m.transform(Xtr), codes[tr], m.transform(Xte), codes[te], k))
                        times.append(m.seconds)
                        energies.append(m.energy / len(tr))
                    a = np.array(acc)
                    accs[method] = a
                    row.update(accuracy_mean=float(a.mean()), accuracy_sd=float(a.std(ddof=1)) if len(a) > 1
                               else 0.0, fit_seconds=float(np.mean(times)), energy=float(np.mean(energies)),
                               status="ok", accuracies=tuple(float(v) for v in a))
                except UnavailableError as exc:
                    row.update(accuracy_mean=np.nan, accuracy_sd=np.nan, fit_seconds=np.nan, energy=np.nan,
                               status=f"unavailable: {exc}", accuracies=())
                rows.append(row)
                bar.update(1)
            for row in rows:
                if row["dataset"] != name:
                    continue
                a = accs.get(row["method"])
                if a is not None and "nca" in accs:
                    row["diff_vs_nca"] = float((a - accs["nca"]).mean())
                    row["p_vs_nca"] = _paired(a, accs["nca"])
                else:
                    row["diff_vs_nca"] = row["p_vs_nca"] = np.nan
                if on_result is not None:
                    on_result(dict(row))
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)
