"""Binarized neural networks: straight-through training and the XNOR-popcount identity.

Following Hubara, Courbariaux, Soudry, El-Yaniv, Bengio 2016, "Binarized Neural Networks":

- forward: ``sign(x)`` with ``sign(0) = +1`` for weights *and* activations;
- backward (straight-through estimator): the gradient passes unchanged where ``|x| ≤ 1`` and is cancelled where
  ``|x| > 1`` (the gradient of ``hardtanh``);
- the optimiser updates real-valued latent weights, clipped to ``[−1, 1]`` after every step;
- BatchNorm after every binary layer keeps the pre-activations centred around 0, where the sign is informative.

For ``a, b ∈ {−1, +1}^n`` packed as bits (1 for +1), ``a·b = n − 2·popcount(a XOR b)``: each differing position
contributes −1 and each equal one +1. :func:`xnor_popcount_dot` shows that identity on the kernels' packing
(:func:`workbench.kernels.bits.pack_signs`, 32 signs per int32 word); the GPU kernel is ``workbench.kernels.xnor_gemm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DTypeError, ShapeError
from workbench.kernels.bits import pack_signs  # the one sign packing (kernels' layout)

if TYPE_CHECKING:
    from workbench.dynamics.train import TrainResult

__all__ = [
    "sign_ste",
    "pack_signs",
    "xnor_popcount_dot",
    "BinaryLinear",
    "BinarizedMLP",
    "FloatMLP",
    "train_digits_mlp",
]


# ----------------------------------------------------------------------------------------------------------------
# the XNOR-popcount identity

def xnor_popcount_dot(a_bits: torch.Tensor, b_bits: torch.Tensor, n: int) -> torch.Tensor:
    """All dot products between rows of ±1 matrices given as packed bits: ``n − 2·popcount(a XOR b)``.

    ``a_bits`` (..., P, W) and ``b_bits`` (Q, W) are int32 words from :func:`workbench.kernels.bits.pack_signs`
    (the kernels' layout: 32 signs a word, ``W = ceil(n/32)``, padding bits 0); returns int64 (..., P, Q), equal to
    ``sign(a) @ sign(b).T``. Computed by :func:`workbench.kernels.xnor_gemm_reference`, the reference of the GPU
    kernel ``workbench.kernels.xnor_gemm``.

    >>> a, b = torch.tensor([[1., -1., 1.]]), torch.tensor([[1., 1., -1.], [1., -1., 1.]])
    >>> xnor_popcount_dot(pack_signs(a), pack_signs(b), 3)
    tensor([[-1,  3]])
    """
    from workbench.kernels.bits import tail_mask, words_for
    from workbench.kernels.reference import xnor_gemm_reference

    for name, t in (("a_bits", a_bits), ("b_bits", b_bits)):
        if not torch.is_tensor(t) or t.dtype != torch.int32:
            raise DTypeError(f"xnor_popcount_dot: {name} must be int32 words from pack_signs, got "
                             f"{getattr(t, 'dtype', type(t).__name__)}")
    if a_bits.dim() < 2 or b_bits.dim() != 2 or a_bits.shape[-1] != b_bits.shape[-1]:
        raise ShapeError(f"xnor_popcount_dot: packed shapes {tuple(a_bits.shape)} and {tuple(b_bits.shape)} do not "
                         "match (want (..., P, W) and (Q, W))")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or words_for(n) != a_bits.shape[-1]:
        raise ShapeError(f"xnor_popcount_dot: n={n!r} does not fit {a_bits.shape[-1]} packed words "
                         f"(n must be a positive int with ceil(n/32) = {a_bits.shape[-1]})")
    spill = ~tail_mask(n)
    for name, t in (("a_bits", a_bits), ("b_bits", b_bits)):
        if t.numel() and bool((t[..., -1] & spill).any()):
            raise ShapeError(f"xnor_popcount_dot: {name} has set bits beyond n={n}: its rows were packed from "
                             f"longer rows and do not match n")
    flat = a_bits.reshape(-1, a_bits.shape[-1])
    out = xnor_gemm_reference(flat, b_bits, n).to(torch.int64)
    return out.reshape(*a_bits.shape[:-1], b_bits.shape[0])


# ----------------------------------------------------------------------------------------------------------------
# straight-through estimator and binary layers


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` with ``+1`` at 0; its gradient is the straight-through ``1{|x| ≤ 1}``.

    >>> x = torch.tensor([-2., -0.5, 0., 0.5, 2.], requires_grad=True)
    >>> sign_ste(x).sum().backward(); x.grad
    tensor([0., 1., 1., 1., 0.])
    """
    return _SignSTE.apply(x)


class BinaryLinear(nn.Linear):
    """A linear layer whose weights are ``sign(latent)`` in the forward pass (latent weights stay real).

    ``binarize_input`` also binarizes its input (all layers but the first, which sees real pixels).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, binarize_input: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.binarize_input = binarize_input
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binarize_input:
            x = sign_ste(x)
        return nn.functional.linear(x, sign_ste(self.weight), self.bias)

    @torch.no_grad()
    def clip_(self) -> None:
        """Clip the latent weights to [−1, 1] (outside it the STE gradient would be zero forever)."""
        self.weight.clamp_(-1.0, 1.0)


class BinarizedMLP(nn.Module):
    """Digits MLP with binary weights and activations: ``[BinaryLinear → BN] × depth`` (hidden ±1 activations).

    The input pixels stay real (as in Hubara et al. 2016, the first layer sees the data); every hidden activation
    is ``sign(BN(·))``; the last layer's output goes through BN to the logits. ``batchnorm=False`` drops the BNs
    (to show why they help).
    """

    def __init__(self, sizes: tuple[int, ...] = (64, 256, 256, 10), batchnorm: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            BinaryLinear(a, b, bias=not batchnorm, binarize_input=i > 0)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        self.norms = nn.ModuleList(
            (nn.BatchNorm1d(b) if batchnorm else nn.Identity()) for b in sizes[1:]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, norm in zip(self.layers, self.norms):
            x = norm(layer(x))  # the next BinaryLinear binarizes x
        return x

    def clip_(self) -> None:
        for layer in self.layers:
            layer.clip_()


class FloatMLP(nn.Module):
    """The same shape in float with ReLU and BatchNorm: the reference accuracy beside the binarized net."""

    def __init__(self, sizes: tuple[int, ...] = (64, 256, 256, 10)) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods += [nn.BatchNorm1d(b), nn.ReLU()]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def clip_(self) -> None:  # nothing to clip
        pass


def train_digits_mlp(
    binary: bool = True,
    *,
    batchnorm: bool = True,
    hidden: tuple[int, ...] = (256, 256),
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> "TrainResult":
    """Train a binarized (``binary=True``) or float MLP on the fixed digits split; Adam, cosine-decayed lr.

    Latent weights are clipped to [−1, 1] after every step (binary only). Returns the lab-wide
    :class:`workbench.dynamics.train.TrainResult` (model in eval mode, ``metrics`` one row per epoch, train and
    test loss/accuracy by :func:`workbench.dynamics.train.evaluate`); measured on this split: binarized ≈ 0.9+,
    float ≈ 0.97 (see benchmarks/RESULTS.quant.md).
    """
    import time

    from workbench.progress import progress_bar

    from workbench.checks import integer, number
    from workbench.data import digits_split
    from workbench.dynamics.train import METRIC_COLUMNS, TrainResult, evaluate

    epochs = integer("epochs", epochs, low=0, where="train_digits_mlp")
    batch_size = integer("batch_size", batch_size, low=2, where="train_digits_mlp")
    lr = number("lr", lr, low=0, low_open=True, where="train_digits_mlp")
    hidden = tuple(integer("hidden", h, low=1, where="train_digits_mlp") for h in hidden)
    torch.manual_seed(seed)
    s = digits_split()
    if batch_size > len(s.x_train):
        from workbench.errors import DataError

        raise DataError(f"train_digits_mlp: batch_size={batch_size} is larger than the training set of "
                        f"{len(s.x_train)} samples; use at most {len(s.x_train)}")
    sizes = (64, *hidden, 10)
    model: nn.Module = BinarizedMLP(sizes, batchnorm=batchnorm) if binary else FloatMLP(sizes)
    base_lr = lr if binary else lr / 10
    opt = torch.optim.Adam(model.parameters(), lr=base_lr)
    steps = epochs * ((len(s.x_train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    g = torch.Generator().manual_seed(seed)
    rows = []
    step = 0
    t0 = time.perf_counter()
    for epoch in progress_bar(range(epochs), desc="binarized" if binary else "float", disable=not progress):
        model.train()
        perm = torch.randperm(len(s.x_train), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:
                continue
            loss = nn.functional.cross_entropy(model(s.x_train[idx]), s.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            model.clip_()  # type: ignore[operator]
            step += 1
        train_loss, train_acc = evaluate(model, s.x_train, s.y_train)
        test_loss, test_acc = evaluate(model, s.x_test, s.y_test)
        rows.append({"step": step, "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": train_loss,
                     "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
                     "seconds": time.perf_counter() - t0})
    model.eval()
    config = {"model": "binarized-mlp" if binary else "float-mlp", "binary": binary, "batchnorm": batchnorm,
              "hidden": hidden, "epochs": epochs, "batch_size": batch_size, "lr": base_lr, "seed": seed,
              "optimizer": "adam", "lr_schedule": "cosine"}
    return TrainResult(distances=pd.DataFrame(columns=["step", "layer", "distance"]),
                       metrics=pd.DataFrame(rows, columns=METRIC_COLUMNS), model=model, config=config, steps=step,
                       seconds=time.perf_counter() - t0)


def binary_weight_fraction(model: nn.Module) -> float:
    """Fraction of forward weights in the binary layers that are exactly ±1 (a check that nothing leaks)."""
    vals = [sign_ste(m.weight.detach()) for m in model.modules() if isinstance(m, BinaryLinear)]
    if not vals:
        return float("nan")
    v = torch.cat([t.flatten() for t in vals])
    return float(np.mean(np.isin(v.numpy(), [-1.0, 1.0])))
