"""Masks behind the sparsity part of a format, computed by the solvers in :mod:`workbench.sparsity.masks`
so that the toggles and the sparsity lab agree."""

from __future__ import annotations

import torch

from workbench.errors import FormatError, ShapeError
from workbench.formats.numbers import from_matrix, to_matrix
from workbench.formats.spec import Sparsity


def fits(w: torch.Tensor, sparsity: Sparsity) -> str | None:
    """None when ``sparsity`` can be applied to weight ``w``, else the reason it cannot."""
    if w.dim() < 2:
        return f"{sparsity.name} needs a weight with at least 2 dimensions, got shape {tuple(w.shape)}"
    cin = int(w.shape[1])
    if cin % sparsity.m:
        return (f"{sparsity.name}: input dimension {cin} of weight {tuple(w.shape)} is not a multiple of "
                f"M={sparsity.m}")
    return None


def weight_mask(w: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    """Boolean mask of ``w``'s shape for an N:M (or transposable N:M) pattern, by magnitude."""
    from workbench.sparsity import masks as solvers

    reason = fits(w, sparsity)
    if reason:
        raise ShapeError(reason)
    mat = to_matrix(w.detach())
    if sparsity.transposable:
        solver = getattr(solvers, "transposable_mask", None)
        if solver is None:
            raise FormatError(f"{sparsity.name}: the transposable solver is not available in this build")
        mask = solver(mat, sparsity.n, sparsity.m)
    else:
        mask = solvers.nm_mask(mat, sparsity.n, sparsity.m)
    return from_matrix(mask, w.shape)


__all__ = ["fits", "weight_mask"]
