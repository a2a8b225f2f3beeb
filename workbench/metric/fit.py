"""``fit_metric``: one verb for every metric learner of the lab, returning a :class:`Metric`.

Methods (:data:`METHODS`):

* ``"free_energy"``: Metropolis Monte Carlo with stretch and rotation moves and an annealed temperature
  (Stosic, Stosic, Ludermir & Stosic 2021, arXiv 2106.05495; :mod:`workbench.metric.montecarlo`);
* ``"nca"``: gradient NCA (Goldberger et al. 2004): scikit-learn's ``NeighborhoodComponentsAnalysis`` (L-BFGS)
  without constraints; with constraints, L-BFGS in torch on the same energy as the Monte Carlo (float64);
* ``"lmnn"`` (Weinberger & Saul 2009) and ``"itml"`` (Davis et al. 2007) from the optional ``metric-learn`` package
  (``pip install workbench[metric]``); when it is missing or does not run beside the installed scikit-learn /
  numpy, :class:`~workbench.errors.UnavailableError` says why;
* ``"euclidean"``: the identity (first ``dim`` rows), the baseline.

Every method returns ``L`` (``d × D``, Mahalanobis ``M = LᵀL``) and its energy on the training data
(:func:`~workbench.metric.energy.nca_energy`), so learners are compared on one scale.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import DataError, NonFiniteError, ShapeError, UnavailableError
from workbench.metric.energy import Constraints, as_constraints, energy_from_distances, nca_energy, \
    pairwise_sq_distances
from workbench.metric.montecarlo import TRACE_COLUMNS, MCOptions, anneal, initial_map
from workbench.progress import stop_callable

__all__ = ["METHODS", "Metric", "fit_metric", "check_data", "gradient_fit", "metric_learn_status"]

METHODS = ("free_energy", "nca", "lmnn", "itml", "euclidean")
_GRADIENT_OPTIONS = {"max_iter", "tol", "init"}


@dataclass
class Metric:
    """A learned linear metric: ``L`` (d × D), ``M = LᵀL``, and how it was found.

    ``trace`` holds one row per temperature block of the Monte Carlo (step, temperature, energy, mean_energy,
    best_energy, acceptance, objective, entropy, free_energy, seconds); empty for the other methods.
    ``energy`` is ``E(L)`` on the training data (lower is better), ``objective`` the NCA objective per sample
    (expected leave-one-out accuracy of the stochastic neighbour rule), ``cancelled`` says a ``stop`` ended the fit
    early (``L`` is then the best map found so far).
    """

    L: np.ndarray
    method: str
    trace: pd.DataFrame
    energy: float
    objective: float
    seconds: float
    cancelled: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def M(self) -> np.ndarray:
        """The Mahalanobis matrix ``LᵀL`` (D × D)."""
        return self.L.T @ self.L

    @property
    def dim(self) -> int:
        return int(self.L.shape[0])

    def transform(self, X: Any) -> np.ndarray:
        """``X Lᵀ``: the samples in the learned space (n × d)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.L.shape[1]:
            raise ShapeError(f"transform expects X of shape (n, {self.L.shape[1]}), got {X.shape}")
        return X @ self.L.T

    def __repr__(self) -> str:
        flag = ", cancelled" if self.cancelled else ""
        return (f"Metric({self.method}, L {self.L.shape[0]}×{self.L.shape[1]}, energy {self.energy:.4g}, "
                f"objective {self.objective:.4f}, {self.seconds:.2f} s{flag})")


