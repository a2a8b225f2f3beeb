"""The mask solvers, as the sparsity lab's users import them: they live in :mod:`workbench.formats.masks` (the
formats registry needs them, and ``formats`` sits below every lab), re-exported here.

>>> import torch
>>> nm_mask(torch.tensor([[1., -4., 3., 2.]]), 2, 4).int().tolist()
[[0, 1, 1, 0]]
"""

from workbench.formats.masks import (
    PaddedWeightWarning,
    check_nm,
    is_nm,
    is_transposable,
    nm_mask,
    padding_needed,
    solve_tiles,
    transposable_mask,
    transposable_patterns,
    unstructured_mask,
)

__all__ = [name for name in dir() if not name.startswith("_")]  # exactly the names imported above
