"""The geometry lab: truly shift-invariant CNNs (adaptive polyphase sampling, Chaman & Dokmanić 2020; blur pooling,
Zhang 2019) and mixed image sizes (Mix & Match, Hoffer et al. 2019) on digits upsampled to 32×32.

Layers
    APSDownsample, BlurPool, Subsample, CircularMaxPool, polyphase_components, binomial_filter
Networks
    make_digits_cnn, GeometryCNN, swap_downsampling, downsampling_layers, total_stride, receptive_field,
    check_input_size, flops_per_image
Data
    digits32, resize_images, geometry_handle
Shifts
    shift_consistency, compare_shift_consistency, shift_images, shift_set, shifted_probabilities,
    find_breaking_shift
Mixed sizes
    mix_and_match, size_schedule, batch_for_size, accuracy_vs_size, recalibrate_bn, compare_fixed_mixed, summarize_sizes
Bundled models
    ``workbench.load_model("digits32-cnn-max" | "digits32-cnn-blur" | "digits32-cnn-aps")``
"""

from workbench.geometry.cnn import (
    POOLS,
    SWAP_KINDS,
    Digits32CNNAPS,
    Digits32CNNBlur,
    Digits32CNNMax,
    GeometryCNN,
    check_input_size,
    downsampling_layers,
    flops_per_image,
    make_digits_cnn,
    min_input_size,
    receptive_field,
    swap_downsampling,
    total_stride,
)
from workbench.geometry.data import BASE_SIZE, digits32, geometry_handle, resize_images
from workbench.geometry.layers import (
    APSDownsample,
    BlurPool,
    CircularMaxPool,
    Subsample,
    binomial_filter,
    polyphase_components,
)
from workbench.geometry.mixsize import (
    DEFAULT_SIZES,
    MixResult,
    accuracy_vs_size,
    batch_for_size,
    compare_fixed_mixed,
    mix_and_match,
    recalibrate_bn,
    size_schedule,
    summarize_sizes,
)
from workbench.geometry.shift import (
    compare_shift_consistency,
    find_breaking_shift,
    shift_consistency,
    shift_images,
    shift_set,
    shifted_probabilities,
)

BUNDLED_MODELS = ("digits32-cnn-max", "digits32-cnn-blur", "digits32-cnn-aps")

__all__ = [
    "APSDownsample", "BlurPool", "Subsample", "CircularMaxPool", "polyphase_components", "binomial_filter",
    "make_digits_cnn", "GeometryCNN", "Digits32CNNMax", "Digits32CNNBlur", "Digits32CNNAPS", "POOLS", "SWAP_KINDS",
    "swap_downsampling", "downsampling_layers", "total_stride", "receptive_field", "min_input_size",
    "check_input_size", "flops_per_image",
    "BASE_SIZE", "digits32", "resize_images", "geometry_handle",
    "shift_consistency", "compare_shift_consistency", "shift_images", "shift_set", "shifted_probabilities",
    "find_breaking_shift",
    "DEFAULT_SIZES", "mix_and_match", "MixResult", "size_schedule", "batch_for_size", "accuracy_vs_size",
    "recalibrate_bn",
    "compare_fixed_mixed", "summarize_sizes", "BUNDLED_MODELS",
]
