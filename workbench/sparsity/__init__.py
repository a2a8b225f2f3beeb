"""Sparsity lab: N:M and transposable N:M masks, exact mask diversity, mask reports, N:M conversion.

Follows Mishra et al. 2021 (2:4 Sparse Tensor Cores, NVIDIA ASP) and Hubara et al. 2021 ("Accelerated Sparse
Neural Training: A Provable and Efficient Method to Find N:M Transposable Masks").

>>> import torch
>>> from workbench.sparsity import transposable_mask, is_transposable, mask_diversity
>>> is_transposable(transposable_mask(torch.randn(8, 8), 2, 4), 2, 4, exact=True)
True
>>> mask_diversity("transposable", 2, 4, shape=(4, 4))
90
"""

# masks
from workbench.sparsity.masks import (
    PaddedWeightWarning,
    check_nm,
    is_nm,
    is_transposable,
    nm_mask,
    solve_tiles,
    transposable_mask,
    transposable_patterns,
)

# mask diversity
from workbench.sparsity.diversity import log10_diversity, log10_int, mask_diversity, transposable_count

__all__ = [
    "PaddedWeightWarning", "check_nm", "is_nm", "is_transposable", "nm_mask", "solve_tiles", "transposable_mask",
    "transposable_patterns",
    "log10_diversity", "log10_int", "mask_diversity", "transposable_count",
]
