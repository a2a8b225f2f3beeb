"""Batch augmentation for the digits (Hoffer, Ben-Nun, Hubara, Giladi, Hoefler & Soudry 2019, "Augment your batch:
better training with larger batches").

Batch augmentation builds each batch from ``B`` distinct samples, each repeated ``M`` times with *different* random
augmentations, so a step sees ``B·M`` inputs. For 8×8 digits the augmentation is a random shift of the image by
−1, 0 or +1 pixel along each axis (zero fill) plus Gaussian pixel noise, clamped to [0, 1]. Copies are tiled
(``x.repeat``) rather than interleaved, so the copies of one sample fall into different ghost batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.errors import ShapeError


def _as_images(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = tuple(x.shape)
    if x.dim() == 4:
        return x, shape
    if x.dim() == 3:
        return x.unsqueeze(1), shape
    if x.dim() == 2:
        side = int(round(math.sqrt(x.shape[1])))
        if side * side == x.shape[1]:
            return x.reshape(x.shape[0], 1, side, side), shape
    raise ShapeError(f"augmentation needs images (N, C, H, W) or flat square images (N, H·W), got shape {shape}")


def shift_and_noise(x: torch.Tensor, generator: torch.Generator | None = None, max_shift: int = 1,
                    noise: float = 0.05, clamp: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Each sample shifted by a random integer offset in [−max_shift, max_shift]² (zero fill), plus N(0, noise²).

    Accepts (N, C, H, W), (N, H, W) or flat square images (N, H·W) and returns the same shape.

    >>> x = torch.zeros(2, 1, 8, 8); x[:, 0, 3, 3] = 1
    >>> y = shift_and_noise(x, torch.Generator().manual_seed(0), noise=0.0)
    >>> [float(v) for v in y.sum(dim=(1, 2, 3))]
    [1.0, 1.0]
    """
    img, shape = _as_images(x)
    n, _, h, w = img.shape
    s = int(max_shift)
    out = img
    if s > 0:
        padded = F.pad(img, (s, s, s, s))
        offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
        out = torch.empty_like(img)
        for dy in range(2 * s + 1):
            for dx in range(2 * s + 1):
                sel = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
                if sel.any():
                    out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator, dtype=out.dtype)
    if clamp is not None:
        out = out.clamp(*clamp)
    return out.reshape(shape)


def batch_augment(x: torch.Tensor, y: torch.Tensor, m: int, generator: torch.Generator | None = None,
                  augment: bool = True, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``(x, y)`` tiled ``m`` times, every copy augmented independently (when ``augment``)."""
    if m > 1:
        x = x.repeat(m, *([1] * (x.dim() - 1)))
        y = y.repeat(m)
    if augment:
        x = shift_and_noise(x, generator, **kwargs)
    return x, y


__all__ = ["shift_and_noise", "batch_augment"]
