"""Bad arguments to the quantization lab and the shared checks: refused before any work, options listed."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.checks import integer, number, option
from workbench.errors import DataError, FormatError, LayerError, OptionError
from workbench.formats import current_formats
from workbench.quant import adaquant, compute_scales, layer_error, scaling_comparison, sensitivity, synthesize
from workbench.quant.calibration import DelayedScaling, calibrate_activations


def test_checks() -> None:
    assert option("m", None, (None, "a")) is None
    assert integer("k", 3.0) == 3 and isinstance(integer("k", 3.0), int)
    assert number("x", 2) == 2.0
    for bad in (True, "1", math.nan, math.inf, None):
        with pytest.raises(DataError, match="x must be a finite number"):
            number("x", bad)
    with pytest.raises(DataError, match=r"k must be an integer in \[1, 5\], got 6"):
        integer("k", 6, low=1, high=5)
    with pytest.raises(DataError, match="k must be an integer"):
        integer("k", 2.5)
    with pytest.raises(OptionError, match="where: m must be one of 'a', 'b'; got 'c'"):
        option("m", "c", ("a", "b"), where="where")
    assert issubclass(OptionError, DataError) and issubclass(OptionError, ValueError)


def test_layer_error_options(digits_cnn) -> None:
    with pytest.raises(OptionError, match="mode must be one of 'isolated', 'cumulative'; got 'fast'"):
        layer_error(digits_cnn, "int8", mode="fast")
    with pytest.raises(OptionError, match="what must be one of 'weights', 'activations', 'both'"):
        layer_error(digits_cnn, "int8", what="inputs")


def test_sensitivity_checks_layers_and_formats_first(digits_cnn) -> None:
    with pytest.raises(LayerError, match="no eligible layer named 'fc9'"):
        sensitivity(digits_cnn, "int8", ["fc9"], progress=False)
    with pytest.raises(FormatError, match="no formats"):
        sensitivity(digits_cnn, [], progress=False)
    assert current_formats(digits_cnn.model) == {}


def test_calibration_arguments(digits_cnn) -> None:
    x = torch.randn(4, 4)
    with pytest.raises(OptionError, match="method must be one of 'max', 'percentile'; got 'mean'"):
        compute_scales(x, "int8", method="mean")
    with pytest.raises(DataError, match="percentile"):
        compute_scales(x, "int8", method="percentile", percentile=math.nan)
    with pytest.raises(OptionError, match="granularity"):
        compute_scales(x, "int8", granularity="row")
    with pytest.raises(DataError, match="percentile"):
        calibrate_activations(digits_cnn, "int8", method="percentile", percentile=0)
    with pytest.raises(DataError, match="history_len"):
        DelayedScaling("int8", history_len=0)
    with pytest.raises(FormatError, match="mean"):
        DelayedScaling("binary")
    with pytest.raises(FormatError, match="mean"):
        scaling_comparison(digits_cnn, "binary")
    with pytest.raises(DataError, match="lr"):
        adaquant(digits_cnn, "int4", steps=1, lr=math.nan, progress=False)
    with pytest.raises(DataError, match="steps"):
        adaquant(digits_cnn, "int4", steps=-1, progress=False)
    for kw, words in [(dict(n=0), "n must"), (dict(lr=math.inf), "lr"), (dict(label_weight=math.nan), "label_weight"),
                      (dict(input_range=(1.0, 0.0)), r"input_range\[1\]"), (dict(steps=1.5), "steps")]:
        with pytest.raises(DataError, match=words):
            synthesize(digits_cnn, **{"n": 8, "steps": 1, "progress": False, **kw})


def test_one_binary_scale_rule() -> None:
    """compute_scales and the formats' compute_scale agree, binary included (mean|x|, not amax)."""
    from workbench.formats import compute_scale, parse_format

    x = torch.tensor([[1.0, -3.0], [0.5, 0.0]])
    for fmt in ("int8", "fp8_e4m3", "binary"):
        for g in ("tensor", "channel"):
            assert torch.equal(compute_scales(x, fmt, g), compute_scale(x, parse_format(fmt).number, g))
    assert compute_scales(x, "binary").item() == pytest.approx(4.5 / 4)
