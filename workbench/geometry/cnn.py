"""Small digits CNNs whose only difference is how they downsample, and the surgery that swaps it.

:func:`make_digits_cnn` builds ``conv(3×3) · BN · ReLU · down`` three times, then global average pooling and a
linear classifier. Every convolution pads circularly and the head pools globally, so the only thing that can break
shift invariance is the downsampling ``down``:

* ``"max"``: ``nn.MaxPool2d(2)`` (the usual baseline);
* ``"stride"``: :class:`~workbench.geometry.layers.Subsample` (what a stride-2 convolution does);
* ``"blur"``: :class:`~workbench.geometry.layers.CircularMaxPool` then :class:`~workbench.geometry.layers.BlurPool`
  (Zhang 2019's MaxBlurPool);
* ``"aps"``: :class:`~workbench.geometry.layers.CircularMaxPool` then
  :class:`~workbench.geometry.layers.APSDownsample` (Chaman & Dokmanić 2020's APS with max pooling).

The network has a total stride of 8, so an input must be at least 8×8, and for ``"aps"`` a multiple of 8.

>>> import torch
>>> m = make_digits_cnn("aps", size=32).eval()
>>> x = torch.rand(1, 1, 32, 32)
>>> torch.equal(m(x).argmax(1), m(torch.roll(x, (3, 5), (2, 3))).argmax(1))
True
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from workbench.errors import DataError, LayerError, ShapeError
from workbench.geometry.layers import APSDownsample, BlurPool, CircularMaxPool, Subsample
from workbench.models.capture import capture

POOLS = ("max", "stride", "blur", "aps")
SWAP_KINDS = ("stride", "blur", "aps")
DEFAULT_CHANNELS = (8, 16, 32)
N_CLASSES = 10


def _down(pool: str, channels: int, norm: str = "l2") -> nn.Module:
    if pool == "max":
        return nn.MaxPool2d(2)
    if pool == "stride":
        return Subsample(2)
    if pool == "blur":
        return nn.Sequential(CircularMaxPool(2), BlurPool(channels, stride=2))
    if pool == "aps":
        return nn.Sequential(CircularMaxPool(2), APSDownsample(2, norm=norm))
    raise DataError(f"pool must be one of {POOLS}, got {pool!r}")


class GeometryCNN(nn.Module):
    """Three circular conv blocks with a downsampling each, global average pooling, a linear head (see module doc).

    Layer names: ``conv1..3``, ``bn1..3``, ``down1..3``, ``fc``. ``input_shape`` is ``(1, size, size)``: the size
    the model is meant for; it runs on any size the downsampling allows (global pooling).
    """

    def __init__(self, pool: str = "max", size: int = 32, channels: tuple[int, int, int] = DEFAULT_CHANNELS,
                 norm: str = "l2") -> None:
        super().__init__()
        if pool not in POOLS:
            raise DataError(f"pool must be one of {POOLS}, got {pool!r}")
        if (not isinstance(channels, (tuple, list)) or len(channels) != 3
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels)):
            raise DataError(f"channels must be three positive integers, got {channels!r}")
        self.pool_kind, self.norm = pool, norm
        self.input_shape = (1, int(size), int(size))
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, padding_mode="circular")
        self.bn1 = nn.BatchNorm2d(c1)
        self.down1 = _down(pool, c1, norm)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, padding_mode="circular")
        self.bn2 = nn.BatchNorm2d(c2)
        self.down2 = _down(pool, c2, norm)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, padding_mode="circular")
        self.bn3 = nn.BatchNorm2d(c3)
        self.down3 = _down(pool, c3, norm)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, N_CLASSES)
        self.act = nn.ReLU()
        check_input_size(self, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down1(self.act(self.bn1(self.conv1(x))))
        x = self.down2(self.act(self.bn2(self.conv2(x))))
        x = self.down3(self.act(self.bn3(self.conv3(x))))
        return self.fc(self.gap(x).flatten(1))


def make_digits_cnn(pool: str = "max", size: int = 32, channels: tuple[int, int, int] = DEFAULT_CHANNELS,
                    norm: str = "l2", seed: int | None = None) -> GeometryCNN:
    """A :class:`GeometryCNN` for ``size``×``size`` digits downsampling by ``pool`` (``"max"``, ``"stride"``,
    ``"blur"``, ``"aps"``); ``norm`` is APS's norm; ``seed`` fixes the initialization (global RNG untouched)."""
    if seed is None:
        return GeometryCNN(pool, size, channels, norm)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return GeometryCNN(pool, size, channels, norm)


# -- the bundled 32×32 models (zoo architectures: constructible without arguments) -----------------------------
class Digits32CNNMax(GeometryCNN):
    """The bundled ``digits32-cnn-max`` architecture: :class:`GeometryCNN` with max pooling on 32×32 digits."""

    def __init__(self) -> None:
        super().__init__("max", 32)


