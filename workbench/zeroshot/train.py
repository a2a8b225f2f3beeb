"""Train and evaluate zero-shot classifiers of the digits: soft labels (a network), DAP and ESZSL (on features).

How the lab relates to a :class:`~workbench.models.ModelHandle`: it takes the handle's *data* (the fixed digits
split, shaped for the model) and its *architecture* (``digits-mlp`` or ``digits-cnn``), never its trained weights:
the bundled checkpoints were trained on all ten digits, which would leak the unseen classes. Every network is a fresh
copy re-initialised from ``seed`` and trained by the project's one loop, :func:`workbench.dynamics.train`, on the
seen classes' training examples only. A handle's ``evaluate`` cannot score a zero-shot model (it is plain accuracy
over all classes); :func:`~workbench.zeroshot.metrics.zero_shot_metrics` does, from the test scores.

Methods (``method=``):

* ``"soft_labels"``: the network trained by cross-entropy against similarity-based soft labels
  (:mod:`workbench.zeroshot.soft_labels`); scores = log-softmax of its outputs.
* ``"eszsl"``, ``"dap"``: the closed-form / attribute-classifier baselines (:mod:`workbench.zeroshot.baselines`) on
  ``features="pixels"`` (the 64 standardised pixels) or ``features="network"`` (the input of the last linear layer
  of the same architecture trained with hard labels on the seen classes: the usual "deep features" protocol, with
  a backbone that has never seen an unseen class).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError, LayerError, ShapeError
from workbench.models.capture import head_input
from workbench.progress import stop_callable
from workbench.zeroshot.attributes import check_attributes, digits_attributes
from workbench.zeroshot.baselines import class_signatures, dap_fit, eszsl_fit, eszsl_scores
from workbench.zeroshot.metrics import ausuc, summarize, tradeoff_curve, zero_shot_metrics
from workbench.zeroshot.soft_labels import SoftLabelLoss, check_soft_label_params, soft_label_matrix
from workbench.zeroshot.splits import ZeroShotSplit, make_split, unseen_splits

METHODS = ("soft_labels", "dap", "eszsl")
FEATURES = ("pixels", "network")
RUN_COLUMNS = ["method", "split", "seed", "zsl", "seen", "unseen", "H", "ausuc", "seconds"]

#: Settings fixed before any result was seen (not tuned on the unseen test classes; see docs/zeroshot.md).
DEFAULTS: dict[str, Any] = {"temperature": 0.2, "unseen_mass": 0.3, "epochs": 30, "batch_size": 64, "lr": 0.05,
                            "weight_decay": 5e-4, "gamma": 1.0, "lam": 1.0, "dap_C": 1.0}


@dataclass
class _SeenData:
    """The object :func:`workbench.dynamics.train` takes: a model and the seen classes' training data."""

    name: str
    model: nn.Module
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.test


@dataclass
class ZeroShotResult:
    """One trained zero-shot classifier: ``table`` (one row: ``RUN_COLUMNS`` + settings), ``metrics``, the test
    ``scores`` ``(n, C)`` and labels, the network (soft labels, or the backbone of ``features="network"``)."""

    method: str
    split: ZeroShotSplit
    seed: int
    metrics: dict[str, float]
    scores: np.ndarray
    y_test: np.ndarray
    table: pd.DataFrame
    model: nn.Module | None = None
    history: pd.DataFrame | None = None  # the train loop's metrics rows (cross-entropy / accuracy vs labels)
    stopped: bool = False

    def tradeoff(self) -> pd.DataFrame:
        """The calibrated-stacking seen/unseen curve of this classifier (:func:`~workbench.zeroshot.metrics.
        tradeoff_curve`), with ``method`` and ``split`` columns."""
        c = tradeoff_curve(self.scores, self.y_test, self.split)
        c.insert(0, "split", self.split.name)
        c.insert(0, "method", self.method)
        return c


def _handle(handle_or_model: Any) -> Any:
    if isinstance(handle_or_model, (str, nn.Module)):
        import workbench

        handle_or_model = workbench.load_model(handle_or_model)
    for attr in ("model", "train_data", "test_data"):
        if not hasattr(handle_or_model, attr):
            raise DataError(f"train_zero_shot needs a classification handle (digits-mlp, digits-cnn) or a model "
                            f"load_model accepts; {type(handle_or_model).__name__} has no {attr!r}")
    return handle_or_model