def check_data(X: Any, y: Any, *, min_per_class: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``X`` (n × D, finite) and ``y`` (n labels, ≥ 2 classes, each with ``min_per_class`` samples);
    return ``(X float64, class codes 0..C−1, classes)``."""
    try:
        Xa = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"X must be a numeric n × D array: {exc}") from exc
    if Xa.ndim != 2 or Xa.shape[0] == 0 or Xa.shape[1] == 0:
        raise ShapeError(f"X must be a non-empty 2-D array (n samples × D features), got shape {Xa.shape}")
    if not np.isfinite(Xa).all():
        bad = np.argwhere(~np.isfinite(Xa))[0]
        raise NonFiniteError(f"X holds NaN or inf (first at sample {bad[0]}, feature {bad[1]}: "
                             f"{Xa[bad[0], bad[1]]}); metric learning needs finite features")
    ya = np.asarray(y)
    if ya.ndim != 1:
        raise ShapeError(f"y must be a 1-D array of labels, got shape {ya.shape}")
    if len(ya) != len(Xa):
        raise ShapeError(f"X and y have different lengths: {len(Xa)} samples in X, {len(ya)} labels in y")
    classes, codes, counts = np.unique(ya, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"y has one class only ({classes[0].item()!r}); metric learning needs at least 2 classes")
    if counts.min() < min_per_class:
        c = classes[int(np.argmin(counts))]
        c = c.item() if hasattr(c, "item") else c
        raise DataError(f"class {c!r} has {counts.min()} sample(s); each class needs at least {min_per_class} "
                        f"(a sample's same-class neighbours must exist)")
    return Xa, codes.astype(np.int64), classes


def _check_dim(dim: Any, D: int) -> int:
    if dim is None:
        return D
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= D:
        raise DataError(f"dim must be an integer in 1..{D} (the number of features), got {dim!r}")
    return int(dim)


@functools.lru_cache(maxsize=1)
def metric_learn_status() -> str:
    """``"ok"`` when metric-learn imports and fits a tiny problem with LMNN and ITML here, else the reason."""
    from workbench.metric.baselines import metric_learn_module

    try:
        metric_learn = metric_learn_module()
    except ImportError as exc:
        return f"metric-learn is not installed ({exc}); pip install 'workbench[metric]'"
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 2)), np.repeat([0, 1], 6)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric_learn.LMNN(n_neighbors=1, max_iter=2).fit(X, y)
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        import sklearn

        return (f"metric-learn {metric_learn.__version__} does not run beside scikit-learn {sklearn.__version__}"
                f" / numpy {np.__version__}: {type(exc).__name__}: {exc}")
    return "ok"


def _fit_metric_learn(method: str, X: np.ndarray, codes: np.ndarray, dim: int, seed: int,
                      options: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    status = metric_learn_status()
    if status != "ok":
        raise UnavailableError(f"method {method!r} needs metric-learn: {status}")
    from workbench.metric.baselines import metric_learn_module

    metric_learn = metric_learn_module()

    if method == "lmnn":
        k = int(options.pop("n_neighbors", options.pop("k", 3)))
        counts = np.bincount(codes)
        if counts.min() <= k:
            raise DataError(f"LMNN with k={k} target neighbours needs more than {k} samples in every class; "
                            f"the smallest class has {counts.min()}")
        model = metric_learn.LMNN(n_neighbors=k, n_components=dim, random_state=seed, **options)
    else:
        if dim != X.shape[1]:
            raise DataError(f"ITML learns a full-rank metric: dim must be None or {X.shape[1]}, got {dim}")
        model = metric_learn.ITML_Supervised(random_state=seed, **options)
    try:
        model.fit(X, codes)
    except TypeError as exc:
        raise DataError(f"bad option for {method}: {exc}") from exc
    return np.asarray(model.components_, dtype=np.float64), {"n_iter": getattr(model, "n_iter_", None)}


def gradient_fit(X: np.ndarray, codes: np.ndarray, L0: np.ndarray, constraints: Constraints | None = None, *,
                 max_iter: int = 100, tol: float = 1e-6, stop: Callable[[], bool] | None = None
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """Minimize the lab's energy (NCA + constraint terms) by L-BFGS from ``L0`` in float64 torch: gradient NCA on
    exactly the energy the Monte Carlo sees. Returns ``(L, info)``."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(codes)
    onehot = torch.nn.functional.one_hot(yt, int(codes.max()) + 1).to(torch.float64)
    L = torch.tensor(L0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([L], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    evals = [0]
    stop = stop or (lambda: False)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        E, _ = energy_from_distances(pairwise_sq_distances(Xt @ L.T), onehot, yt, constraints)
        E.backward()
        evals[0] += 1
        if stop():
            L.grad.zero_()  # L-BFGS stops when the gradient vanishes
        return E

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    return L.detach().numpy().copy(), {"n_iter": n_iter, "evaluations": evals[0]}


def fit_metric(X: Any, y: Any, method: str = "free_energy", *, dim: int | None = None, constraints: Any = None,
               seed: int = 0, progress: bool = True, stop: Any = None,
               on_step: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> Metric:
    """Learn a linear metric ``L`` (``dim × D``) on ``X`` (n × D, standardize it first) with labels ``y``.

    ``method``: one of :data:`METHODS`. ``constraints``: must-link / cannot-link pairs and relative triplets (a
    :class:`~workbench.metric.energy.Constraints` or a dict; used by ``free_energy`` and ``nca``). ``stop``: a
    callable or ``threading.Event``; when it turns true the Monte Carlo returns the best map so far with
    ``cancelled=True``. ``on_step(info)``: called after every temperature block of the Monte Carlo with the trace row
    and the current map ``info["L"]``. ``options``: for ``free_energy`` the fields of
    :class:`~workbench.metric.montecarlo.MCOptions` (steps, block, schedule, t_start, t_end, ...); for ``nca``
    scikit-learn's ``max_iter``, ``tol``, ``init``; for ``lmnn`` / ``itml`` metric-learn's own.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> m = fit_metric((X - X.mean(0)) / X.std(0), y, "free_energy", steps=300, progress=False)
    >>> m.L.shape, m.energy < fit_metric((X - X.mean(0)) / X.std(0), y, "euclidean").energy
    ((4, 4), True)
    """
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    Xa, codes, classes = check_data(X, y)
    n, D = Xa.shape
    d = _check_dim(dim, D)
    cons = as_constraints(constraints)
    if cons is not None:
        cons.check(n)
        if method not in ("free_energy", "nca"):
            raise DataError(f"constraints are used by the methods 'free_energy' and 'nca', not {method!r}")
    stop_fn = stop_callable(stop)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise DataError(f"seed must be an integer, got {seed!r}")
    mc_opts: MCOptions | None = None
    if method == "free_energy":
        known = set(MCOptions.__dataclass_fields__)
        unknown = set(options) - known
        if unknown:
            raise DataError(f"unknown options {sorted(unknown)} for method 'free_energy'; accepted: {sorted(known)}")
        mc_opts = MCOptions(**options)
        L0 = initial_map(Xa, d, mc_opts.init)
    elif method == "nca" and cons is not None:
        unknown = set(options) - _GRADIENT_OPTIONS
        if unknown:
            raise DataError(f"unknown options {sorted(unknown)} for constrained 'nca'; accepted: "
                            f"{sorted(_GRADIENT_OPTIONS)}")
        init = options.get("init", "identity")
        L0 = initial_map(Xa, d, init)

    trace = pd.DataFrame(columns=TRACE_COLUMNS)
    info: dict[str, Any] = {"classes": classes.tolist()}
    cancelled = False
    t0 = time.perf_counter()
    if method == "free_energy":
        res = anneal(Xa, codes, L0, mc_opts, constraints=cons, seed=int(seed), progress=progress, stop=stop_fn,
                     on_step=on_step)
        L, trace, cancelled = res.L, res.trace, res.cancelled
        info.update(res.info)
    elif method == "euclidean":
        L = np.eye(d, D)
    elif method == "nca" and cons is None:
        from sklearn.neighbors import NeighborhoodComponentsAnalysis

        try:
            model = NeighborhoodComponentsAnalysis(n_components=d, random_state=int(seed), **options)
        except TypeError as exc:
            raise DataError(f"bad option for scikit-learn's NCA: {exc}") from exc
        if stop_fn():
            cancelled = True
            L = np.eye(d, D)
        else:
            model.fit(Xa, codes)
            L = np.asarray(model.components_, dtype=np.float64)
            info["n_iter"] = int(model.n_iter_)
    elif method == "nca":
        L, extra = gradient_fit(Xa, codes, L0, cons, max_iter=int(options.get("max_iter", 100)),
                                tol=float(options.get("tol", 1e-6)), stop=stop_fn)
        cancelled = stop_fn()
        info.update(extra)
    else:
        L, extra = _fit_metric_learn(method, Xa, codes, d, int(seed), dict(options))
        info.update(extra)
    seconds = time.perf_counter() - t0
    if not np.isfinite(L).all():
        raise NonFiniteError(f"method {method!r} returned a map with NaN or inf entries")
    E = nca_energy(Xa, codes, L, cons)
    obj = nca_energy(Xa, codes, L) / -n
    return Metric(L=L, method=method, trace=trace, energy=E, objective=obj, seconds=seconds,
                  cancelled=cancelled, info=info)