class Digits32CNNBlur(GeometryCNN):
    """The bundled ``digits32-cnn-blur`` architecture: :class:`GeometryCNN` with MaxBlurPool on 32×32 digits."""

    def __init__(self) -> None:
        super().__init__("blur", 32)


class Digits32CNNAPS(GeometryCNN):
    """The bundled ``digits32-cnn-aps`` architecture: :class:`GeometryCNN` with APS on 32×32 digits."""

    def __init__(self) -> None:
        super().__init__("aps", 32)


# -- structure: downsampling layers, total stride, receptive field, FLOPs --------------------------------------
def _stride_of(m: nn.Module) -> int:
    s = getattr(m, "stride", 1)
    s = s[0] if isinstance(s, (tuple, list)) else s
    return int(s) if s is not None else int(getattr(m, "kernel_size", 1))


def downsampling_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules of ``model`` that subsample (name -> module): max/avg pools and convolutions with stride > 1,
    :class:`Subsample`, :class:`BlurPool`, :class:`APSDownsample`. Functional calls inside ``forward`` are
    invisible to this walk."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, (Subsample, BlurPool, APSDownsample)) and m.stride > 1:
            out[name] = m
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Conv2d)) and _stride_of(m) > 1:
            out[name] = m
    return out


def total_stride(model: nn.Module) -> int:
    """The product of the strides of :func:`downsampling_layers` (8 for :class:`GeometryCNN`)."""
    s = 1
    for m in downsampling_layers(model).values():
        s *= _stride_of(m)
    return s


def receptive_field(model: nn.Module) -> int:
    """The side of the theoretical receptive field of one output pixel before global pooling, walking the modules in
    registration order (convolutions, pools, blur and APS; exact for sequential models like :class:`GeometryCNN`):
    ``r += (k - 1) · j; j *= s`` with ``j`` the product of earlier strides."""
    r, j = 1, 1
    for m in model.modules():
        k = s = None
        if isinstance(m, nn.Conv2d) or isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k = m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size
            s = _stride_of(m)
        elif isinstance(m, CircularMaxPool):
            k, s = m.kernel_size, 1
        elif isinstance(m, BlurPool):
            k, s = m.filter_size, m.stride
        elif isinstance(m, (APSDownsample, Subsample)):
            k, s = 1, m.stride
        if k is not None:
            r += (int(k) - 1) * j
            j *= int(s)
    return r


def min_input_size(model: nn.Module) -> int:
    """The smallest input side the model takes: its total stride (so the last map keeps at least one pixel)."""
    return total_stride(model)


