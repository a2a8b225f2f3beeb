"""Quantization lab: per-layer error and sensitivity, bit allocation, calibration, data-free data, binarized nets.

Plain functions returning tidy DataFrames (one row per layer × format, per layer, or per step):

>>> from workbench.quant import layer_error, sensitivity, allocate_bits   # doctest: +SKIP
>>> h = workbench.load_model("digits-mlp")                                 # doctest: +SKIP
>>> layer_error(h, ["fp8_e4m3", "int8", "int4"], mode="cumulative")        # doctest: +SKIP
"""

# per-layer error
from workbench.quant.error import (
    capture_layer_io,
    error_metrics,
    expected_sqnr_gaussian,
    grid_round,
    layer_error,
    sqnr_db,
)

# sensitivity and bit allocation (Hubara et al. 2020)
from workbench.quant.sensitivity import (
    Allocation,
    allocate_bits,
    allocate_exhaustive,
    frontier,
    layer_sizes,
    measure_assignment,
    sensitivity,
)

# calibration: scales, AdaQuant, BN re-estimation
from workbench.quant.calibration import (
    DelayedScaling,
    PTQResult,
    adaquant,
    calibrate_activations,
    compute_scales,
    post_training_quantize,
    quantize_model,
    reestimate_bn,
    scaling_comparison,
)

# data-free calibration data (Haroush et al. 2020)
from workbench.quant.datafree import bn_statistics_loss, synthesize

# binarized networks (Hubara/Courbariaux et al. 2016)
from workbench.quant.binarized import (
    BinarizedMLP,
    pack_signs,
    sign_ste,
    train_digits_mlp,
    xnor_popcount_dot,
)

__all__ = [
    "layer_error", "sqnr_db", "error_metrics", "expected_sqnr_gaussian", "grid_round", "capture_layer_io",
    "sensitivity", "allocate_bits", "allocate_exhaustive", "frontier", "layer_sizes", "measure_assignment",
    "Allocation",
    "compute_scales", "DelayedScaling", "calibrate_activations", "quantize_model", "reestimate_bn", "adaquant",
    "post_training_quantize", "PTQResult", "scaling_comparison",
    "synthesize", "bn_statistics_loss",
    "sign_ste", "pack_signs", "xnor_popcount_dot", "BinarizedMLP", "train_digits_mlp",
]
