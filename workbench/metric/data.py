"""Data sets of the metric lab: scikit-learn's real sets, digits-cnn penultimate features under a format, and a
synthetic set whose energy has a spurious local minimum.

* :func:`load_dataset`: ``"iris"``, ``"wine"``, ``"breast_cancer"``, ``"digits"`` (scikit-learn's bundled copies of
  the UCI sets; raw features, standardize per split: :func:`~workbench.metric.compare.compare_metrics` does) and
  ``"digits-cnn:<format>"`` (:func:`cnn_features`).
* :func:`cnn_features`: the 64 penultimate activations (the input of ``fc2``) of the bundled digits-cnn on its
  held-out test images, with the network's weights in a number format (``"dense"``, ``"int4"``, ``"binary"``, any
  name of ``workbench.list_formats()``): how much kNN accuracy a compressed feature extractor loses, and how much a
  learned metric wins back. The format is applied with ``workbench.apply`` inside ``workbench.formats.suspended``
  (the user's own formats come back exactly), the features read with ``workbench.models.capture.head_input``.
* :func:`spurious_minimum_data`: synthetic (seeded). Two classes in 2-D; feature 1 is weakly informative (class
  means ±1, unit noise), feature 2 is decisive but only at the right angle (class 0 in tight clusters at ±6, class
  1 at ±2). A one-dimensional map ``L = r(cos φ, sin φ)``: at φ = 0 (the identity's first row) the energy has a
  local minimum that gradient NCA deepens by stretching feature 1 until it overfits its nearest neighbours; any
  rotation towards feature 2 first mixes the clusters and raises the energy (a barrier) before φ = 90° classifies
  every sample. Triplet constraints ("a is nearer to its same-cluster partner than to its nearest other-class sample
  along feature 1") have the same two-basin landscape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.errors import DataError
from workbench.metric.energy import Constraints

__all__ = ["DATASETS", "load_dataset", "cnn_features", "spurious_minimum_data"]

DATASETS = ("iris", "wine", "breast_cancer", "digits")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a data set named in :data:`DATASETS` or ``"digits-cnn:<format>"`` (raw, not standardized)."""
    if not isinstance(name, str):
        raise DataError(f"a data set is named by a string; got {type(name).__name__}")
    if name.startswith("digits-cnn"):
        fmt = name.split(":", 1)[1] if ":" in name else "dense"
        return cnn_features(fmt=fmt)
    from sklearn import datasets

    loaders = {"iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}
    if name not in loaders:
        raise DataError(f"unknown data set {name!r}; accepted: {', '.join(DATASETS)}, 'digits-cnn:<format>'")
    X, y = loaders[name](return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def cnn_features(handle: Any = "digits-cnn", fmt: str | None = "dense", *, split: str = "test"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (input of the last linear layer) of a classification handle's images.

    ``fmt``: ``"dense"`` (no format: the float weights), a format applied to every eligible layer (any name of
    ``workbench.list_formats()``), or ``None``: the model as it is now, the user's formats included. For
    ``"dense"`` and a format the run happens inside ``workbench.formats.suspended(model)``: the user's formats are
    lifted for it and come back exactly (same objects, same weights) afterwards, also when the forward pass fails.
    The model's train/eval mode is left as it was. ``handle``: a ``ModelHandle`` or a spec for
    ``workbench.load_model``; ``split``: ``"test"`` (held-out images the network never trained on; default) or
    ``"train"``.
    """
    import torch

    import workbench
    from workbench.formats import apply, suspended
    from workbench.models.capture import head_input

    if split not in ("test", "train"):
        raise DataError(f"split must be 'test' or 'train', got {split!r}")
    if fmt is not None and not isinstance(fmt, str):
        raise DataError(f"fmt must be None (the model as it is), 'dense' or a format name, got {fmt!r}")
    h = workbench.load_model(handle) if isinstance(handle, str) else handle
    x, y = h.test_data() if split == "test" else h.train_data()
    model = h.model
    if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
        raise DataError(f"{h.name} has no linear layer whose input could serve as penultimate features")

    if fmt is None:
        feats = head_input(model, x)
    else:
        with suspended(model):
            if fmt != "dense":
                apply(model, fmt)
            feats = head_input(model, x)
    return feats.double().numpy(), np.asarray(y)


def spurious_minimum_data(n: int = 200, *, seed: int = 0, n_triplets: int = 100
                          ) -> tuple[np.ndarray, np.ndarray, Constraints]:
    """``(X, y, constraints)`` of the synthetic two-basin set described in the module doc (``n`` even)."""
    if n < 8 or n % 2:
        raise DataError(f"n must be an even number ≥ 8, got {n!r}")
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x1 = np.where(y == 0, -1.0, 1.0) + rng.normal(0.0, 1.0, n)
    centre = np.where(y == 0, rng.choice([-6.0, 6.0], n), rng.choice([-2.0, 2.0], n))
    x2 = centre + rng.normal(0.0, 0.05, n)
    X = np.c_[x1, x2]
    trip = []
    for a in rng.permutation(n)[:n_triplets]:
        same = np.flatnonzero((centre == centre[a]) & (np.arange(n) != a))
        other = np.flatnonzero(y != y[a])
        if len(same) == 0:
            continue
        b = same[np.argmax(np.abs(x1[same] - x1[a]))]  # same cluster, far along feature 1
        c = other[np.argmin(np.abs(x1[other] - x1[a]))]  # other class, nearest along feature 1
        trip.append((a, b, c))
    return X, y, Constraints(triplets=np.array(trip, dtype=np.int64))