def check_input_size(model: nn.Module, size: object, what: str = "size") -> int:
    """``size`` if ``model`` can take ``size``×``size`` inputs; otherwise a :class:`~workbench.errors.ShapeError`
    naming the minimum (the total stride; the receptive field is said too) and, for APS, the multiples allowed."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise DataError(f"{what} must be an integer number of pixels, got {type(size).__name__} {size!r}")
    ts, rf = total_stride(model), receptive_field(model)
    if size < ts:
        raise ShapeError(f"{what}={size} is too small for this network: its downsampling has a total stride of {ts} "
                         f"(receptive field {rf}×{rf} pixels), so inputs must be at least {ts}×{ts}")
    aps = [n for n, m in downsampling_layers(model).items() if isinstance(m, APSDownsample)]
    if aps and size % ts:
        lo, hi = size - size % ts, size - size % ts + ts
        raise ShapeError(f"{what}={size}: a network with adaptive polyphase sampling ({', '.join(aps)}) needs a "
                         f"multiple of its total stride {ts}; use {lo if lo >= ts else hi} or {hi}, or pad the input")
    return size


@torch.no_grad()
def flops_per_image(model: nn.Module, size: int, channels: int = 1) -> int:
    """Floating-point operations of one ``channels``×``size``×``size`` forward pass, counting multiply-adds of
    convolutions (blur filters included) and linear layers as 2 FLOPs each (pooling, BN, ReLU not counted).

    The output shape of each counted layer comes from one forward pass of a zero image through
    :func:`workbench.models.capture.capture`: a convolution costs ``2 · out.numel() · Cin/groups · kh · kw``, a blur
    filter ``2 · out.numel() · k²``, a linear layer ``2 · out.numel() · in_features``."""
    check_input_size(model, size)
    per_output = {}  # name -> multiply-adds per output element
    layers = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            per_output[name] = m.weight[0].numel()  # Cin/groups · kh · kw
        elif isinstance(m, nn.Linear):
            per_output[name] = m.in_features
        elif isinstance(m, BlurPool):
            per_output[name] = m.filter_size ** 2
        else:
            continue
        layers[name] = m
    if not layers:
        return 0
    was = model.training
    model.eval()
    try:
        p = next(model.parameters())
        got = capture(model, layers, torch.zeros(1, channels, size, size, dtype=p.dtype, device=p.device),
                      keep="outputs")
    finally:
        model.train(was)
    return int(sum(2 * y.numel() * per_output[name] for name, ys in got.outputs.items() for y in ys))


# -- surgery ---------------------------------------------------------------------------------------------------
def _subsampler(kind: str, stride: int, channels: int | None, norm: str) -> nn.Module:
    if kind == "aps":
        return APSDownsample(stride, norm=norm)
    if kind == "blur":
        return BlurPool(channels, stride=stride)
    return Subsample(stride)


def _channels_before(model: nn.Module, target: str) -> int | None:
    last = None
    for name, m in model.named_modules():
        if name == target:
            return last
        if isinstance(m, nn.Conv2d):
            last = m.out_channels
        elif isinstance(m, nn.BatchNorm2d):
            last = m.num_features
    return last


def _replacement(name: str, m: nn.Module, kind: str, channels: int | None, norm: str) -> nn.Module:
    if isinstance(m, (Subsample, BlurPool, APSDownsample)):
        return _subsampler(kind, m.stride, channels if channels is not None else getattr(m, "channels", None), norm)
    if isinstance(m, nn.Conv2d):
        conv = copy.deepcopy(m)
        conv.stride = (1, 1)
        out_ch = conv.out_channels
        return nn.Sequential(conv, _subsampler(kind, _stride_of(m), out_ch, norm))
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = m.kernel_size, m.stride
        k = k[0] if isinstance(k, tuple) else k
        s = s[0] if isinstance(s, tuple) else s
        pad = m.padding[0] if isinstance(m.padding, tuple) else m.padding
        if k != s or pad != 0 or getattr(m, "ceil_mode", False) or getattr(m, "dilation", 1) not in (1, (1, 1)):
            raise LayerError(f"cannot swap {name} = {m}: only pools with kernel_size == stride, no padding, no "
                             "dilation and ceil_mode=False are rewritten (as a stride-1 pool + subsampling)")
        if isinstance(m, nn.MaxPool2d):
            dense: nn.Module = CircularMaxPool(k)
        else:
            raise LayerError(f"cannot swap {name} = {m}: average pools are not rewritten (use a BlurPool, which is "
                             "already a low-pass + subsampling)")
        return nn.Sequential(dense, _subsampler(kind, s, channels, norm))
    raise LayerError(f"{name} ({type(m).__name__}) is not a downsampling layer this swap knows")


def swap_downsampling(model: nn.Module, kind: str = "aps", *, circular: bool = True, norm: str = "l2") -> nn.Module:
    """A copy of ``model`` whose every subsampling is replaced by ``kind`` (``"aps"``, ``"blur"`` or ``"stride"``);
    the weights are kept and ``model`` is not changed.

    * ``MaxPool2d(k)`` → ``CircularMaxPool(k)`` + the new subsampling (with ``"stride"`` this is the same function
      on sizes that are multiples of ``k``);
    * a convolution with stride ``s`` → the same convolution at stride 1 + the new subsampling;
    * :class:`Subsample`, :class:`BlurPool`, :class:`APSDownsample` → the new subsampling at the same stride.

    ``circular=True`` also switches every padded ``Conv2d`` to circular padding: exact invariance needs every layer
    circular, and global pooling at the end (a model that flattens a feature map into a linear layer, like
    ``digits-cnn``, stays shift *sensitive* whatever its downsampling). Raises
    :class:`~workbench.errors.LayerError` when the model has no downsampling module to swap (functional pooling in
    ``forward`` cannot be seen) or one that cannot be rewritten (a padded or overlapping pool).
    """
    if kind not in SWAP_KINDS:
        raise DataError(f"kind must be one of {SWAP_KINDS}, got {kind!r}")
    if not isinstance(model, nn.Module):
        raise DataError(f"swap_downsampling takes an nn.Module, got {type(model).__name__}")
    found = downsampling_layers(model)
    if not found:
        raise LayerError(f"{type(model).__name__} has no downsampling layer to swap (no pool or convolution with "
                         "stride > 1, no Subsample/BlurPool/APSDownsample module; pooling done with functional "
                         "calls inside forward cannot be swapped)")
    # the outermost downsampling modules only (a Sequential already holding one is rewritten as a whole)
    plans = {}
    for name, m in found.items():
        plans[name] = _replacement(name, m, kind, _channels_before(model, name), norm)  # raises before any change
    new = copy.deepcopy(model)
    for name, rep in plans.items():
        parent_name, _, attr = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        setattr(parent, attr, rep)
    if circular:
        for m in new.modules():
            if isinstance(m, nn.Conv2d) and any(p > 0 for p in (m.padding if isinstance(m.padding, tuple) else ())):
                m.padding_mode = "circular"
    if isinstance(new, GeometryCNN):
        new.pool_kind = {"aps": "aps", "blur": "blur", "stride": "stride"}[kind]
    return new


__all__ = ["POOLS", "SWAP_KINDS", "GeometryCNN", "make_digits_cnn", "Digits32CNNMax", "Digits32CNNBlur",
           "Digits32CNNAPS", "downsampling_layers", "total_stride", "receptive_field", "min_input_size",
           "check_input_size", "flops_per_image", "swap_downsampling"]
