"""A small, honest training loop on a handle's data that records how far the weights travel.

It follows the recipe of Hoffer, Hubara & Soudry 2017 ("Train longer, generalize better: closing the generalization
gap in large batch training of neural networks"):

* **learning-rate scaling** for a batch ``B`` larger than the reference ``b`` (``base_batch``): ``lr·√(B/b)``
  (``lr_scaling="sqrt"``, the paper's choice, keeping the covariance of the update noise), or ``lr·B/b``
  (``"linear"``, Goyal et al. 2017);
* **Ghost Batch Norm** (``ghost_batch=g``): BatchNorm statistics per ghost batch of ``g`` samples;
* **regime adaptation** (``regime_adaptation=True``): an epoch budget is multiplied by ``B/b`` so the large batch
  makes as many updates as the small batch did (the schedule's milestones stretch with it);

and two switches from the same line of work: **batch augmentation** (``batch_augmentation=M``: every sample repeated
``M`` times with different augmentations, Hoffer et al. 2019) and a **fixed Hadamard classifier** (Hoffer et al.
2018).

The handle's model is never touched: training runs on a deep copy, by default re-initialised from the same
architecture with ``seed`` (``reinit=True``), since the point is the distance from initialization. Formats applied
to the handle (sparsity or number-format parametrizations) are removed from the copy: it trains dense. Batches are
drawn from a stream of seeded random permutations of the training set, so every batch has exactly ``B`` samples and
an epoch is ``N/B`` updates. The model is evaluated (train and test loss/accuracy, in eval mode, on the full sets;
the test metrics are the handle's own ``evaluate(model=...)``) every ``eval_every`` epochs and at the end.
Training stops early, keeping everything recorded, when ``stop()`` is
true (a callable or a ``threading.Event``) or on ``KeyboardInterrupt``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from workbench.progress import progress_bar, stop_callable

from workbench.dynamics.augment import batch_augment
from workbench.dynamics.ghost_bn import swap_ghost_bn
from workbench.dynamics.hadamard import fix_hadamard_classifier
from workbench.dynamics.tracker import WeightDistanceTracker
from workbench.errors import DataError

METRIC_COLUMNS = ["step", "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
LR_SCALINGS = (None, "sqrt", "linear")


@dataclass
class TrainResult:
    """What a training run returns (:func:`train`, and the quantization lab's
    :func:`workbench.quant.binarized.train_digits_mlp`): tidy frames plus the trained model.

    ``table`` is ``metrics``: one row per evaluation with :data:`METRIC_COLUMNS`.
    """

    distances: pd.DataFrame  # step, layer, distance, travelled, init_norm (tracker rows)
    metrics: pd.DataFrame  # one row per evaluation: METRIC_COLUMNS
    model: nn.Module
    config: dict[str, Any]
    steps: int  # updates made
    stopped: bool = False  # stop() asked for it
    interrupted: bool = False  # KeyboardInterrupt
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The metrics table (the lab-wide ``.table`` of a result object)."""
        return self.metrics

    @property
    def test_accuracy(self) -> float:
        """The last evaluation's test accuracy (NaN before any)."""
        return float(self.metrics["test_acc"].iloc[-1]) if len(self.metrics) else float("nan")

    def final(self) -> dict[str, float]:
        """The last evaluation row as a dict (test_acc, test_loss, train_acc, ...)."""
        return self.metrics.iloc[-1].to_dict() if len(self.metrics) else {}


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Call ``reset_parameters()`` on every submodule that has one, under ``torch.manual_seed(seed)`` (in place;
    the global RNG state is restored afterwards). BatchNorm running statistics are reset too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return model


