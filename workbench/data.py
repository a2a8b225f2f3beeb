"""Data the workbench ships or builds offline: scikit-learn's digits and a sentence set for MiniLM.

Digits are the real UCI handwritten digits (1,797 images of 8×8 pixels, values 0..16) that scikit-learn ships.
The split is fixed (stratified, seed 0, 20 % test) so every checkpoint, notebook and report sees the same
held-out images. Pixels are scaled to [0, 1].

Shipped files (the bundled checkpoints, ``checkpoints.json``, ``sentences.json``) live in the repository's top-level
``data/`` folder. :func:`data_path` finds them in this order, the first folder holding the file winning:

1. the folder named by the environment variable ``WORKBENCH_DATA``, when set;
2. the repository's ``data/`` (a source checkout, or an editable install);
3. ``workbench/_data`` inside the installed package, where the wheel build (``setup.py``'s ``build_py``) copies
   ``data/``.

A file in none of them raises :class:`~workbench.errors.DataError` listing every folder looked in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from workbench.errors import DataError

DATA_ENV = "WORKBENCH_DATA"
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "_data"
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def _searched() -> list[tuple[str, Path]]:
    env = os.environ.get(DATA_ENV, "")
    dirs = [(f"${DATA_ENV}", Path(env).expanduser())] if env.strip() else []
    return dirs + [("the repository's data/", REPO_DATA_DIR), ("the installed package data", PACKAGE_DATA_DIR)]


def data_dirs() -> list[Path]:
    """The folders searched for shipped files, in order: ``$WORKBENCH_DATA`` (when set), the repository's
    ``data/``, the installed package's ``workbench/_data``."""
    return [d for _, d in _searched()]


def data_path(name: str) -> Path:
    """The path of the shipped file ``name`` in the first of :func:`data_dirs` that holds it.

    >>> data_path("sentences.json").name
    'sentences.json'
    """
    searched = _searched()
    for _, d in searched:
        if (d / name).is_file():
            return d / name
    where = "; ".join(f"{d} ({label})" for label, d in searched)
    raise DataError(
        f"shipped data file {name!r} not found; looked in: {where}. Set {DATA_ENV} to a folder holding it (a copy "
        "of the repository's data/), or reinstall the workbench wheel"
    )


def data_dir(name: str = "checkpoints.json") -> Path:
    """The first of :func:`data_dirs` holding ``name``: the folder the bundled models are read from, so a checkpoint
    and the record of its sha256 always come from the same place."""
    return data_path(name).parent


DATA_DIR = REPO_DATA_DIR  # the repository's data/: where scripts/train_digits.py writes


@dataclass(frozen=True)
class Split:
    """A fixed train/test split of tensors. ``x`` are float32 in [0, 1], ``y`` int64 class labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def images(self) -> "Split":
        """The same split with inputs shaped as 1×8×8 images (for CNNs)."""
        return Split(
            self.x_train.reshape(-1, 1, 8, 8),
            self.y_train,
            self.x_test.reshape(-1, 1, 8, 8),
            self.y_test,
        )


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return tuple(  # type: ignore[return-value]
        train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    )


def upsample_digits(x: torch.Tensor, size: int) -> torch.Tensor:
    """8×8 digit images (N, 1, 8, 8) upsampled to ``size``×``size``: bilinear resize of the digit to ``3·size/4``
    pixels (antialiased, ``align_corners=False``), centred on a zero border of ``size/8`` pixels each side, so that
    shifts have room. ``size`` must be a positive multiple of 8 (32 → a 24×24 digit with a 4-pixel border)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
        raise DataError(f"digits size must be a positive multiple of 8 (8, 16, 24, 32, ...), got {size!r}")
    if size == 8:
        return x
    inner, border = 3 * size // 4, size // 8
    up = torch.nn.functional.interpolate(x, size=(inner, inner), mode="bilinear", align_corners=False,
                                         antialias=True)
    return torch.nn.functional.pad(up, (border, border, border, border)).contiguous()


def digits_split(images: bool = False, size: int = 8) -> Split:
    """The fixed digits split: 1,437 training and 360 test samples. ``size`` other than 8 gives images upsampled
    by :func:`upsample_digits` (the geometry lab's 32×32 digits: ``digits_split(size=32)``).

    >>> s = digits_split()
    >>> tuple(s.x_train.shape), tuple(s.x_test.shape)
    ((1437, 64), (360, 64))
    """
    xtr, xte, ytr, yte = _digits_arrays()
    s = Split(torch.from_numpy(xtr.copy()), torch.from_numpy(ytr.copy()), torch.from_numpy(xte.copy()),
              torch.from_numpy(yte.copy()))
    if size != 8:
        xtr_up, xte_up = _upsampled(size)
        return Split(xtr_up.clone(), s.y_train, xte_up.clone(), s.y_test)
    return s.images() if images else s


@lru_cache(maxsize=4)
def _upsampled(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    xtr, xte, _, _ = _digits_arrays()
    as_images = [torch.from_numpy(a.copy()).reshape(-1, 1, 8, 8) for a in (xtr, xte)]
    return upsample_digits(as_images[0], size), upsample_digits(as_images[1], size)


def sentences() -> list[str]:
    """The sentence set shipped in ``data/sentences.json`` used to evaluate sentence-embedding models."""
    return list(json.loads(data_path("sentences.json").read_text())["sentences"])


__all__ = ["Split", "digits_split", "upsample_digits", "sentences", "data_path", "data_dir", "data_dirs", "DATA_ENV", "DATA_DIR"]
