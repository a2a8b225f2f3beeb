"""Data-free calibration data from BatchNorm statistics ("The Knowledge Within").

Following Haroush, Hubara, Hoffer, Soudry 2020, "The Knowledge Within: Methods for Data-Free Model Compression":
a trained network's BatchNorm layers remember the mean μ_k and variance σ²_k of their inputs over the training
data. Starting from random inputs, gradient descent on the inputs makes each BN layer's *batch* statistics match
its running ones (the "BNS" loss):

    L(x) = Σ_k  ‖μ_k(x) − μ_k‖² / C_k + ‖σ_k(x) − σ_k‖² / C_k     (+ optionally  λ · CE(f(x), random labels))

The synthesized batch then stands in wherever calibration data is taken (activation scales, AdaQuant,
BN re-estimation): pass it as ``batches=`` to the functions of :mod:`workbench.quant.calibration`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError

__all__ = ["bn_layers", "bn_statistics_loss", "synthesize"]


def bn_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers with running statistics, by name."""
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None}


def _batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, *range(2, x.dim())]
    return x.mean(dims), x.var(dims, unbiased=False)


def bn_statistics_loss(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Run ``model(x)``; return (BNS loss, logits, per-layer loss) comparing batch and running BN statistics."""
    bns = bn_layers(model)
    terms: dict[str, torch.Tensor] = {}
    hooks = []
    for n, m in bns.items():
        def hook(mod: nn.Module, args: Any, n: str = n) -> None:
            mu, var = _batch_stats(args[0])
            c = mu.numel()
            terms[n] = ((mu - mod.running_mean) ** 2).sum() / c + \
                ((var.clamp_min(1e-8).sqrt() - mod.running_var.clamp_min(1e-8).sqrt()) ** 2).sum() / c
        hooks.append(m.register_forward_pre_hook(hook))
    try:
        out = model(x)
    finally:
        for h in hooks:
            h.remove()
    loss = sum(terms.values()) if terms else torch.zeros(())
    return loss, out, {k: float(v.detach()) for k, v in terms.items()}


def synthesize(handle: Any, n: int = 256, *, steps: int = 300, lr: float = 0.1, label_weight: float = 0.0,
               input_range: tuple[float, float] | None = None, batch_size: int | None = None, seed: int = 0,
               progress: bool = True) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """Synthesize ``n`` inputs from the model's BN statistics; returns ``(batches, history)``.

    ``batches`` are shaped like the handle's calibration batches (default batch size: theirs); ``history`` has one
    row per step: ``step, bns_loss`` and one column per BN layer. ``label_weight > 0`` adds a cross-entropy term
    towards random (balanced) labels, which spreads the inputs over the classes; ``input_range`` clamps inputs
    after each step (e.g. ``(0, 1)`` for pixels). The model is used in eval mode and left unchanged.
    """
    from workbench.progress import progress_bar

    from workbench.checks import integer, number

    where = "synthesize"
    n = integer("n", n, low=1, where=where)
    steps = integer("steps", steps, low=0, where=where)
    lr = number("lr", lr, low=0, low_open=True, where=where)
    label_weight = number("label_weight", label_weight, low=0, where=where)
    seed = integer("seed", seed, where=where)
    if batch_size is not None:
        batch_size = integer("batch_size", batch_size, low=1, where=where)
    if input_range is not None:
        if not isinstance(input_range, (tuple, list)) or len(input_range) != 2:
            raise DataError(f"{where}: input_range must be a pair (low, high), got {input_range!r}")
        lo = number("input_range[0]", input_range[0], where=where)
        hi = number("input_range[1]", input_range[1], low=lo, low_open=True, where=where)
        input_range = (lo, hi)
    model = handle.model
    bns = bn_layers(model)
    if not bns:
        raise DataError(f"model {getattr(handle, 'name', '?')!r} has no BatchNorm layers with running statistics "
                        "to synthesize calibration data from")
    ref = handle.calibration_batches(n_batches=1)
    if not ref or not torch.is_tensor(ref[0]):
        raise DataError("synthesize needs a model whose calibration batches are tensors")
    shape = tuple(ref[0].shape[1:])
    size = batch_size or len(ref[0])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=g)
    if input_range is not None:
        lo, hi = input_range
        x = lo + (hi - lo) * torch.rand((n, *shape), generator=g)
    x.requires_grad_(True)
    labels = torch.arange(n) % 10
    opt = torch.optim.Adam([x], lr=lr)
    was = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    rows = []
    try:
        for step in progress_bar(range(steps), desc="synthesize", disable=not progress):
            opt.zero_grad()
            loss, out, per = bn_statistics_loss(model, x)
            total = loss
            if label_weight > 0:
                total = total + label_weight * nn.functional.cross_entropy(out, labels % out.shape[-1])
            total.backward()
            opt.step()
            if input_range is not None:
                with torch.no_grad():
                    x.clamp_(*input_range)
            rows.append({"step": step + 1, "bns_loss": float(loss.detach()), **per})
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was)
    data = x.detach()
    return [data[i:i + size] for i in range(0, n, size)], pd.DataFrame(rows)
