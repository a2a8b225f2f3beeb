"""Calibration: scales, delayed scaling, BN re-estimation, AdaQuant and BN-statistics data synthesis."""

from __future__ import annotations

import copy

import pytest
import torch

from workbench.errors import DataError, NonFiniteError
from workbench.formats import current_formats
from workbench.quant.calibration import (
    DelayedScaling,
    adaquant,
    calibrate_activations,
    compute_scales,
    post_training_quantize,
    reestimate_bn,
    scaling_comparison,
)
from workbench.quant.datafree import bn_layers, synthesize


def test_scales() -> None:
    x = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    assert compute_scales(x, "int8").item() == pytest.approx(2 / 127)
    assert compute_scales(x, "fp8_e4m3", "channel").flatten().tolist() == pytest.approx([2 / 448, 0.5 / 448])
    big = torch.arange(1, 10001, dtype=torch.float32)
    assert compute_scales(big, "int8", method="percentile", percentile=50).item() == pytest.approx(5000.5 / 127)
    with pytest.raises(DataError):
        compute_scales(x, "int8", method="mean")


def test_delayed_scaling_uses_history() -> None:
    ds = DelayedScaling("int8", history_len=2)
    ds(torch.tensor([1.0]))
    q = ds(torch.tensor([4.0]))  # scale from the history (amax 1): 4 saturates to 1
    assert q.item() == pytest.approx(1.0)
    assert ds.overflow[-1] == 1.0
    ds(torch.tensor([0.5]))
    assert ds.history == [4.0, 0.5] and ds.scale == pytest.approx(4 / 127)
    with pytest.raises(NonFiniteError):
        ds(torch.tensor([float("inf")]))


def test_calibrate_activations_and_static_model(digits_cnn) -> None:
    sc = calibrate_activations(digits_cnn, "int8")
    assert list(sc["layer"]) == ["conv1", "conv2", "fc1", "fc2"]
    x = digits_cnn.calibration_batches()
    assert sc["stat"].iloc[0] == pytest.approx(float(torch.cat(x).abs().max()))
    r = post_training_quantize(digits_cnn, "int8")
    assert r.metrics["accuracy"] >= digits_cnn.evaluate()["accuracy"] - 0.02
    assert current_formats(digits_cnn.model) == {}  # the handle's model is untouched
    bad = [x[0].clone()]
    bad[0][0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="layer 'conv1'"):
        calibrate_activations(digits_cnn, "int8", bad)
    with pytest.raises(DataError, match="empty"):
        calibrate_activations(digits_cnn, "int8", [])


def test_reestimate_bn_recovers_running_stats(digits_cnn) -> None:
    m = copy.deepcopy(digits_cnn.model)
    for bn in bn_layers(m).values():
        bn.running_mean.fill_(5.0)
    train_x, _ = digits_cnn.train_data()
    assert reestimate_bn(digits_cnn, m, [train_x]) == 2
    # on the unquantized model, re-estimation on the training data gives the batch statistics of that data
    feats = {}
    h = m.conv1.register_forward_hook(lambda mod, a, out: feats.setdefault("c1", out))
    with torch.no_grad():
        m(train_x)
    h.remove()
    assert torch.allclose(m.bn1.running_mean, feats["c1"].mean((0, 2, 3)), atol=1e-4)


def test_adaquant_lowers_output_error(digits_cnn) -> None:
    model, df = adaquant(digits_cnn, "int4", digits_cnn.calibration_batches(n_batches=1), steps=15, progress=False)
    assert (df["mse_after"] <= df["mse_before"] + 1e-12).all()
    assert (df["mse_after"] < df["mse_before"]).any()
    assert set(current_formats(model).values()) == {"int4"}
    assert current_formats(digits_cnn.model) == {}


def test_synthesized_data_matches_bn_statistics(digits_cnn) -> None:
    batches, hist = synthesize(digits_cnn, 64, steps=40, seed=0)
    assert hist["bns_loss"].iloc[-1] < 0.05 * hist["bns_loss"].iloc[0]
    assert sum(len(b) for b in batches) == 64 and batches[0].shape[1:] == (1, 8, 8)
    # calibrating int4 on synthesized data beats calibrating on noise of the same shape
    noise = [torch.randn_like(b) for b in batches]
    acc_syn = post_training_quantize(digits_cnn, "int4", batches).metrics["accuracy"]
    acc_noise = post_training_quantize(digits_cnn, "int4", noise).metrics["accuracy"]
    assert acc_syn > acc_noise


def test_synthesize_needs_bn(digits_mlp) -> None:
    with pytest.raises(DataError, match="no BatchNorm"):
        synthesize(digits_mlp, 8, steps=1)


def test_scaling_comparison(digits_cnn) -> None:
    df = scaling_comparison(digits_cnn, "fp8_e4m3", digits_cnn.calibration_batches(n_batches=2))
    assert set(df["scaling"]) == {"dynamic", "static max", "static percentile", "delayed"}
    assert (df["sqnr_db"] > 15).all()
