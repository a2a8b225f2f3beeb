"""Downsampling layers that know about shifts: plain subsampling, blur pooling and adaptive polyphase sampling.

* :class:`Subsample` keeps every ``stride``-th pixel (what a strided convolution does after the convolution). A
  circular shift of the input by one pixel moves the kept grid onto a different *polyphase component*, so the output
  is not a shifted copy of the old output: strided downsampling aliases (Zhang 2019; Azulay & Weiss 2019).
* :class:`BlurPool` (Zhang 2019, "Making convolutional networks shift-invariant again"): a binomial low-pass filter
  per channel, then subsampling. It reduces aliasing; it does not remove it.
* :class:`APSDownsample` (Chaman & Dokmanić 2020, "Truly shift-invariant convolutional neural networks"): split the
  input into its ``stride²`` polyphase components ``x[:, :, i::s, j::s]`` and keep, per sample, the one of largest
  ℓ2 (or ℓ1) norm. A circular shift of the input permutes the components and circularly shifts each, so the chosen
  component is a circular shift of the one chosen before: the layer is exactly shift *equivariant* (up to a
  shift), and a network whose every layer is circular (circular padding in convolutions, APS at every downsampling,
  global pooling at the end) is exactly shift *invariant*.
* :class:`CircularMaxPool`: a stride-1 max pool with circular padding, the "max" half of max-pooling that the
  papers keep before the anti-aliased (or adaptive) subsampling.

>>> import torch
>>> x = torch.randn(2, 3, 8, 8)
>>> aps = APSDownsample(2)
>>> shifted = torch.roll(x, shifts=(1, 3), dims=(2, 3))
>>> y, ys = aps(x), aps(shifted)
>>> any(torch.equal(torch.roll(y, (a, b), (2, 3)), ys) for a in range(4) for b in range(4))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import DataError, ShapeError

NORMS = ("l2", "l1")


def check_stride(stride: object, what: str = "stride") -> int:
    """``stride`` as a positive int, or a :class:`~workbench.errors.DataError` naming it."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DataError(f"{what} must be a positive integer (1 keeps every pixel, 2 halves the size), got "
                        f"{type(stride).__name__} {stride!r}")
    return stride


