"""Sparsity lab: N:M and transposable N:M masks, exact mask diversity, mask reports, N:M conversion.

The mask solvers live in :mod:`workbench.formats.masks` (the formats registry needs them) and are re-exported
here; pattern names are the sparsity part of the one format grammar (:mod:`workbench.formats.spec`).

Follows Mishra et al. 2021 (2:4 Sparse Tensor Cores, NVIDIA ASP) and Hubara et al. 2021 ("Accelerated Sparse
Neural Training: A Provable and Efficient Method to Find N:M Transposable Masks").

>>> import torch
>>> from workbench.sparsity import transposable_mask, is_transposable, mask_diversity
>>> is_transposable(transposable_mask(torch.randn(8, 8), 2, 4), 2, 4, exact=True)
True
>>> mask_diversity("transposable", 2, 4, shape=(4, 4))
90
"""

# mask diversity
from workbench.sparsity.diversity import (
    ApproximateCountWarning,
    log10_diversity,
    log10_int,
    log10_transposable_count,
    mask_diversity,
    transposable_count,
)

# masks (the solvers live in workbench.formats.masks)
from workbench.sparsity.masks import (
    PaddedWeightWarning,
    check_nm,
    is_nm,
    is_transposable,
    nm_mask,
    solve_tiles,
    transposable_mask,
    transposable_patterns,
    unstructured_mask,
)

# patterns, the per-layer report and conversion to N:M (these import workbench.formats)
from workbench.sparsity.convert import conversion_table, convert_to_nm
from workbench.sparsity.patterns import DEFAULT_PATTERNS, parse_pattern, pattern_mask
from workbench.sparsity.report import mask_report, pattern_summary

__all__ = [
    "ApproximateCountWarning",
    "DEFAULT_PATTERNS",
    "conversion_table",
    "convert_to_nm",
    "mask_report",
    "parse_pattern",
    "pattern_mask",
    "pattern_summary",
    "PaddedWeightWarning",
    "check_nm",
    "is_nm",
    "is_transposable",
    "log10_diversity",
    "log10_int",
    "log10_transposable_count",
    "mask_diversity",
    "nm_mask",
    "solve_tiles",
    "transposable_count",
    "transposable_mask",
    "transposable_patterns",
    "unstructured_mask",
]
