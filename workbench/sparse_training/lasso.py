"""Group lasso over the groups of a sparsity structure (Yuan & Lin 2006; used for block-sparse RNNs by Narang,
Undersander & Diamos 2017): the penalty λ Σ_g ‖w_g‖₂ drives whole groups towards zero, after which the groups below
a threshold are zeroed.

Groups: the bh×bw blocks of a block structure; single weights otherwise (then the penalty is the lasso λ Σ|w|; N:M
and unstructured masks are chosen per weight). Weights are seen as the formats' 2-D matrix (out × in).
The gradient of ‖w_g‖₂ is w_g / ‖w_g‖₂ (0 for a zero group: the subgradient torch's vector_norm returns).
"""

from __future__ import annotations

import torch

from workbench.formats import Sparsity, to_matrix


def group_norms(w: torch.Tensor, sp: Sparsity) -> torch.Tensor:
    """‖w_g‖₂ of every group of ``sp`` on ``w`` (differentiable): one per block, or |w| per weight."""
    mat = to_matrix(w)
    if sp.kind != "block":
        return mat.abs().flatten()
    bh, bw = sp.block
    r, c = mat.shape
    blocks = mat.reshape(r // bh, bh, c // bw, bw)
    return torch.linalg.vector_norm(blocks, dim=(1, 3)).flatten()


def group_lasso_penalty(w: torch.Tensor, sp: Sparsity) -> torch.Tensor:
    """Σ_g ‖w_g‖₂ over the groups of ``sp`` (multiply by λ for the regularizer).

    >>> from workbench.formats import parse_format
    >>> float(group_lasso_penalty(torch.tensor([[3., 4.], [0., 0.]]), parse_format("block1x2@50%").sparsity))
    5.0
    """
    return group_norms(w, sp).sum()


__all__ = ["group_norms", "group_lasso_penalty"]
