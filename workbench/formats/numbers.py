"""Rounding to number formats, with scales, and the 2-D layout N:M patterns use.

Scaling (Micikevicius et al. 2022 for FP8; symmetric integer quantization as in Hubara et al. 2020): a scale
``s = amax / fmax`` maps the tensor's largest magnitude onto the format's largest finite value; the value is
``q(x) = s · round(x / s)`` where ``round`` is the format's own rounding:

- FP8: torch's cast to ``float8_e4m3fn`` / ``float8_e5m2`` (round to nearest even; E4M3 saturates to ±448,
  E5M2 overflows to ±inf), then back to float32.
- intB: round half to even, clamped to ±(2^(B-1) − 1) (symmetric; the code −2^(B-1) is unused).
- binary: sign with +1 at 0; the scale is mean|x| (XNOR-Net, Rastegari et al. 2016) rather than amax.

``granularity`` is ``"channel"`` (one scale per output channel, dim 0), ``"tensor"`` (one scale) or ``None``
(no scale: the raw rounding of the unscaled grid, for FP8 exactly torch's cast).
"""

from __future__ import annotations

from typing import Literal

import torch

from workbench.errors import FormatError, NonFiniteError, ShapeError
from workbench.formats.spec import Format, Number, parse_format

Granularity = Literal["channel", "tensor"] | None
GRANULARITIES: tuple[Granularity, ...] = ("channel", "tensor", None)


def to_matrix(w: torch.Tensor) -> torch.Tensor:
    """The 2-D view (out × in) in which N:M groups run along the input dimension.

    Linear weights (out, in) are returned as they are. Convolution weights (out, in, *kernel) are permuted to
    (out, *kernel, in) and flattened, so input channels are innermost and every group of M consecutive columns
    lies inside one kernel position (NVIDIA ASP's rule for convolutions).
    """
    if w.dim() < 2:
        raise ShapeError(f"N:M patterns need a weight with at least 2 dimensions, got shape {tuple(w.shape)}")
    if w.dim() == 2:
        return w
    perm = (0, *range(2, w.dim()), 1)
    return w.permute(perm).reshape(w.shape[0], -1)


def from_matrix(mat: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`to_matrix` for a weight of ``shape``."""
    shape = tuple(shape)
    if len(shape) == 2:
        return mat.reshape(shape)
    out, cin, *kernel = shape
    perm_shape = (out, *kernel, cin)
    inv = (0, len(shape) - 1, *range(1, len(shape) - 1))
    return mat.reshape(perm_shape).permute(inv).contiguous()


def input_dim(w: torch.Tensor) -> int:
    """Size of the input dimension along which N:M groups run (input channels for convolutions)."""
    return int(w.shape[1])


def _amax(x: torch.Tensor, granularity: Granularity) -> torch.Tensor:
    if granularity == "channel":
        if x.dim() == 0:
            return x.abs().reshape(())
        return x.abs().reshape(x.shape[0], -1).amax(dim=1).reshape(-1, *([1] * (x.dim() - 1)))
    return x.abs().amax()


def compute_scale(x: torch.Tensor, number: Number, granularity: Granularity = "channel") -> torch.Tensor | None:
    """The dequantization scale of ``x`` (float32, broadcastable to ``x``), or None for ``granularity=None``.

    amax / fmax for FP8 and integers, mean|x| for binary; a scale of 0 (an all-zero channel) is replaced by 1.
    """
    if granularity not in GRANULARITIES:
        raise FormatError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity is None:
        return None
    xf = x.detach().float()
    if number.kind == "binary":
        if granularity == "channel" and xf.dim() > 0:
            s = xf.abs().reshape(xf.shape[0], -1).mean(dim=1).reshape(-1, *([1] * (xf.dim() - 1)))
        else:
            s = xf.abs().mean()
    else:
        s = _amax(xf, granularity) / number.fmax
    return torch.where(s > 0, s, torch.ones_like(s))


def round_unscaled(x: torch.Tensor, number: Number) -> torch.Tensor:
    """Round float32 ``x`` onto the format's unscaled grid (no scale), returning float32."""
    if number.kind == "float":
        return x.to(number.dtype).to(torch.float32)
    if number.kind == "int":
        return torch.clamp(torch.round(x), -number.fmax, number.fmax)
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def round_number(x: torch.Tensor, number: Number, scale: torch.Tensor | None) -> torch.Tensor:
    """``scale · round(x / scale)`` in float32 (``scale=None``: the raw rounding). NaN stays NaN."""
    xf = x.float()
    if scale is None:
        return round_unscaled(xf, number)
    return round_unscaled(xf / scale, number) * scale


def quantize(x: torch.Tensor, fmt: "str | Format", granularity: Granularity = "channel") -> torch.Tensor:
    """Apply a format to a tensor: the N:M mask (weights with >= 2 dims) then the number format's rounding.

    Returns a tensor of the same shape and dtype. With ``granularity=None`` FP8 formats equal torch's own cast
    (NaN and inf go through the cast as torch's cast takes them). With a scale (``"channel"``, ``"tensor"``) a
    tensor holding NaN or inf is refused with a NonFiniteError: its amax would make the scale inf or NaN and turn
    the finite values beside it into NaN.

    >>> quantize(torch.tensor([0.3, -1.7, 2.5]), "int8", granularity=None).tolist()
    [0.0, -2.0, 2.0]
    >>> quantize(torch.tensor([[1., -4., 3., 2.]]), "2:4").tolist()
    [[0.0, -4.0, 3.0, 0.0]]
    """
    f = parse_format(fmt)
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"quantize needs a torch.Tensor `x`, got {type(x).__name__}")
    if granularity not in GRANULARITIES:
        raise FormatError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if x.numel() == 0:
        return x.clone()
    if (f.number is not None and granularity is not None and x.is_floating_point()
            and not bool(torch.isfinite(x).all())):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(
            f"quantize: tensor `x` of shape {tuple(x.shape)} holds {bad} NaN/inf value(s); a {granularity!r} scale "
            f"(amax / fmax) would be inf or NaN and turn its finite values into NaN. Pass a finite tensor, or "
            f"granularity=None for the raw rounding of {f.name!r}")
    out = x
    if f.sparsity is not None:
        from workbench.formats.masks import weight_mask

        out = out * weight_mask(out, f.sparsity).to(out.dtype)
    if f.number is not None:
        scale = compute_scale(out, f.number, granularity)
        out = round_number(out, f.number, scale).to(x.dtype)
    return out


def representable_values(fmt: "str | Format") -> torch.Tensor:
    """All finite values of a number format's unscaled grid, sorted, float64 (for plots and references).

    >>> representable_values("int4").tolist()
    [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    >>> len(representable_values("fp8_e4m3"))  # 256 codes less 2 NaNs, +0 and -0 counted once
    253
    """
    f = parse_format(fmt)
    if f.number is None:
        raise FormatError(f"format {f.name!r} has no number format, so no grid of representable values")
    n = f.number
    if n.kind == "float":
        codes = torch.arange(256, dtype=torch.uint8).view(n.dtype).to(torch.float64)
        return torch.unique(codes[torch.isfinite(codes)])
    if n.kind == "int":
        return torch.arange(-n.fmax, n.fmax + 1, dtype=torch.float64)
    return torch.tensor([-1.0, 1.0], dtype=torch.float64)


__all__ = [
    "Granularity",
    "to_matrix",
    "from_matrix",
    "input_dim",
    "compute_scale",
    "round_unscaled",
    "round_number",
    "quantize",
    "representable_values",
]
