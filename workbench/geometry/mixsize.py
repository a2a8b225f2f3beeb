"""Mix & Match (Hoffer, Weinstein, Hubara, Ben-Nun, Hoefler & Soudry 2019, "Mix & Match: training convnets with
mixed image sizes for improved accuracy, speed and scale resiliency").

A CNN with global pooling runs on any image size, but one trained at a single size is accurate near that size only.
Mixed-size training draws an image size ``s`` for every step from a set (here 16/24/32/40 pixels) and scales the
batch so the compute of a step stays that of the base size: ``B(s) = round(B₀ · (s₀ / s)²)`` (a conv layer costs
∝ B·s²). The learning rate follows the batch (the paper's batch-scaled regime): with ``lr_scaling="linear"``
(Goyal et al. 2017) a step of ``B(s)`` samples takes ``lr · B(s)/B₀``, implemented exactly by training on the
*summed* cross-entropy divided by ``B₀``; ``"sqrt"`` (Hoffer et al. 2017) multiplies the mean loss by
``√(B(s)/B₀)``; ``None`` keeps the plain mean.

Training runs through the one :func:`workbench.dynamics.train` loop: it draws batches of the largest ``B(s)``, and a
``batch_transform`` resizes each batch to that step's size (:func:`~workbench.geometry.data.resize_images`) and keeps
its first ``B(s)`` samples. The fixed-size baseline is the same call with one size, so both make the same number of
steps at (nearly) the same compute per step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import DataError
from workbench.geometry.cnn import check_input_size, flops_per_image, make_digits_cnn
from workbench.geometry.data import BASE_SIZE, digits32, geometry_handle, resize_images

DEFAULT_SIZES = (16, 24, 32, 40)
LR_SCALINGS = ("linear", "sqrt", None)


def _sizes(sizes: Sequence[int], what: str = "sizes") -> tuple[int, ...]:
    try:
        out = tuple(sizes)
    except TypeError:
        raise DataError(f"{what} must be a sequence of image sizes such as {DEFAULT_SIZES}, got {sizes!r}")
    if not out or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in out):
        raise DataError(f"{what} must be a non-empty sequence of positive integers, got {sizes!r}")
    return out


def batch_for_size(size: int, base_size: int = BASE_SIZE, base_batch: int = 32) -> int:
    """``round(base_batch · (base_size / size)²)``, at least 1: the batch that keeps pixels per step constant."""
    return max(1, int(round(base_batch * (base_size / size) ** 2)))


def size_schedule(sizes: Sequence[int] = DEFAULT_SIZES, steps: int = 100, *, probs: Sequence[float] | None = None,
                  base_size: int = BASE_SIZE, base_batch: int = 32, seed: int = 0) -> pd.DataFrame:
    """The per-step plan: ``step, size, batch, pixels`` (``pixels = batch · size²``), sizes drawn i.i.d. with
    ``probs`` (uniform by default) from a seeded generator."""
    sizes = _sizes(sizes)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DataError(f"steps must be a positive integer, got {steps!r}")
    if probs is not None:
        p = np.asarray(probs, dtype=float)
        if p.shape != (len(sizes),) or (p < 0).any() or not p.sum() > 0:
            raise DataError(f"probs must be {len(sizes)} non-negative weights, one per size, got {probs!r}")
        p = p / p.sum()
    else:
        p = None
    rng = np.random.default_rng(seed)
    drawn = rng.choice(np.asarray(sizes), size=steps, p=p) if len(sizes) > 1 else np.full(steps, sizes[0])
    batches = np.array([batch_for_size(int(s), base_size, base_batch) for s in drawn])
    return pd.DataFrame({"step": np.arange(steps), "size": drawn.astype(int), "batch": batches,
                         "pixels": batches * drawn.astype(int) ** 2})


class _ScaledLoss:
    """Cross-entropy scaled so that SGD's step follows the batch size (see the module doc)."""

    def __init__(self, rule: str | None, base_batch: int) -> None:
        self.rule, self.base = rule, base_batch
        self.__name__ = f"cross_entropy[{rule or 'mean'}]"

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.rule == "linear":
            return F.cross_entropy(logits, y, reduction="sum") / self.base
        if self.rule == "sqrt":
            return F.cross_entropy(logits, y) * math.sqrt(len(y) / self.base)
        return F.cross_entropy(logits, y)


class _Resize:
    def __init__(self, plan: pd.DataFrame) -> None:
        self.sizes, self.batches = plan["size"].to_numpy(), plan["batch"].to_numpy()
        self.__name__ = "mix_and_match_resize"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = int(self.batches[step])
        return resize_images(x[:b], int(self.sizes[step])), y[:b]


@dataclass
class MixResult:
    """What :func:`mix_and_match` returns: the trained model, the schedule it followed and the train result."""

    model: nn.Module
    schedule: pd.DataFrame
    train_result: Any
    config: dict[str, Any] = field(default_factory=dict)


