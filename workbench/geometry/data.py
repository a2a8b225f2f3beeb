"""The geometry lab's data: scikit-learn's digits upsampled to 32×32 (:func:`workbench.data.upsample_digits`: a
24×24 digit on a 4-pixel zero border), resized to other sizes for the Mix & Match experiments, and handles that pair a
:class:`~workbench.geometry.cnn.GeometryCNN` with them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.data import digits_split
from workbench.errors import DataError, ShapeError

BASE_SIZE = 32


def digits32(size: int = BASE_SIZE) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_test, y_test))``: the fixed digits split as 1×32×32 images, resized to
    ``size``×``size`` by :func:`resize_images` when ``size`` is not 32."""
    s = digits_split(size=BASE_SIZE)
    return (resize_images(s.x_train, size), s.y_train), (resize_images(s.x_test, size), s.y_test)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (N, C, H, W) resized to ``size``×``size`` (bilinear, antialiased, ``align_corners=False``): the same
    scene at another resolution. Unchanged (the same tensor) when already that size."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(f"size must be a positive integer number of pixels, got {size!r}")
    if x.dim() != 4:
        raise ShapeError(f"resize_images takes a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def geometry_handle(model: nn.Module, name: str | None = None, size: int = BASE_SIZE, data=None):
    """A :class:`~workbench.models.ClassificationHandle` of ``model`` on the digits at ``size``×``size``, or on
    ``data = ((x_train, y_train), (x_test, y_test))`` (image batches N×C×H×W and int labels)."""
    from workbench.models.handle import ClassificationHandle

    if data is None:
        train, test = digits32(size)
        notes = f"digits upsampled to 32×32, resized to {size}×{size}"
    else:
        try:
            (xtr, ytr), (xte, yte) = data
        except (TypeError, ValueError):
            raise DataError("data must be ((x_train, y_train), (x_test, y_test))") from None
        for x, y, what in ((xtr, ytr, "training"), (xte, yte, "test")):
            if not isinstance(x, torch.Tensor) or x.dim() != 4 or len(x) != len(y) or len(x) == 0:
                raise DataError(f"data: the {what} images must be a non-empty N×C×H×W tensor with one label each")
        train, test, notes = (xtr, ytr), (xte, yte), "user data"
    return ClassificationHandle(name or type(model).__name__, model, train=train, test=test, notes=notes)


__all__ = ["BASE_SIZE", "digits32", "resize_images", "geometry_handle"]
