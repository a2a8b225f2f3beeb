"""Static importance scores from a proxy fitted before training.

:func:`static_scores` fits a multinomial logistic regression (scikit-learn) on the standardised, flattened inputs
and scores every training sample by its **out-of-fold** cross-entropy (``cross_val_predict``, so a sample's score
comes from a model that did not see it): hard, atypical or mislabelled samples score high. The scores are computed
once and never change, which is what makes a static sampler cheap and also what limits it: it cannot follow what
the network has already learnt.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.checks import integer
from workbench.errors import DataError


def static_scores(x: Any, y: Any, *, folds: int = 5, seed: int = 0, C: float = 1.0) -> np.ndarray:
    """Out-of-fold cross-entropy of a logistic-regression proxy per sample, ``(n,)`` float64 (≥ 0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xa = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64).reshape(len(x), -1)
    ya = np.asarray(y.numpy() if hasattr(y, "numpy") else y).astype(int).reshape(-1)
    if len(xa) != len(ya):
        raise DataError(f"static_scores: {len(xa)} inputs but {len(ya)} labels")
    folds = integer("folds", folds, low=2, where="static_scores")
    smallest = int(np.bincount(ya)[np.unique(ya)].min()) if len(ya) else 0
    if smallest < folds:
        raise DataError(f"static_scores: folds={folds} needs at least {folds} samples of every class; the smallest "
                        f"class has {smallest}")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
    proba = cross_val_predict(model, xa, ya, cv=cv, method="predict_proba")
    classes = np.unique(ya)
    col = np.searchsorted(classes, ya)
    return -np.log(np.clip(proba[np.arange(len(ya)), col], 1e-12, 1.0))


__all__ = ["static_scores"]