def _method(method: str) -> str:
    if method not in METHODS:
        raise DataError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_settings(kw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kw) - set(DEFAULTS))
    if unknown:
        raise DataError(f"unknown settings {unknown}; accepted: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **kw}
    check_soft_label_params(s["temperature"], s["unseen_mass"])
    for k in ("epochs", "lr", "gamma", "lam", "dap_C"):
        if not (isinstance(s[k], (int, float)) and np.isfinite(s[k]) and s[k] > 0):
            raise DataError(f"{k} must be a positive number, got {s[k]!r}")
    if int(s["batch_size"]) < 1:
        raise DataError(f"batch_size must be a positive integer, got {s['batch_size']!r}")
    return s


def _prepare(handle: Any, attributes: Any, split: Any) -> tuple[np.ndarray, ZeroShotSplit, tuple, tuple]:
    x_train, y_train = handle.train_data()
    x_test, y_test = handle.test_data()
    n_classes = int(max(int(y_train.max()), int(y_test.max()))) + 1
    arr = check_attributes(attributes, n_classes)
    sp = make_split(split, n_classes)
    return arr, sp, (x_train, y_train), (x_test, y_test)


def _seen_subset(x: torch.Tensor, y: torch.Tensor, split: ZeroShotSplit) -> tuple[torch.Tensor, torch.Tensor]:
    keep = torch.as_tensor(~split.unseen_mask()[y.numpy()])
    return x[keep], y[keep]


def _check_outputs(model: nn.Module, x: torch.Tensor, n_classes: int, name: str) -> None:
    with torch.no_grad():
        was = model.training
        model.eval()
        out = model(x[:2])
        model.train(was)
    if out.ndim != 2 or out.shape[1] != n_classes:
        raise ShapeError(f"{name} outputs {tuple(out.shape[1:])} per example but the attributes describe {n_classes} "
                         f"classes: the network needs one output per class, seen and unseen")


def _train_net(handle: Any, split: ZeroShotSplit, data: tuple, table: np.ndarray | None, s: dict[str, Any],
               seed: int, stop: Any, progress: bool) -> Any:
    from workbench.dynamics.train import train

    (x_train, y_train), test = data
    seen = _SeenData(str(getattr(handle, "name", "model")), handle.model, _seen_subset(x_train, y_train, split), test)
    epochs = float(s["epochs"])
    return train(seen, batch_size=int(s["batch_size"]), lr=float(s["lr"]), epochs=epochs, seed=int(seed),
                 reinit=True, weight_decay=float(s["weight_decay"]), lr_schedule="cosine", track_points=8,
                 eval_every=max(epochs / 5, 1e-9), stop=stop, progress=progress,
                 loss_fn=None if table is None else SoftLabelLoss(table))


@torch.no_grad()
def _log_probs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.log_softmax(model(x), dim=1).double().numpy()


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The input of the model's last ``nn.Linear`` for every row of ``x`` (float64 ``(n, d)``), in eval mode (the
    model's mode is left as it was): the features a classifier head reads, used as "deep features" for the
    baselines. Read with :func:`workbench.models.capture.head_input`."""
    try:
        return head_input(model, x).double().numpy()
    except LayerError as e:
        raise ShapeError(f"{type(model).__name__} has no nn.Linear layer to read features from; use features='pixels'"
                         ) from e


def _standardized(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = train.mean(0), train.std(0)
    sd[sd == 0] = 1.0
    return [(a - mu) / sd for a in (train, *others)]


def train_zero_shot(handle_or_model: Any = "digits-mlp", attributes: Any = None, split: Any = None,
                    method: str = "soft_labels", *, features: str = "pixels", seed: int = 0, stop: Any = None,
                    progress: bool = False, _cache: dict | None = None, **settings: Any) -> ZeroShotResult:
    """Train one zero-shot classifier on the seen classes of ``split`` and score it on the digits test split.

    ``handle_or_model``: a ModelHandle, spec (``"digits-mlp"``, ``"digits-cnn"``) or module (its architecture and
    data are used, not its weights); ``attributes``: the class-attribute matrix (default: the digits' shipped one);
    ``split``: a :class:`ZeroShotSplit` or unseen class indices (default: the first of :func:`unseen_splits`);
    ``method``: ``"soft_labels" | "dap" | "eszsl"``; ``features`` (baselines): ``"pixels" | "network"``.
    ``settings`` override :data:`DEFAULTS`: ``temperature``, ``unseen_mass`` (soft labels), ``epochs``,
    ``batch_size``, ``lr``, ``weight_decay`` (networks), ``gamma``, ``lam`` (ESZSL), ``dap_C`` (DAP).
    ``stop``: a callable or ``threading.Event`` that ends training early (the partial network is scored).

    Every input is checked before any training: unknown method or features, attribute matrix with the wrong
    number of rows / NaN / a constant column, an empty or all-class split, temperature ≤ 0, unseen mass outside
    [0, 1).
    """
    method = _method(method)
    if features not in FEATURES:
        raise DataError(f"features must be one of {FEATURES}, got {features!r}")
    s = _check_settings(settings)
    handle = _handle(handle_or_model)
    attributes = digits_attributes() if attributes is None else attributes
    split = unseen_splits(1)[0] if split is None else split
    arr, sp, train_xy, test_xy = _prepare(handle, attributes, split)
    n_classes = arr.shape[0]
    x_test, y_test = test_xy
    t0 = time.perf_counter()
    model, history, stopped = None, None, False
    if method == "soft_labels":
        _check_outputs(handle.model, x_test, n_classes, str(getattr(handle, "name", "the model")))
        table = soft_label_matrix(arr, s["temperature"], s["unseen_mass"], unseen=sp)
        res = _train_net(handle, sp, (train_xy, test_xy), table, s, seed, stop, progress)
        model, history, stopped = res.model, res.metrics, res.stopped
        scores = _log_probs(model, x_test)
    else:
        x_seen, y_seen = _seen_subset(*train_xy, sp)
        if features == "network":
            key = (sp.unseen, int(seed), features)
            if _cache is not None and key in _cache:
                model, history, stopped = _cache[key]
            else:
                _check_outputs(handle.model, x_test, n_classes, str(getattr(handle, "name", "the model")))
                res = _train_net(handle, sp, (train_xy, test_xy), None, s, seed, stop, progress)
                model, history, stopped = res.model, res.metrics, res.stopped
                if _cache is not None:
                    _cache[key] = (model, history, stopped)
            f_train, f_test = penultimate_features(model, x_seen), penultimate_features(model, x_test)
        else:
            f_train = x_seen.flatten(1).double().numpy()
            f_test = x_test.flatten(1).double().numpy()
        f_train, f_test = _standardized(f_train, f_test)
        if method == "eszsl":
            sig = class_signatures(arr)
            v = eszsl_fit(f_train, y_seen.numpy(), sig, sp.seen, gamma=float(s["gamma"]), lam=float(s["lam"]))
            scores = eszsl_scores(f_test, v, sig)
        else:
            scores = dap_fit(f_train, y_seen.numpy(), arr, sp.seen, C=float(s["dap_C"])).scores(f_test)
    seconds = time.perf_counter() - t0
    y_np = y_test.numpy()
    metrics = zero_shot_metrics(scores, y_np, sp)
    metrics["ausuc"] = ausuc(tradeoff_curve(scores, y_np, sp))
    row = {"method": method, "split": sp.name, "seed": int(seed), **metrics, "seconds": seconds,
           "features": "network" if method == "soft_labels" else features,
           "model": str(getattr(handle, "name", type(handle.model).__name__))}
    if method == "soft_labels":
        row.update(temperature=float(s["temperature"]), unseen_mass=float(s["unseen_mass"]))
    return ZeroShotResult(method, sp, int(seed), metrics, scores, y_np, pd.DataFrame([row]), model, history, stopped)


@dataclass
class ZeroShotComparison:
    """What :func:`compare_methods` returns: ``runs`` (one row per method × split × seed), ``table`` (mean ± sd per
    method over splits and seeds), the individual results and their trade-off curves."""

    runs: pd.DataFrame
    table: pd.DataFrame
    results: list[ZeroShotResult] = field(default_factory=list)

    def tradeoff(self) -> pd.DataFrame:
        """Every result's calibrated-stacking curve, with ``method, split, seed`` columns."""
        frames = []
        for r in self.results:
            c = r.tradeoff()
            c.insert(2, "seed", r.seed)
            frames.append(c)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare_methods(handle_or_model: Any = "digits-mlp", attributes: Any = None,
                    splits: Iterable[Any] | None = None, seeds: Sequence[int] = (0,),
                    methods: Sequence[str] = METHODS, *, features: str = "pixels", stop: Any = None,
                    progress: bool = False, on_result: Callable[[ZeroShotResult], None] | None = None,
                    **settings: Any) -> ZeroShotComparison:
    """Run every method on every split and seed (same data, same splits) and summarise: mean ± sd per method.

    ``splits``: default :func:`unseen_splits` (5 splits, 3 of 10 digits unseen). ``on_result(result)`` is called
    after each run (the widget and benchmark listen). The backbone of ``features="network"`` is trained once per
    split and seed and shared by DAP and ESZSL. Everything is checked before the first run.
    """
    for m in methods:
        _method(m)
    if not methods:
        raise DataError(f"methods must name at least one of {METHODS}")
    if features not in FEATURES:
        raise DataError(f"features must be one of {FEATURES}, got {features!r}")
    _check_settings(settings)
    handle = _handle(handle_or_model)
    attributes = digits_attributes() if attributes is None else attributes
    split_list = list(unseen_splits() if splits is None else splits)
    if not split_list:
        raise DataError("splits is empty: give at least one unseen-class split")
    checked = [_prepare(handle, attributes, sp)[1] for sp in split_list]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DataError("seeds is empty: give at least one seed")
    should_stop = stop_callable(stop)
    cache: dict = {}
    results: list[ZeroShotResult] = []
    for sp in checked:
        for seed in seeds:
            for m in methods:
                if should_stop():
                    break
                r = train_zero_shot(handle, attributes, sp, m, features=features, seed=seed, stop=stop,
                                    progress=progress, _cache=cache, **settings)
                results.append(r)
                if on_result is not None:
                    on_result(r)
    runs = pd.concat([r.table for r in results], ignore_index=True) if results else pd.DataFrame(
        columns=RUN_COLUMNS)
    table = summarize(runs) if len(runs) else pd.DataFrame()
    return ZeroShotComparison(runs, table, results)


__all__ = ["train_zero_shot", "compare_methods", "ZeroShotResult", "ZeroShotComparison", "penultimate_features",
           "METHODS", "FEATURES", "DEFAULTS", "RUN_COLUMNS"]
