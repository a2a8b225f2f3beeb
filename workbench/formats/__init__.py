"""Number formats and sparsity patterns as a registry of reversible, per-layer transformations.

Names: ``"dense"``, ``"N:M"``, ``"N:M-T"`` (``"N:M-T greedy"``), ``"unstructured P%"``, ``"fp8_e4m3"``,
``"blockHxW@S%"`` (``"block4x4@80%"``), ``"fp8_e5m2"``, ``"int8"``, ``"int4"``, ``"binary"`` and ``+`` combinations (``"2:4+fp8_e4m3"``). See
:mod:`workbench.formats.spec` for the one grammar. The mask solvers live in :mod:`workbench.formats.masks`.
This package imports torch and nothing of the labs.

>>> import torch
>>> quantize(torch.tensor([1.0, 300.0, 500.0]), "fp8_e4m3", granularity=None).tolist()
[1.0, 288.0, 448.0]
"""

# names and parsing
from workbench.formats.spec import (
    FLOAT_DTYPES,
    SOLVER_METHODS,
    Format,
    Number,
    Sparsity,
    list_formats,
    parse_format,
    register_number_format,
)

# rounding and layout
from workbench.formats.numbers import (
    Granularity,
    compute_scale,
    from_matrix,
    quantize,
    representable_values,
    round_number,
    to_matrix,
)

# putting formats on models
from workbench.formats.api import (
    activation_quantizer,
    apply,
    clear_cache,
    current_formats,
    eligible_layers,
    format_table,
    model_lock,
    original_weight,
    restore,
    suspended,
)
from workbench.formats.parametrize import ActivationQuantizer, FormatParametrization

# masks (the solvers behind the sparsity part)
from workbench.formats.masks import block_mask, nm_mask, transposable_mask, unstructured_mask, weight_mask

# sizes
from workbench.formats.size import bits_per_weight, layer_size_bits, model_size_bytes

__all__ = [
    "FLOAT_DTYPES", "SOLVER_METHODS", "Format", "Number", "Sparsity", "list_formats", "parse_format", "register_number_format",
    "Granularity", "compute_scale", "from_matrix", "quantize", "representable_values", "round_number", "to_matrix",
    "activation_quantizer", "apply", "clear_cache", "current_formats", "eligible_layers", "format_table", "model_lock",
    "original_weight", "restore", "suspended",
    "block_mask", "nm_mask", "transposable_mask", "unstructured_mask", "weight_mask",
    "ActivationQuantizer", "FormatParametrization",
    "bits_per_weight", "layer_size_bits", "model_size_bytes",
]
