"""A 2-D picture of data under a learned map: the first two rows of ``L`` or the top-2 principal directions of the
mapped data, as a tidy DataFrame (``x, y, label``) for :mod:`workbench.viz.metric`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError

__all__ = ["embedding_2d"]


def embedding_2d(X: Any, y: Any, L: Any, *, basis: str = "auto", reference: np.ndarray | None = None
                 ) -> pd.DataFrame:
    """Columns ``x, y, label`` of ``X Lᵀ`` seen in two dimensions.

    ``basis``: ``"rows"`` (the first two rows of ``L``; a 1-row map is drawn against zero), ``"pca"`` (the top-2
    principal directions of ``X Lᵀ``) or ``"auto"`` (rows when ``L`` has at most 2 rows, else PCA). ``reference``: a
    previous frame's ``(n, 2)`` coordinates; PCA axes are flipped to agree with it, so an animation does not jump.
    """
    X = np.asarray(X, dtype=np.float64)
    L = np.atleast_2d(np.asarray(L, dtype=np.float64))
    if basis not in ("auto", "rows", "pca"):
        raise DataError(f"basis must be 'auto', 'rows' or 'pca', got {basis!r}")
    Z = X @ L.T
    if basis == "rows" or (basis == "auto" and Z.shape[1] <= 2):
        xy = np.c_[Z[:, 0], Z[:, 1] if Z.shape[1] > 1 else np.zeros(len(Z))]
    else:
        Zc = Z - Z.mean(0)
        _, _, vt = np.linalg.svd(Zc, full_matrices=False)
        xy = Zc @ vt[:2].T
        if xy.shape[1] < 2:
            xy = np.c_[xy, np.zeros(len(xy))]
        if reference is not None and np.shape(reference) == xy.shape:
            for j in range(2):
                if float(np.dot(xy[:, j], reference[:, j])) < 0:
                    xy[:, j] = -xy[:, j]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": np.asarray(y)})