def dense_copy(source: nn.Module) -> nn.Module:
    """A deep copy of ``source`` without formats (parametrizations): the dynamics lab trains dense copies.

    A model without parametrizations is deep-copied. One with formats applied (``workbench.formats.apply``) is not:
    torch's parametrized modules share a generated class with their copies, so removing a parametrization from a
    copy would break the original. Instead the architecture is rebuilt (``type(source)()``) and loaded with the
    original dense weights (``…parametrizations.weight.original``); the handle keeps its formats.
    """
    from torch.nn.utils import parametrize

    if not any(parametrize.is_parametrized(m) for m in source.modules()):
        return copy.deepcopy(source)
    try:
        model = type(source)()
    except TypeError as exc:
        raise DataError(f"{type(source).__name__} has formats applied and cannot be rebuilt without arguments "
                        f"({exc}); call workbench.formats.restore(model) before training a copy") from exc
    state = {}
    for key, value in source.state_dict().items():
        if ".parametrizations." in key:
            if key.endswith(".original"):
                state[key.replace(".parametrizations.", ".")[: -len(".original")]] = value.detach().clone()
            continue
        state[key] = value.detach().clone()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise DataError(f"could not rebuild a dense copy of {type(source).__name__}: missing {missing}")
    return model.to(next(source.parameters()).device)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on ``(x, y)``."""
    was = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        loss += float(F.cross_entropy(out, y[i:i + batch], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    model.train(was)
    return loss / len(x), correct / len(x)


def _handle_parts(handle) -> tuple[str, nn.Module, tuple, tuple, Any]:
    if isinstance(handle, str):
        import workbench

        handle = workbench.load_model(handle)
    for attr in ("model", "train_data", "test_data"):
        if not hasattr(handle, attr):
            raise DataError(f"train needs a classification handle with .model, .train_data() and .test_data(); "
                            f"{type(handle).__name__} has no {attr!r}")
    name = str(getattr(handle, "name", type(handle.model).__name__))
    return name, handle.model, tuple(handle.train_data()), tuple(handle.test_data()), handle


def plan(batch_size: int, lr: float, steps: int | None, epochs: float | None, n_train: int,
         lr_scaling: str | None, base_batch: int, regime_adaptation: bool) -> dict[str, Any]:
    """The effective learning rate, epochs and number of updates a configuration implies (checks the inputs)."""
    from workbench.checks import integer, number, option

    where = "train"
    n_train = integer("the training set size", n_train, low=1, where=where)
    batch_size = integer("batch_size", batch_size, low=1, where=where)
    if batch_size > n_train:
        raise DataError(f"{where}: batch_size={batch_size} is larger than the training set of {n_train} samples; "
                        f"use a batch_size of at most {n_train}")
    lr = number("lr", lr, low=0, low_open=True, where=where)
    option("lr_scaling", lr_scaling, LR_SCALINGS, where=where)
    base_batch = integer("base_batch", base_batch, low=1, where=where)
    if steps is not None and epochs is not None:
        raise DataError(f"give steps or epochs, not both (got steps={steps}, epochs={epochs})")
    if steps is None and epochs is None:
        epochs = 10
    if steps is not None:
        steps = integer("steps", steps, low=1, where=where)
    else:
        epochs = number("epochs", epochs, low=0, low_open=True, where=where)
    ratio = batch_size / base_batch
    lr_eff = lr * (math.sqrt(ratio) if lr_scaling == "sqrt" else ratio if lr_scaling == "linear" else 1.0)
    if steps is not None:
        if regime_adaptation:
            raise DataError("regime_adaptation rescales an epoch budget (epochs × B/b); with steps= the number of "
                            "updates is already fixed: pass epochs= instead")
        total = int(steps)
        epochs_eff = total * batch_size / n_train
    else:
        epochs_eff = float(epochs) * (ratio if regime_adaptation else 1.0)  # type: ignore[arg-type]
        total = max(1, math.ceil(epochs_eff * n_train / batch_size))
    return {"lr_effective": lr_eff, "epochs_effective": epochs_eff, "total_steps": total, "ratio": ratio}


LR_SCHEDULES = ("constant", "step", "cosine")


def _lr_at(schedule: str, base: float, step: int, total: int) -> float:
    if schedule == "constant":
        return base
    if schedule == "step":  # ×0.1 at 50 % and again at 75 % of the updates (stretched by regime adaptation)
        return base * (0.1 if step >= 0.5 * total else 1.0) * (0.1 if step >= 0.75 * total else 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    from workbench.checks import option

    option("lr_schedule", schedule, LR_SCHEDULES, where="train")
    raise AssertionError(schedule)  # unreachable: option() refused it


def train(handle, batch_size: int = 32, lr: float = 0.05, steps: int | None = None, epochs: float | None = None, *,
          ghost_batch: int | None = None, lr_scaling: str | None = None, base_batch: int = 32,
          regime_adaptation: bool = False, batch_augmentation: int = 1, augment: bool | None = None,
          hadamard_classifier: bool = False, seed: int = 0, reinit: bool = True, momentum: float = 0.9,
          weight_decay: float = 0.0, lr_schedule: str = "constant", track_every: int | str = "log",
          track_points: int = 256, travelled: bool = False, eval_every: float = 1.0,
          stop=None, on_record: Callable[[list[dict]], None] | None = None,
          on_metrics: Callable[[dict], None] | None = None, progress: bool = True,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          batch_transform: Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
          | None = None,
          sampler: Any = None,
          setup: Callable[[nn.Module], None] | None = None,
          on_step: Callable[[int, nn.Module], None] | None = None,
          model_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          eval_train: bool = True) -> TrainResult:
    """Train a fresh copy of ``handle``'s model with SGD; return distances from initialization and metrics.

    ``handle``: a ModelHandle (or a spec string for :func:`workbench.load_model`) with ``.model``,
    ``.train_data()`` and ``.test_data()``. Give ``steps`` (updates) or ``epochs`` (passes; 10 if neither).
    ``track_every``: record distances every k steps, or ``"log"`` for ``track_points`` log-spaced steps (the
    curves are read on a log axis). ``on_record(rows)`` receives each batch of new distance rows (dicts) as they
    are recorded, ``on_metrics(row)`` each evaluation row: the live widget listens to both.
    ``loss_fn(logits, labels)``: the training loss of a batch (default ``F.cross_entropy``), for targets that are
    not one-hot, such as the zero-shot lab's soft labels looked up from the labels; evaluation stays cross-entropy
    and accuracy against the labels.
    ``batch_transform(x, y, step)``: called on every training batch (after batch augmentation) with the index of the
    update; returns the ``(x, y)`` to train on, which may have another image size or fewer samples (the geometry
    lab's Mix & Match draws an image size per step this way). Evaluation sees the handle's data unchanged.
    ``sampler``: a :class:`workbench.sampling.Sampler` over the training set (or None, the default permutation
    stream, unchanged). Each step it picks the batch's indices and importance weights; the loss is the weighted mean
    of the per-sample cross-entropies, and the sampler is updated with those losses. ``result.extra["sampler"]``
    holds its name and update + sampling seconds; ``result.extra["train_seconds"]`` the wall time of each
    evaluation row without the time spent evaluating.
    ``setup(model)`` is called once on the training copy after it is built (re-initialised, Ghost BN swapped) and
    before the optimizer and the distance tracker see its parameters; ``on_step(step, model)`` after every update
    (under ``torch.no_grad``): the sparse training lab puts its masks on and updates them through these two.
    ``model_loss(model, x, y)``: the training loss of a batch computed by the model itself instead of
    ``loss_fn(model(x), y)``, for output layers that never form all logits while training (the large-outputs lab's
    sampled softmax and hashed layers: ``model.head.loss(model.encoder(x), y)``); evaluation still calls ``model(x)``.
    ``eval_train=False`` skips the evaluation on the whole training set (``train_loss`` / ``train_acc`` are NaN),
    for models whose full forward pass over it costs more than the training.
    """
    name, source, (x_train, y_train), (x_test, y_test), handle = _handle_parts(handle)
    task_metrics = getattr(handle, "evaluate", None)  # the handle's task metric on its held-out split
    n_train = len(x_train)
    if n_train == 0:
        raise DataError(f"{name}: the training set is empty")
    p = plan(batch_size, lr, steps, epochs, n_train, lr_scaling, base_batch, regime_adaptation)
    from workbench.checks import integer, number, option

    where = "train"
    momentum = number("momentum", momentum, low=0, high=1, high_open=True, where=where)
    weight_decay = number("weight_decay", weight_decay, low=0, where=where)
    eval_every = number("eval_every", eval_every, low=0, low_open=True, where=where)
    seed = integer("seed", seed, where=where)
    option("lr_schedule", lr_schedule, LR_SCHEDULES, where=where)
    if track_every != "log":
        track_every = integer("track_every", track_every, low=1, where=where)
    track_points = integer("track_points", track_points, low=2, where=where)
    m = integer("batch_augmentation", batch_augmentation, low=1, where=where)
    forward_batch = int(batch_size) * m
    if ghost_batch is not None:
        g = integer("ghost_batch", ghost_batch, low=1, where=where)
        if g > forward_batch or forward_batch % g != 0:
            raise DataError(f"ghost_batch={ghost_batch} must be a positive divisor of the batch of {forward_batch} "
                            f"samples (batch_size {batch_size} × batch_augmentation {m}) and not larger than it")
    do_augment = (m > 1) if augment is None else bool(augment)
    total = p["total_steps"]
    if loss_fn is not None and not callable(loss_fn):
        raise DataError(f"loss_fn must be a callable (logits, labels) -> loss, got {type(loss_fn).__name__}")
    for hook_name, hook in (("setup", setup), ("on_step", on_step)):
        if hook is not None and not callable(hook):
            raise DataError(f"{hook_name} must be a callable, got {type(hook).__name__}")
    batch_loss = F.cross_entropy if loss_fn is None else loss_fn
    if model_loss is not None and (not callable(model_loss) or loss_fn is not None or sampler is not None):
        raise DataError("model_loss must be a callable (model, x, y) -> loss and cannot be combined with loss_fn= or "
                        f"sampler=; got {type(model_loss).__name__}")
    if batch_transform is not None and not callable(batch_transform):
        raise DataError(f"batch_transform must be a callable (x, y, step) -> (x, y), got "
                        f"{type(batch_transform).__name__}")
    if sampler is not None:
        _check_sampler(sampler, n_train, loss_fn, m)

    model = dense_copy(source)
    if reinit:
        reinitialize(model, seed)
    if hadamard_classifier:
        fix_hadamard_classifier(model)
    if ghost_batch is not None:
        swap_ghost_bn(model, int(ghost_batch))
    if setup is not None:
        setup(model)
    model.train()
    if track_every == "log":
        record = np.unique(np.round(np.geomspace(1, total, max(2, int(track_points)))).astype(int))
        tracker = WeightDistanceTracker(model, travelled=travelled, record_steps=record.tolist())
    else:
        tracker = WeightDistanceTracker(model, every=int(track_every), travelled=travelled)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=p["lr_effective"], momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed) + 1_000_003)
    should_stop = stop_callable(stop)

    metrics: list[dict] = []
    t_start = time.perf_counter()
    eval_seconds: list[float] = []  # time spent evaluating, per evaluation
    if sampler is not None:
        sampler.bind(lambda ix: _per_sample_loss(model, x_train[ix], y_train[ix]))

    def log_metrics(step: int) -> None:
        t_eval = time.perf_counter()
        tl, ta = evaluate(model, x_train, y_train) if eval_train else (float("nan"), float("nan"))
        res = task_metrics(model=model) if callable(task_metrics) else {}
        if "accuracy" in res and "loss" in res:
            vl, va = float(res["loss"]), float(res["accuracy"])
        else:
            vl, va = evaluate(model, x_test, y_test)
        row = {"step": step, "epoch": step * batch_size / n_train, "lr": opt.param_groups[0]["lr"],
               "train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va,
               "seconds": time.perf_counter() - t_start}
        metrics.append(row)
        eval_seconds.append(time.perf_counter() - t_eval)
        if on_metrics is not None:
            on_metrics(row)

    if on_record is not None:
        on_record(tracker.frame().to_dict("records"))
    log_metrics(0)
    order = torch.randperm(n_train, generator=gen)
    cursor = 0
    step = 0
    stopped = interrupted = False
    evals_done = 0
    bar_kwargs: dict[str, Any] = {"total": total, "desc": f"train {name} B={batch_size}", "leave": False}
    if not progress:
        bar_kwargs["disable"] = True
    bar = progress_bar(**bar_kwargs)
    try:
        while step < total:
            if should_stop():
                stopped = True
                break
            take = []
            need = int(batch_size)
            while need > 0:
                if cursor >= n_train:
                    order = torch.randperm(n_train, generator=gen)
                    cursor = 0
                chunk = order[cursor:cursor + need]
                take.append(chunk)
                cursor += len(chunk)
                need -= len(chunk)
            if sampler is None:
                idx = torch.cat(take) if len(take) > 1 else take[0]
            else:
                idx, importance = sampler.sample(batch_size)
            xb, yb = batch_augment(x_train[idx], y_train[idx], m, gen, augment=do_augment)
            if batch_transform is not None:
                xb, yb = batch_transform(xb, yb, step)
            for group in opt.param_groups:
                group["lr"] = _lr_at(lr_schedule, p["lr_effective"], step, total)
            opt.zero_grad(set_to_none=True)
            if model_loss is not None:
                loss = model_loss(model, xb, yb)
            elif sampler is None:
                loss = batch_loss(model(xb), yb)
            else:
                per_sample = F.cross_entropy(model(xb), yb, reduction="none")
                loss = (importance.to(per_sample.dtype) * per_sample).mean()
            if not torch.isfinite(loss):
                raise DataError(f"{name}: the training loss became {float(loss)} at step {step + 1} "
                                f"(lr {opt.param_groups[0]['lr']:.3g}, batch {batch_size}); lower the learning rate")
            loss.backward()
            opt.step()
            if sampler is not None:
                sampler.update(idx, per_sample.detach())
            step += 1
            if on_step is not None:
                with torch.no_grad():
                    on_step(step, model)
            rows = tracker.update(step)
            if rows and on_record is not None:
                on_record(rows)
            epoch_index = int(step * batch_size / (n_train * eval_every))
            if epoch_index > evals_done and step < total:
                evals_done = epoch_index
                log_metrics(step)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if step > 0 and not tracker.due(step):  # stopped between records: keep the last point
        rows = tracker.update(step, force=True)
        if rows and on_record is not None:
            on_record(rows)
    if not metrics or metrics[-1]["step"] != step:
        log_metrics(step)
    model.eval()
    config = {"model": name, "batch_size": int(batch_size), "lr": float(lr), "steps": steps, "epochs": epochs,
              "ghost_batch": ghost_batch, "lr_scaling": lr_scaling, "base_batch": int(base_batch),
              "regime_adaptation": bool(regime_adaptation), "batch_augmentation": m, "augment": do_augment,
              "hadamard_classifier": bool(hadamard_classifier), "seed": int(seed), "reinit": bool(reinit),
              "momentum": momentum, "weight_decay": weight_decay, "lr_schedule": lr_schedule,
              "loss_fn": None if loss_fn is None else getattr(loss_fn, "__name__", type(loss_fn).__name__),
              "batch_transform": None if batch_transform is None else getattr(batch_transform, "__name__",
                                                                               type(batch_transform).__name__), **p}
    extra: dict[str, Any] = {}
    if sampler is not None:
        sampler.bind(None)
        config["sampler"] = sampler.name
        extra["sampler"] = {"name": sampler.name, "update_seconds": sampler.seconds["update"],
                            "sample_seconds": sampler.seconds["sample"], "cost_per_step": sampler.cost_per_step()}
        spent = np.cumsum(eval_seconds)
        extra["train_seconds"] = [row["seconds"] - (spent[i - 1] if i else 0.0) for i, row in enumerate(metrics)]
    return TrainResult(distances=tracker.frame(), metrics=pd.DataFrame(metrics, columns=METRIC_COLUMNS),
                       model=model, config=config, steps=step, stopped=stopped, interrupted=interrupted,
                       seconds=time.perf_counter() - t_start, extra=extra)


def _check_sampler(sampler: Any, n_train: int, loss_fn: Any, m: int) -> None:
    # the sampler protocol (workbench.sampling.Sampler), checked by its methods: dynamics imports no lab
    if not all(callable(getattr(sampler, a, None)) for a in ("sample", "update", "bind", "cost_per_step")) \
            or not hasattr(sampler, "n"):
        raise DataError(f"sampler must be a workbench.sampling Sampler (make_sampler(name, x, y)), got "
                        f"{type(sampler).__name__}")
    if sampler.n != n_train:
        raise DataError(f"train: the sampler covers {sampler.n} samples but the training set has {n_train}")
    if loss_fn is not None:
        raise DataError("train: sampler= weights per-sample cross-entropies; it cannot be combined with loss_fn=")
    if m != 1:
        raise DataError(f"train: sampler= cannot be combined with batch_augmentation={m}; use 1")


@torch.no_grad()
def _per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of ``model`` in eval mode (no BatchNorm statistics updated), for the ``loss``
    sampler's candidate pool."""
    was = model.training
    model.eval()
    out = F.cross_entropy(model(x), y, reduction="none")
    model.train(was)
    return out


__all__ = ["train", "TrainResult", "plan", "reinitialize", "evaluate", "dense_copy", "METRIC_COLUMNS"]
