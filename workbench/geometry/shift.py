"""Shift consistency: does a classifier give the same answer when its input is shifted?

Following Zhang 2019 and Chaman & Dokmanić 2020, a model is evaluated on every test image under a set of shifts
``(dx, dy)``; ``mode="circular"`` rolls the image around (``torch.roll``: what APS networks are exactly invariant
to), ``mode="linear"`` moves it and fills the uncovered border with zeros (the digits have a 4-pixel zero border at
32×32, so small linear shifts lose no ink).

:func:`shift_consistency` returns one row per model:

* ``consistency``: the fraction of test images whose predicted class is the same under every shift of the set
  (hence for every pair of shifts);
* ``prob_change``: the mean, over images and shifts, of the total-variation distance ``½‖p(shift) − p(0)‖₁``
  between the class probabilities of the shifted and of the unshifted image (0 = identical, 1 = disjoint);
  ``max_prob_change`` its largest value;
* ``accuracy`` (unshifted), ``min_accuracy`` and ``mean_accuracy`` over the shifts.

``per_shift=True`` returns instead the per-shift table (``dx, dy, accuracy, agreement, prob_change, model, mode``;
``agreement`` = the fraction of images whose class under that shift is the unshifted one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import DataError, ShapeError

MODES = ("circular", "linear")
SUMMARY_COLUMNS = ["model", "mode", "n_shifts", "n_images", "accuracy", "consistency", "prob_change",
                   "max_prob_change", "min_accuracy", "mean_accuracy"]


def _check_shift(dx: int, dy: int, h: int, w: int) -> tuple[int, int]:
    for name, v, lim in (("dx", dx, w), ("dy", dy, h)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise DataError(f"{name} must be an integer number of pixels, got {type(v).__name__} {v!r}")
        if abs(int(v)) >= lim:
            raise ShapeError(f"shift {name}={v} is larger than the image ({h}×{w}): use |{name}| < {lim}")
    return int(dx), int(dy)


def shift_images(x: torch.Tensor, dx: int, dy: int, mode: str = "circular") -> torch.Tensor:
    """Images (N, C, H, W) shifted right by ``dx`` and down by ``dy`` pixels: rolled around (``"circular"``) or
    moved with zeros filling the uncovered border (``"linear"``). ``|dx| < W`` and ``|dy| < H``."""
    if mode not in MODES:
        raise DataError(f"mode must be one of {MODES}, got {mode!r}")
    if x.dim() != 4:
        raise ShapeError(f"shift_images takes a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    dx, dy = _check_shift(dx, dy, h, w)
    if mode == "circular":
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3)) if (dx or dy) else x
    out = torch.zeros_like(x)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, :, yd, xd] = x[:, :, ys, xs]
    return out


def shift_set(shifts: str | int | Sequence[tuple[int, int]], mode: str, height: int, width: int,
              max_shift: int | None = None, seed: int = 0) -> list[tuple[int, int]]:
    """The ``(dx, dy)`` shifts to test, the unshifted ``(0, 0)`` first.

    ``"all"``: circular, every ``dx < W``, ``dy < H``; linear, every shift with ``|dx|, |dy| ≤ max_shift``
    (default ``H // 8``, the zero border of the upsampled digits). An integer ``n``: ``(0, 0)`` and ``n − 1`` shifts
    drawn without replacement from that set (seeded). A sequence of pairs is taken as given.
    """
    if mode not in MODES:
        raise DataError(f"mode must be one of {MODES}, got {mode!r}")
    if max_shift is not None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise DataError(f"max_shift must be a non-negative integer, got {max_shift!r}")
        if max_shift >= min(height, width):
            raise ShapeError(f"max_shift={max_shift} is larger than the image ({height}×{width}): use at most "
                             f"{min(height, width) - 1}")
    if mode == "circular":
        m = max_shift
        full = [(dx, dy) for dy in range(height) for dx in range(width)] if m is None else \
            [(dx, dy) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    else:
        m = max(1, height // 8) if max_shift is None else max_shift
        full = [(dx, dy) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    full = [(0, 0)] + [s for s in full if s != (0, 0)]
    if isinstance(shifts, str):
        if shifts != "all":
            raise DataError(f"shifts must be 'all', a number of shifts, or a list of (dx, dy) pairs; got {shifts!r}")
        return full
    if isinstance(shifts, (int, np.integer)) and not isinstance(shifts, bool):
        n = int(shifts)
        if not 1 <= n <= len(full):
            raise DataError(f"shifts={n}: give between 1 and {len(full)} shifts for {mode} shifts of a "
                            f"{height}×{width} image (or 'all')")
        rng = np.random.default_rng(seed)
        pick = rng.choice(np.arange(1, len(full)), size=n - 1, replace=False) if n > 1 else []
        return [full[0]] + [full[i] for i in sorted(int(i) for i in pick)]
    try:
        pairs = [tuple(p) for p in shifts]  # type: ignore[union-attr]
    except TypeError:
        raise DataError(f"shifts must be 'all', a number of shifts, or a list of (dx, dy) pairs; got {shifts!r}")
    if not pairs or not all(len(p) == 2 for p in pairs):
        raise DataError(f"shifts must be a non-empty list of (dx, dy) pairs, got {shifts!r}")
    out = [_check_shift(dx, dy, height, width) for dx, dy in pairs]
    return [(0, 0)] + [s for s in out if s != (0, 0)]


def _model_and_data(handle) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor]:
    if isinstance(handle, str):
        import workbench

        handle = workbench.load_model(handle)
    if not all(hasattr(handle, a) for a in ("model", "test_data")):
        raise DataError(f"shift_consistency takes a classification ModelHandle (or a spec such as "
                        f"'digits32-cnn-aps'), got {type(handle).__name__}")
    x, y = handle.test_data()
    if x.dim() != 4:
        raise ShapeError(f"{handle.name}: shift consistency needs image inputs (N, C, H, W); its test data has "
                         f"shape {tuple(x.shape)}")
    return str(handle.name), handle.model, x, y


@torch.no_grad()
def shift_consistency(handle, shifts: str | int | Sequence[tuple[int, int]] = "all", mode: str = "circular", *,
                      max_shift: int | None = None, n_images: int | None = None, seed: int = 0,
                      batch_size: int = 1024, per_shift: bool = False) -> pd.DataFrame:
    """Shift consistency of ``handle``'s model on its test images (see the module doc): one row, or with
    ``per_shift=True`` one row per shift. ``n_images``: use the first ``n_images`` test images only."""
    name, model, x, y = _model_and_data(handle)
    if mode not in MODES:
        raise DataError(f"mode must be one of {MODES}, got {mode!r}")
    if n_images is not None:
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise DataError(f"n_images must be a positive integer or None, got {n_images!r}")
        x, y = x[:n_images], y[:n_images]
    h, w = x.shape[-2:]
    pairs = shift_set(shifts, mode, h, w, max_shift=max_shift, seed=seed)
    was = model.training
    model.eval()
    try:
        def probs_of(xs: torch.Tensor) -> torch.Tensor:
            out = [model(xs[i:i + batch_size]) for i in range(0, len(xs), batch_size)]
            return torch.softmax(torch.cat(out).double(), dim=1)

        p0 = probs_of(x)
        pred0 = p0.argmax(1)
        same = torch.ones(len(x), dtype=torch.bool)
        rows = []
        tv_sum, tv_max = 0.0, 0.0
        for dx, dy in pairs:
            p = p0 if (dx, dy) == (0, 0) else probs_of(shift_images(x, dx, dy, mode))
            pred = p.argmax(1)
            agree = pred == pred0
            same &= agree
            tv = 0.5 * (p - p0).abs().sum(1)
            tv_sum += float(tv.sum())
            tv_max = max(tv_max, float(tv.max()))
            rows.append({"dx": dx, "dy": dy, "accuracy": float((pred == y).double().mean()),
                         "agreement": float(agree.double().mean()), "prob_change": float(tv.mean())})
    finally:
        model.train(was)
    table = pd.DataFrame(rows, columns=["dx", "dy", "accuracy", "agreement", "prob_change"])
    summary = pd.DataFrame([{
        "model": name, "mode": mode, "n_shifts": len(pairs), "n_images": len(x),
        "accuracy": rows[0]["accuracy"], "consistency": float(same.double().mean()),
        "prob_change": tv_sum / (len(x) * len(pairs)), "max_prob_change": tv_max,
        "min_accuracy": float(table["accuracy"].min()), "mean_accuracy": float(table["accuracy"].mean()),
    }], columns=SUMMARY_COLUMNS)
    return table.assign(model=name, mode=mode) if per_shift else summary


def compare_shift_consistency(handles: Sequence, **kw) -> pd.DataFrame:
    """:func:`shift_consistency` of several handles (or specs), one row each (same shifts for all)."""
    return pd.concat([shift_consistency(h, **kw) for h in handles], ignore_index=True)


@torch.no_grad()
def shifted_probabilities(model: nn.Module, image: torch.Tensor, dx: int = 0, dy: int = 0,
                          mode: str = "circular") -> pd.DataFrame:
    """Class probabilities (``class, probability``) of ``model`` for one image (C, H, W) shifted by ``(dx, dy)``."""
    if image.dim() != 3:
        raise ShapeError(f"shifted_probabilities takes one image (C, H, W), got shape {tuple(image.shape)}")
    was = model.training
    model.eval()
    try:
        p = torch.softmax(model(shift_images(image[None], dx, dy, mode)).double(), dim=1)[0]
    finally:
        model.train(was)
    return pd.DataFrame({"class": np.arange(len(p)), "probability": p.numpy()})


def find_breaking_shift(model: nn.Module, x: torch.Tensor, mode: str = "circular") -> tuple[int, int, int] | None:
    """The first ``(image index, dx, dy)`` whose circular shift changes ``model``'s predicted class, or None when
    every shift of every image in ``x`` keeps it (an exhaustive search over all H·W shifts)."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            ref = model(x).argmax(1)
            for dx, dy in shift_set("all", mode, h, w):
                pred = model(shift_images(x, dx, dy, mode)).argmax(1)
                bad = (pred != ref).nonzero()
                if len(bad):
                    return int(bad[0, 0]), dx, dy
        finally:
            model.train(was)
    return None


__all__ = ["MODES", "SUMMARY_COLUMNS", "shift_images", "shift_set", "shift_consistency",
           "compare_shift_consistency", "shifted_probabilities", "find_breaking_shift"]
