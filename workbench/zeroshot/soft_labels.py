"""Similarity-based soft labels: zero-shot learning as plain cross-entropy.

The idea: train an ordinary classifier with one output per class, seen *and*
unseen, by cross-entropy against soft targets. A seen example of class ``y`` keeps ``1 − m`` of its target on ``y``
and spreads the *unseen mass* ``m`` over the unseen classes in proportion to a softmax of their attribute
similarity to ``y``:

    t(y)_y = 1 − m,      t(y)_u = m · exp(s(y, u) / T) / Σ_{u' ∈ U} exp(s(y, u') / T)   for u ∈ U,
    t(y)_c = 0 for the other seen classes,

with ``s`` the cosine similarity of standardised attribute rows (:func:`~workbench.zeroshot.attributes.
attribute_similarity`) and ``T > 0`` a temperature (small T: the most similar unseen class takes nearly all of
``m``; large T: ``m`` is spread evenly). The unseen outputs thus learn from the seen images that resemble them in
attribute space (a 3 teaches the 8 output a little, a 1 teaches the 7 output), so the network can answer with a
class it never saw. At ``m = 0`` the target is one-hot and training is the usual supervised cross-entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import DataError
from workbench.zeroshot.attributes import attribute_similarity, check_attributes
from workbench.zeroshot.splits import make_split


def check_soft_label_params(temperature: float, unseen_mass: float) -> tuple[float, float]:
    """``(temperature, unseen_mass)`` as floats, or :class:`~workbench.errors.DataError` when temperature ≤ 0 (or not
    finite) or the unseen mass is outside [0, 1) (mass 1 would leave nothing on the true class)."""
    try:
        t, m = float(temperature), float(unseen_mass)
    except (TypeError, ValueError) as exc:
        raise DataError(f"temperature and unseen_mass must be numbers, got {temperature!r}, {unseen_mass!r}") from exc
    if not (np.isfinite(t) and t > 0):
        raise DataError(f"temperature must be a positive finite number (the softmax's scale), got {temperature!r}")
    if not (np.isfinite(m) and 0.0 <= m < 1.0):
        raise DataError(f"unseen_mass must be in [0, 1) (the share of each target moved to unseen classes; 1 would "
                        f"leave nothing on the true class), got {unseen_mass!r}")
    return t, m


def soft_label_matrix(attributes: Any, temperature: float, unseen_mass: float, *,
                      unseen: Any) -> np.ndarray:
    """The ``(C, C)`` float64 matrix whose row ``y`` is the soft target of a seen example of class ``y`` (rows of
    unseen classes are their one-hot rows: they have no training example). Every row sums to 1."""
    t, m = check_soft_label_params(temperature, unseen_mass)
    arr = check_attributes(attributes)
    split = make_split(unseen, arr.shape[0])
    sim = attribute_similarity(arr)
    u = np.array(split.unseen)
    logits = sim[:, u] / t
    logits -= logits.max(1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(1, keepdims=True)
    out = np.eye(arr.shape[0]) * (1.0 - m)
    out[:, u] += m * w
    out[u] = np.eye(arr.shape[0])[u]
    return out


def soft_labels(y: Any, attributes: Any, temperature: float = 1.0, unseen_mass: float = 0.2, *,
                unseen: Any) -> torch.Tensor:
    """Soft targets ``(n, C)`` (float32 tensor, rows sum to 1) for the seen-class labels ``y``.

    ``attributes``: the class-attribute matrix (``C`` rows); ``unseen``: a :class:`ZeroShotSplit` or the unseen
    class indices. Each row puts ``1 − unseen_mass`` on the true class and ``unseen_mass`` on the unseen classes in
    proportion to ``softmax(similarity(y, u) / temperature)``; at ``unseen_mass = 0`` the rows are one-hot.

    Raises :class:`~workbench.errors.DataError` when a label is an unseen class (those examples are not trained on)
    or out of range, plus the checks of the attributes, the split and the two parameters.
    """
    table = soft_label_matrix(attributes, temperature, unseen_mass, unseen=unseen)
    labels = _labels(y)
    n_classes = table.shape[0]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"labels must be class indices in 0..{n_classes - 1}, got values in "
                        f"[{labels.min()}, {labels.max()}]")
    split = make_split(unseen, n_classes)
    bad = np.intersect1d(labels, split.unseen)
    if bad.size:
        raise DataError(f"labels include unseen classes {bad.tolist()}: a zero-shot model is trained on seen classes "
                        f"{list(split.seen)} only; drop those examples first")
    return torch.from_numpy(table[labels].astype(np.float32))


def _labels(y: Any) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"y must be a 1-D sequence of integer class labels, got {arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64)


class SoftLabelLoss:
    """Cross-entropy against the soft target of each label: ``−Σ_c t(y)_c log softmax(z)_c``, averaged over the
    batch. A ``loss_fn`` for :func:`workbench.dynamics.train` (it receives logits and labels)."""

    __name__ = "soft_label_cross_entropy"

    def __init__(self, table: np.ndarray | torch.Tensor) -> None:
        self.table = torch.as_tensor(np.asarray(table), dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = self.table.to(logits.device)[labels]
        return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


__all__ = ["soft_labels", "soft_label_matrix", "check_soft_label_params", "SoftLabelLoss"]