def mix_and_match(sizes: Sequence[int] = DEFAULT_SIZES, steps: int = 300, *, base_size: int = BASE_SIZE,
                  base_batch: int = 32, lr: float = 0.05, lr_scaling: str | None = "linear",
                  probs: Sequence[float] | None = None, pool: str = "max", seed: int = 0, momentum: float = 0.9,
                  weight_decay: float = 5e-4, lr_schedule: str = "cosine", model: nn.Module | None = None,
                  data=None, progress: bool = False, stop=None) -> MixResult:
    """Train a :class:`~workbench.geometry.cnn.GeometryCNN` (or ``model``) on digits with an image size drawn per
    step from ``sizes`` (see the module doc); ``sizes=(32,)`` is fixed-size training at the same compute per step.
    ``data``: ``((x_train, y_train), (x_test, y_test))`` at ``base_size`` instead of the 32×32 digits.
    """
    sizes = _sizes(sizes)
    if lr_scaling not in LR_SCALINGS:
        raise DataError(f"lr_scaling must be one of {LR_SCALINGS}, got {lr_scaling!r}")
    net = make_digits_cnn(pool, size=base_size, seed=seed) if model is None else model
    for s in sizes:
        check_input_size(net, s, "training size")
    plan = size_schedule(sizes, steps, probs=probs, base_size=base_size, base_batch=base_batch, seed=seed)
    from workbench.dynamics.train import train

    handle = geometry_handle(net, name=f"{pool}-cnn sizes {'/'.join(map(str, sizes))}", size=base_size, data=data)
    result = train(handle, batch_size=int(plan["batch"].max()), lr=lr, steps=steps, seed=seed, reinit=True,
                   momentum=momentum, weight_decay=weight_decay, lr_schedule=lr_schedule, track_every=steps,
                   eval_every=1e9, progress=progress, stop=stop, loss_fn=_ScaledLoss(lr_scaling, base_batch),
                   batch_transform=_Resize(plan))
    config = {"sizes": list(sizes), "steps": steps, "base_size": base_size, "base_batch": base_batch, "lr": lr,
              "lr_scaling": lr_scaling, "pool": pool, "seed": seed, "weight_decay": weight_decay,
              "lr_schedule": lr_schedule, "mean_pixels_per_step": float(plan["pixels"].mean())}
    return MixResult(model=result.model.eval(), schedule=plan, train_result=result, config=config)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are recomputed on the images ``x`` (a cumulative
    average over batches, in train mode, no weight changes): the statistics of the test size (the "train-test
    resolution discrepancy" of Touvron et al. 2019, FixRes). ``model`` is not changed."""
    new = copy.deepcopy(model)
    bns = [m for m in new.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return new
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    new.train()
    for i in range(0, len(x), batch_size):
        new(x[i:i + batch_size])
    return new.eval()


@torch.no_grad()
def accuracy_vs_size(model: nn.Module, sizes: Sequence[int] = DEFAULT_SIZES, *,
                     data: tuple[torch.Tensor, torch.Tensor] | None = None,
                     calibrate_bn: bool = False) -> pd.DataFrame:
    """Test accuracy and cross-entropy of ``model`` with the 32×32 test digits resized to each size, with the
    FLOPs per image at that size (and relative to the largest size): ``size, accuracy, loss, flops, rel_flops``.
    ``calibrate_bn=True``: BatchNorm statistics are first recomputed on the training digits at that size
    (:func:`recalibrate_bn`)."""
    sizes = _sizes(sizes, "test sizes")
    for s in sizes:
        check_input_size(model, s, "test size")
    x, y = digits32()[1] if data is None else data
    x_train = digits32()[0][0] if calibrate_bn else None
    was = model.training
    model.eval()
    rows = []
    try:
        for s in sizes:
            net = recalibrate_bn(model, resize_images(x_train, s)) if calibrate_bn else model
            out = net(resize_images(x, s))
            rows.append({"size": s, "accuracy": float((out.argmax(1) == y).double().mean()),
                         "loss": float(F.cross_entropy(out, y)), "flops": flops_per_image(model, s)})
    finally:
        model.train(was)
    df = pd.DataFrame(rows)
    df["rel_flops"] = df["flops"] / df["flops"].max()
    return df


def compare_fixed_mixed(seeds: Sequence[int] = (0, 1, 2), *, train_sizes: Sequence[int] = DEFAULT_SIZES,
                        fixed_size: int = BASE_SIZE, test_sizes: Sequence[int] = DEFAULT_SIZES, steps: int = 300,
                        progress: bool = False, stop=None, **kw) -> pd.DataFrame:
    """Fixed-size (``fixed_size``) against mixed-size (``train_sizes``) training, per seed and test size:
    ``seed, training, test_size, accuracy, accuracy_bn (BatchNorm statistics recomputed at the test size), loss,
    flops``. Same steps, same pixels per step (``**kw`` go to
    :func:`mix_and_match`)."""
    test_sizes = _sizes(test_sizes, "test sizes")
    rows = []
    for seed in seeds:
        for label, sizes in (("fixed", (fixed_size,)), ("mixed", tuple(train_sizes))):
            res = mix_and_match(sizes, steps, seed=int(seed), progress=progress, stop=stop, **kw)
            acc = accuracy_vs_size(res.model, test_sizes)
            cal = accuracy_vs_size(res.model, test_sizes, calibrate_bn=True)
            for r, c in zip(acc.itertuples(), cal.itertuples()):
                rows.append({"seed": int(seed), "training": label, "test_size": int(r.size),
                             "accuracy": r.accuracy, "accuracy_bn": c.accuracy, "loss": r.loss,
                             "flops": int(r.flops)})
    return pd.DataFrame(rows)


def summarize_sizes(frame: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """Mean and sample standard deviation of ``column`` (``accuracy`` or ``accuracy_bn``) over seeds, per training
    and test size: ``training, test_size, accuracy_mean, accuracy_sd, seeds``."""
    if column not in frame.columns:
        raise DataError(f"column must be one of the frame's accuracy columns, got {column!r}")
    g = frame.groupby(["training", "test_size"])[column]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "accuracy_mean", "std": "accuracy_sd", "count": "seeds"})


__all__ = ["DEFAULT_SIZES", "LR_SCALINGS", "batch_for_size", "size_schedule", "mix_and_match", "MixResult",
           "accuracy_vs_size", "recalibrate_bn", "compare_fixed_mixed", "summarize_sizes"]
