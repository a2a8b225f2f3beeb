"""Ghost Batch Normalization (Hoffer, Hubara & Soudry 2017, "Train longer, generalize better", section 4).

A large batch of ``B`` samples is split into ``B / g`` *ghost batches* of ``g`` samples; each ghost batch is
normalized with its own mean and variance, exactly as if BatchNorm had seen it as a batch of its own. The running
statistics used at evaluation are updated once per ghost batch, in order, with the usual exponential moving average.
So with ``g == B`` a :class:`GhostBatchNorm` *is* ``BatchNorm`` (same outputs, same running statistics), and with a
smaller ``g`` it equals BatchNorm applied to the chunks ``x[0:g], x[g:2g], ...`` one after another. In evaluation mode
it uses the running statistics like any BatchNorm.

The module derives from torch's ``_BatchNorm`` and keeps its parameter and buffer names (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), so a state dict moves freely between the two and
:func:`swap_ghost_bn` can replace the BatchNorm layers of a model in place.

>>> gbn = GhostBatchNorm(3, ghost_size=4)
>>> gbn(torch.randn(8, 3, 5, 5)).shape
torch.Size([8, 3, 5, 5])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from workbench.errors import DataError, LayerError, ShapeError


class GhostBatchNorm(_BatchNorm):
    """BatchNorm over ghost batches of ``ghost_size`` samples in training; running statistics in evaluation.

    Works for inputs of shape ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)`` and ``(N, C, D, H, W)``: a drop-in for
    ``BatchNorm1d``/``2d``/``3d``. A batch that is not a multiple of ``ghost_size`` ends in one smaller ghost batch.
    """

    def __init__(self, num_features: int, ghost_size: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype)
        if int(ghost_size) < 1:
            raise DataError(f"GhostBatchNorm: ghost_size must be a positive integer, got {ghost_size!r}")
        self.ghost_size = int(ghost_size)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4, 5):
            raise ShapeError(f"GhostBatchNorm expects a 2-D to 5-D input (N, C, ...), got shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ShapeError(f"GhostBatchNorm({self.num_features}) got {input.shape[1]} channels "
                             f"in an input of shape {tuple(input.shape)}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", ghost_size={self.ghost_size}"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        n = input.shape[0]
        if not self.training or n <= self.ghost_size:
            # one ghost batch (or evaluation): exactly BatchNorm
            return super().forward(input)
        if n % self.ghost_size != 0 or self.momentum is None or not self.track_running_stats:
            return self._forward_chunked(input)
        return self._forward_vectorized(input)

    def _forward_chunked(self, input: torch.Tensor) -> torch.Tensor:
        """The reference semantics: BatchNorm on each ghost batch in turn (running statistics updated per chunk)."""
        return torch.cat([super(GhostBatchNorm, self).forward(chunk) for chunk in input.split(self.ghost_size)])

    def _forward_vectorized(self, input: torch.Tensor) -> torch.Tensor:
        """All ghost batches at once; the running statistics get the same sequence of per-chunk EMA updates."""
        g = self.ghost_size
        n, c = input.shape[:2]
        k = n // g
        x = input.reshape(k, g, c, -1)  # ghost, sample, channel, positions
        mean = x.mean(dim=(1, 3), keepdim=True)
        var = x.var(dim=(1, 3), unbiased=False, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.view(1, 1, c, 1) + self.bias.view(1, 1, c, 1)
        if self.track_running_stats:
            with torch.no_grad():
                count = g * x.shape[3]
                m = float(self.momentum)  # type: ignore[arg-type]
                # r_k = (1 - m) r_{k-1} + m s_k  for k = 1..K  =>  r_K = (1-m)^K r_0 + sum_k m (1-m)^(K-k) s_k
                weights = m * (1.0 - m) ** torch.arange(k - 1, -1, -1, dtype=torch.float64)
                w = weights.to(input.dtype).view(k, 1)
                mu = mean.view(k, c)
                unbiased = var.view(k, c) * (count / max(count - 1, 1))
                decay = (1.0 - m) ** k
                self.running_mean.mul_(decay).add_((w * mu).sum(0))  # type: ignore[union-attr]
                self.running_var.mul_(decay).add_((w * unbiased).sum(0))  # type: ignore[union-attr]
                self.num_batches_tracked.add_(k)  # type: ignore[union-attr]
        return y.reshape(input.shape)


def swap_ghost_bn(model: nn.Module, ghost_size: int) -> list[str]:
    """Replace every BatchNorm layer of ``model`` (in place) by a :class:`GhostBatchNorm` with the same state.

    Layers that already are GhostBatchNorm get the new ``ghost_size``. Returns the names of the layers changed.
    Raises :class:`~workbench.errors.LayerError` when the model has no BatchNorm layer (Ghost BN needs one).
    """
    if int(ghost_size) < 1:
        raise DataError(f"swap_ghost_bn: ghost_size must be a positive integer, got {ghost_size!r}")
    swapped: list[str] = []
    for name, module in list(model.named_modules()):
        if isinstance(module, GhostBatchNorm):
            module.ghost_size = int(ghost_size)
            swapped.append(name)
            continue
        if not isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            continue
        if not name:
            raise LayerError(f"swap_ghost_bn replaces BatchNorm layers inside a model; got a bare {type(module).__name__}"
                             f"({module.num_features}): build GhostBatchNorm({module.num_features}, ghost_size) instead")
        ghost = GhostBatchNorm(module.num_features, ghost_size, eps=module.eps, momentum=module.momentum,
                               affine=module.affine, track_running_stats=module.track_running_stats)
        ref = next(iter(module.state_dict().values()), None)
        if ref is not None:
            ghost = ghost.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        ghost.load_state_dict(module.state_dict())
        ghost.train(module.training)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, ghost)
        swapped.append(name)
    if not swapped:
        kinds = sorted({type(m).__name__ for m in model.modules()} - {type(model).__name__})
        raise LayerError(f"Ghost Batch Norm needs BatchNorm layers, but {type(model).__name__} has none "
                         f"(its modules: {', '.join(kinds) or 'none'})")
    return swapped


__all__ = ["GhostBatchNorm", "swap_ghost_bn"]
