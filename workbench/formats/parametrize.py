"""Formats as reversible parametrizations (the torch.ao.pruning ``FakeSparsity`` idea, extended to numbers).

:class:`FormatParametrization` sits on a layer's ``weight`` through ``torch.nn.utils.parametrize``: the original
weight stays untouched in ``parametrizations.weight.original``; the mask and the scales live in non-persistent
buffers, computed once when the format is applied; ``forward(w) = scale · round((w ⊙ mask) / scale)``. Gradients
pass straight through the rounding (the straight-through estimator), so a parametrized model can also be trained.
Removing the parametrization with ``leave_parametrized=False`` gives back the exact original ``Parameter``.

:class:`ActivationQuantizer` fake-quantizes a layer's input with the same number format, per tensor, with a
dynamic scale (amax of the current input) unless a static ``scale`` has been calibrated.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.formats.numbers import Granularity, compute_scale, round_number
from workbench.formats.spec import Format, Number


class _StraightThrough(torch.autograd.Function):
    """Forward: the rounded value, exactly. Backward: the gradient unchanged (straight-through estimator)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:  # noqa: D401
        return rounded

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """``rounded`` in the forward pass, identity gradient to ``x`` in the backward pass."""
    if not x.requires_grad:
        return rounded
    return _StraightThrough.apply(x, rounded)


class FormatParametrization(nn.Module):
    """Parametrization applying a :class:`Format` to a weight; mask and scale are fixed when it is built."""

    def __init__(self, fmt: Format, weight: torch.Tensor, granularity: Granularity = "channel") -> None:
        super().__init__()
        self.fmt = fmt
        self.granularity = granularity
        self.notes: tuple[str, ...] = ()  # what building it had to say (e.g. a zero-padded transposable solve)
        w = weight.detach()
        mask = None
        if fmt.sparsity is not None:
            from workbench.formats.masks import weight_mask

            mask = weight_mask(w, fmt.sparsity)
            w = w * mask.to(w.dtype)
        self.register_buffer("mask", mask, persistent=False)
        scale = compute_scale(w, fmt.number, granularity) if fmt.number is not None else None
        self.register_buffer("scale", scale, persistent=False)

    @property
    def format_name(self) -> str:
        return self.fmt.name

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        out = w
        if self.mask is not None:
            out = out * self.mask.to(out.dtype)
        if self.fmt.number is not None:
            out = straight_through(out, round_number(out.detach(), self.fmt.number, self.scale).to(w.dtype))
        return out

    def extra_repr(self) -> str:
        return f"format={self.fmt.name!r}, granularity={self.granularity!r}"


class ActivationQuantizer:
    """Forward pre-hook fake-quantizing a layer's first input with ``number`` (per tensor).

    ``scale=None`` means dynamic: amax(x) / fmax for each call (mean|x| for binary). Setting ``scale`` to a float
    (for example from a calibration pass or a delayed-scaling amax history) fixes it.
    """

    def __init__(self, number: Number, scale: float | None = None) -> None:
        self.number = number
        self.scale = scale

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or not torch.is_tensor(args[0]) or not args[0].is_floating_point():
            return None
        x = args[0]
        if self.scale is None:
            scale = compute_scale(x, self.number, "tensor")
        else:
            scale = torch.tensor(float(self.scale), dtype=torch.float32, device=x.device)
        q = straight_through(x, round_number(x.detach(), self.number, scale).to(x.dtype))
        return (q, *args[1:])

    def __repr__(self) -> str:
        return f"ActivationQuantizer({self.number.name!r}, scale={self.scale!r})"


__all__ = ["FormatParametrization", "ActivationQuantizer", "straight_through"]
