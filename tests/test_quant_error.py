"""layer_error and sensitivity on the bundled digits models: numbers checked against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import DataError, FormatError, LayerError, NonFiniteError, OptionError
from workbench.formats import current_formats, quantize, representable_values
from workbench.quant.error import error_metrics, expected_sqnr_gaussian, grid_round, layer_error, sqnr_db
from workbench.quant.replay import UpstreamReplay
from workbench.quant.sensitivity import allocate_bits, layer_sizes, sensitivity


def test_metrics_against_hand_values() -> None:
    x = torch.tensor([3.0, 4.0])
    m = error_metrics(x, torch.tensor([3.0, 4.5]))
    assert m["sqnr_db"] == pytest.approx(20 * math.log10(5 / 0.5))
    assert m["nl2"] == pytest.approx(0.1)
    assert m["cosine"] == pytest.approx((9 + 18) / (5 * math.sqrt(9 + 20.25)))
    assert sqnr_db(x, x) == math.inf


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2", "int8", "int4"])
def test_sqnr_on_gaussian_matches_float64_grid(fmt: str) -> None:
    """SQNR of the format on Gaussian weights within 1 dB of the float64 value from the format's grid."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(256, 512, generator=g)
    q = quantize(w, fmt, granularity="tensor")
    grid = representable_values(fmt).numpy()
    scale = float(w.abs().max()) / float(np.abs(grid).max())
    analytic = expected_sqnr_gaussian(fmt, scale, sigma=1.0)
    assert abs(sqnr_db(w, q) - analytic) < 1.0
    # the empirical float64 rounding on the grid agrees to the last bits with torch's rounding
    ref = grid_round(w.double().numpy() / scale, grid) * scale
    assert np.abs(ref - q.double().numpy()).max() <= 1e-6 * float(w.abs().max())
    assert abs(sqnr_db(w, torch.from_numpy(ref)) - analytic) < 1.0


def test_fp8_e4m3_value_known() -> None:
    # 3 mantissa bits: relative step 2^-3 on a log-uniform-ish grid gives ≈ 31.5 dB on N(0,1) at amax ≈ 4.5σ
    val = expected_sqnr_gaussian("fp8_e4m3", 4.5 / 448)
    assert 30.0 < val < 33.0


def test_int8_beats_int4_every_layer(digits_cnn) -> None:
    df = layer_error(digits_cnn, ["int8", "int4"], mode="isolated", evaluate=False, progress=False)
    piv = df.pivot(index="layer", columns="format", values="weight_sqnr_db")
    assert len(piv) == 4 and (piv["int8"] > piv["int4"]).all()
    out = df.pivot(index="layer", columns="format", values="output_sqnr_db")
    assert (out["int8"] > out["int4"]).all()
    # about 6 dB per bit: 4 more bits ≈ 24 dB
    assert ((piv["int8"] - piv["int4"]).between(18, 30)).all()


def test_isolated_output_matches_full_model_quantization(digits_mlp) -> None:
    """The isolated row of the last layer equals quantizing only that layer and running the whole model."""
    from workbench.formats import apply, restore

    df = layer_error(digits_mlp, ["int4"], mode="isolated", layers=["fc3"], progress=False)
    batches = digits_mlp.calibration_batches()
    ref = torch.cat([digits_mlp.run(b) for b in batches])
    apply(digits_mlp.model, {"fc3": "int4"})
    try:
        got = torch.cat([digits_mlp.run(b) for b in batches])
        res = digits_mlp.evaluate()
    finally:
        restore(digits_mlp.model)
    assert df["output_sqnr_db"].iloc[0] == pytest.approx(sqnr_db(ref, got), abs=1e-6)
    assert df["loss"].iloc[0] == pytest.approx(res["loss"], rel=1e-6)
    assert current_formats(digits_mlp.model) == {}


@pytest.mark.parametrize("what", ["weights", "activations", "both"])
def test_cumulative_error_at_least_isolated_on_last_layer(digits_cnn, what: str) -> None:
    iso = layer_error(digits_cnn, ["int4"], mode="isolated", what=what, progress=False)
    cum = layer_error(digits_cnn, ["int4"], mode="cumulative", what=what, progress=False)
    last = list(digits_cnn.layers["name"])[-1]
    i = iso[iso.layer == last].iloc[0]
    c = cum[cum.layer == last].iloc[0]
    assert c["output_nl2"] >= i["output_nl2"]
    assert c["output_sqnr_db"] <= i["output_sqnr_db"]
    # the first layer sees unquantized inputs in both modes: identical errors there
    first = list(digits_cnn.layers["name"])[0]
    assert iso[iso.layer == first]["output_sqnr_db"].iloc[0] == pytest.approx(
        cum[cum.layer == first]["output_sqnr_db"].iloc[0], abs=1e-9)
    assert current_formats(digits_cnn.model) == {}


def test_replay_equals_plain_evaluation(digits_cnn) -> None:
    from workbench.formats import apply, restore

    names = list(digits_cnn.layers["name"])
    r = UpstreamReplay(digits_cnn, names)
    assert r.check()
    assert r.skip["fc2"]  # something upstream of fc2 is replayed
    for name in names:
        apply(digits_cnn.model, {name: "int4"})
        try:
            assert r.evaluate(name)["loss"] == pytest.approx(digits_cnn.evaluate()["loss"], rel=1e-6)
        finally:
            restore(digits_cnn.model)


def test_sensitivity_and_allocation_measured(digits_mlp) -> None:
    s = sensitivity(digits_mlp, ["int8", "int4", "binary"], progress=False)
    assert len(s) == 9
    piv = s.pivot(index="layer", columns="format", values="delta_loss")
    assert (piv["binary"] > piv["int8"]).all()
    sizes = layer_sizes(digits_mlp, ["int8", "int4", "binary"])
    lo, hi = sizes.groupby("layer")["size_bytes"].min().sum(), sizes.groupby("layer")["size_bytes"].max().sum()
    a = allocate_bits(s, sizes, (lo + hi) / 2, handle=digits_mlp)
    assert a.size_bytes <= (lo + hi) / 2
    assert np.isfinite(a.measured_loss)
    assert set(a.comparison["assignment"]) == {"mixed", "int8", "int4", "binary"}
    assert current_formats(digits_mlp.model) == {}


def test_error_cases(digits_mlp, digits_cnn) -> None:
    with pytest.raises(FormatError):
        layer_error(digits_mlp, ["int3x"], progress=False)
    with pytest.raises(DataError, match="empty"):
        layer_error(digits_mlp, ["int8"], batches=[], progress=False)
    with pytest.raises(LayerError, match="'bn1'.*no weight"):
        layer_error(digits_cnn, ["int8"], layers=["bn1"], progress=False)
    with pytest.raises(LayerError, match="no layer named 'nope'"):
        layer_error(digits_cnn, ["int8"], layers=["nope"], progress=False)
    with pytest.raises(OptionError, match="mode must be one of 'isolated', 'cumulative'; got 'sideways'"):
        layer_error(digits_mlp, ["int8"], mode="sideways", progress=False)


def test_nonfinite_activation_names_layer(digits_mlp) -> None:
    bad = [digits_mlp.calibration_batches()[0].clone()]
    bad[0][0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="layer 'fc1': input"):
        layer_error(digits_mlp, ["int8"], batches=bad, progress=False)


def test_model_without_eligible_layers() -> None:
    class H:
        name = "no-weights"
        model = nn.Sequential(nn.ReLU())

    with pytest.raises(LayerError, match="no eligible layers"):
        layer_error(H(), ["int8"], progress=False)