def polyphase_components(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """The ``stride²`` polyphase components of a batch ``x`` (B, C, H, W): a tensor (B, stride², C, H/s, W/s)
    whose component ``i·s + j`` is ``x[:, :, i::s, j::s]``. H and W must be multiples of ``stride``."""
    s = check_stride(stride)
    _check_divisible(x, s, "polyphase_components")
    b, c, h, w = x.shape
    comps = x.reshape(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4)
    return comps.reshape(b, s * s, c, h // s, w // s)


def _check_divisible(x: torch.Tensor, s: int, who: str) -> None:
    if x.dim() != 4:
        raise ShapeError(f"{who} takes a batch of images (B, C, H, W), got a tensor of shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % s or w % s:
        ph, pw = (-h) % s, (-w) % s
        raise ShapeError(
            f"{who}: the spatial size {h}×{w} is not divisible by the stride {s}; pad the input to "
            f"{h + ph}×{w + pw} first (add {ph} row(s) and {pw} column(s), e.g. "
            f"F.pad(x, (0, {pw}, 0, {ph}), mode='circular') to keep shift invariance) or choose an image size "
            f"that is a multiple of the network's total stride")


class Subsample(nn.Module):
    """Keep every ``stride``-th row and column (``x[..., ::s, ::s]``): the subsampling of a strided convolution."""

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = check_stride(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., ::self.stride, ::self.stride]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class APSDownsample(nn.Module):
    """Adaptive polyphase sampling (Chaman & Dokmanić 2020): per sample, the polyphase component of largest norm.

    ``norm``: ``"l2"`` (the paper's default) or ``"l1"``. Spatial sizes must be multiples of ``stride``
    (a :class:`~workbench.errors.ShapeError` says how much to pad). Ties between components (equal norms to the last
    bit, e.g. an all-zero input) are broken by the first index, and that choice is not shift invariant.
    The last choice is kept in ``self.last_index`` (B,) for teaching figures.
    """

    def __init__(self, stride: int = 2, norm: str = "l2") -> None:
        super().__init__()
        self.stride = check_stride(stride)
        if norm not in NORMS:
            raise DataError(f"norm must be one of {NORMS}, got {norm!r}")
        self.norm = norm
        self.last_index: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s == 1:
            return x
        comps = polyphase_components(x, s)  # (B, s², C, h, w)
        flat = comps.flatten(2)
        score = flat.square().sum(-1) if self.norm == "l2" else flat.abs().sum(-1)
        idx = score.argmax(dim=1)
        self.last_index = idx.detach()
        return comps[torch.arange(len(x), device=x.device), idx]

    def extra_repr(self) -> str:
        return f"stride={self.stride}, norm={self.norm!r}"


def binomial_filter(size: int = 3) -> torch.Tensor:
    """The normalized 2-D binomial low-pass filter of side ``size`` (outer product of the row of Pascal's triangle):
    1 → [1], 2 → [1, 1]/2, 3 → [1, 2, 1]/4, 4 → [1, 3, 3, 1]/8, ... (Zhang 2019's ``filt_size``)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 7:
        raise DataError(f"filter_size must be an integer from 1 to 7, got {size!r}")
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    f = torch.outer(row, row)
    return f / f.sum()


PAD_MODES = ("circular", "reflect", "replicate", "zeros")


class BlurPool(nn.Module):
    """Blur pooling (Zhang 2019): a per-channel binomial low-pass of side ``filter_size``, then subsampling.

    ``channels`` is optional (the filter is applied depthwise to however many channels arrive). ``pad_mode``:
    ``"circular"`` (default here, so the blur commutes with circular shifts), ``"reflect"`` (Zhang's choice),
    ``"replicate"`` or ``"zeros"``. Padding is ``(filter_size-1)//2`` before and ``filter_size//2`` after.
    """

    def __init__(self, channels: int | None = None, stride: int = 2, filter_size: int = 3,
                 pad_mode: str = "circular") -> None:
        super().__init__()
        self.stride = check_stride(stride)
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
            raise DataError(f"channels must be a positive integer or None, got {channels!r}")
        if pad_mode not in PAD_MODES:
            raise DataError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.channels, self.pad_mode, self.filter_size = channels, pad_mode, filter_size
        self.register_buffer("filt", binomial_filter(filter_size).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ShapeError(f"BlurPool takes a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
        c = x.shape[1]
        if self.channels is not None and c != self.channels:
            raise ShapeError(f"BlurPool was built for {self.channels} channels, got an input with {c}")
        k = self.filter_size
        lo, hi = (k - 1) // 2, k // 2
        if k > 1:
            mode = "constant" if self.pad_mode == "zeros" else self.pad_mode
            x = F.pad(x, (lo, hi, lo, hi), mode=mode)
        weight = self.filt.to(x.dtype).expand(c, 1, k, k)
        return F.conv2d(x, weight, stride=self.stride, groups=c)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, stride={self.stride}, filter_size={self.filter_size}, "
                f"pad_mode={self.pad_mode!r}")


class CircularMaxPool(nn.Module):
    """Stride-1 max pooling over ``kernel_size``×``kernel_size`` windows with circular padding (``k-1`` after):
    shift equivariant; followed by a stride-``k`` :class:`Subsample` it equals ``nn.MaxPool2d(k)`` on sizes that are
    multiples of ``k``."""

    def __init__(self, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = check_stride(kernel_size, "kernel_size")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if k == 1:
            return x
        return F.max_pool2d(F.pad(x, (0, k - 1, 0, k - 1), mode="circular"), k, stride=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


__all__ = ["APSDownsample", "BlurPool", "Subsample", "CircularMaxPool", "polyphase_components", "binomial_filter",
           "check_stride", "NORMS", "PAD_MODES"]
