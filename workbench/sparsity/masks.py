"""Sparsity masks on 2-D weights (rows = output features, columns = input features).

N:M (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"; NVIDIA ASP): in every group of M
consecutive weights along the input dimension keep the N of largest magnitude. Ties in |w| are broken
deterministically: the lower column index wins.
"""

from __future__ import annotations

import torch

from workbench.errors import NonFiniteError, ShapeError


def check_nm(n: int, m: int) -> None:
    """Raise a ShapeError unless ``0 < n <= m``."""
    if not (isinstance(n, int) and isinstance(m, int)) or m <= 0 or n <= 0 or n > m:
        raise ShapeError(f"N:M needs integers with 0 < N <= M, got N={n}, M={m}")


def _check_weight(w: torch.Tensor, m: int, what: str) -> None:
    if w.dim() != 2:
        raise ShapeError(f"{what} expects a 2-D weight (out × in), got shape {tuple(w.shape)}")
    if w.shape[1] % m:
        raise ShapeError(
            f"{what}: input dimension {w.shape[1]} of weight {tuple(w.shape)} is not a multiple of M={m}"
        )
    if w.is_floating_point() and not torch.isfinite(w).all():
        raise NonFiniteError(f"{what}: weight {tuple(w.shape)} contains NaN or inf")


def nm_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean mask keeping the ``n`` largest |w| of every ``m`` consecutive weights along dim 1.

    >>> w = torch.tensor([[1., -4., 3., 2.]])
    >>> nm_mask(w, 2, 4).int().tolist()
    [[0, 1, 1, 0]]
    """
    check_nm(n, m)
    _check_weight(w, m, f"{n}:{m} mask")
    rows, cols = w.shape
    groups = w.detach().abs().reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, order, True)
    return mask.reshape(rows, cols)


def is_nm(mask: torch.Tensor, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive entries along dim 1 has at most ``n`` nonzeros."""
    check_nm(n, m)
    if mask.dim() != 2 or mask.shape[1] % m:
        return False
    counts = (mask != 0).reshape(mask.shape[0], -1, m).sum(-1)
    return bool((counts <= n).all())


__all__ = ["check_nm", "nm_mask", "is_nm"]
