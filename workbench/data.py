"""Data the workbench ships or builds offline: scikit-learn's digits and a sentence set for MiniLM.

Digits are the real UCI handwritten digits (1,797 images of 8×8 pixels, values 0..16) that scikit-learn ships.
The split is fixed (stratified, seed 0, 20 % test) so every checkpoint, notebook and report sees the same
held-out images. Pixels are scaled to [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPLIT_SEED = 0
TEST_FRACTION = 0.2


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


def digits_split(images: bool = False) -> Split:
    """The fixed digits split: 1,437 training and 360 test samples.

    >>> s = digits_split()
    >>> tuple(s.x_train.shape), tuple(s.x_test.shape)
    ((1437, 64), (360, 64))
    """
    xtr, xte, ytr, yte = _digits_arrays()
    s = Split(torch.from_numpy(xtr.copy()), torch.from_numpy(ytr.copy()), torch.from_numpy(xte.copy()),
              torch.from_numpy(yte.copy()))
    return s.images() if images else s


def sentences() -> list[str]:
    """The sentence set shipped in ``data/sentences.json`` used to evaluate sentence-embedding models."""
    return list(json.loads((DATA_DIR / "sentences.json").read_text())["sentences"])


__all__ = ["Split", "digits_split", "sentences", "DATA_DIR"]
