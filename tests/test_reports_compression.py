"""The compression report's analyses and figures, checked against float64 / brute-force references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import FormatError, LayerError
from workbench.reports.compression import (
    format_tradeoff,
    mask_sample,
    quantization_sample,
    report_metrics,
    sqnr_db,
    weight_error,
)
from workbench.viz.reports import layer_error_figure, mask_figure, quantization_figure, tradeoff_figure
from workbench.reports.notebook import metrics_json


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_sqnr_matches_numpy_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    q = x + rng.normal(scale=0.01, size=500)
    expected = 10 * np.log10(np.sum(x**2) / np.sum((x - q) ** 2))
    assert sqnr_db(torch.tensor(x, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)) == pytest.approx(
        expected, abs=1e-3)
    assert sqnr_db(torch.ones(3), torch.ones(3)) == math.inf
    assert sqnr_db(torch.zeros(3), torch.ones(3)) == -math.inf


def test_tradeoff_against_direct_measurement(digits_mlp):
    before = _state(digits_mlp.model)
    table = format_tradeoff(digits_mlp, ["2:4", "int8"])
    assert list(table["format"]) == ["dense", "2:4", "int8"]
    base = digits_mlp.evaluate()
    dense = table.iloc[0]
    assert dense["value"] == base["accuracy"] and dense["loss"] == base["loss"]
    assert dense["size_bytes"] == wb.model_size_bytes(digits_mlp.model)
    wb.apply(digits_mlp.model, "int8")
    try:
        direct = digits_mlp.evaluate()
        size = wb.model_size_bytes(digits_mlp.model)
    finally:
        wb.restore(digits_mlp.model)
    row = table[table["format"] == "int8"].iloc[0]
    assert row["value"] == direct["accuracy"] and row["size_bytes"] == size
    assert row["compression"] == pytest.approx(dense["size_bytes"] / size)
    # the model is given back exactly as it was
    assert wb.current_formats(digits_mlp.model) == {}
    after = digits_mlp.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weight_error_against_brute_force(digits_mlp):
    table = weight_error(digits_mlp, ["dense", "2:4", "int8"])
    assert len(table) == 3 * len(digits_mlp.layers)
    assert (table.loc[table["format"] == "dense", "weight_sqnr_db"] == math.inf).all()
    assert (table.loc[table["format"] == "2:4", "kept_fraction"] == 0.5).all()
    # 2:4 by hand: keep the 2 largest |w| of every 4 consecutive inputs, SQNR in float64
    w = dict(digits_mlp.model.named_modules())["fc2"].weight.detach().double()
    groups = w.reshape(w.shape[0], -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, groups.abs().topk(2, dim=-1).indices, True)
    q = (groups * keep).reshape_as(w)
    expected = 20 * math.log10(w.norm().item() / (w - q).norm().item())
    got = table[(table["layer"] == "fc2") & (table["format"] == "2:4")]["weight_sqnr_db"].item()
    assert got == pytest.approx(expected, abs=1e-6)
    # int8 (per-channel, symmetric) gives ~ 6 dB per bit: far above 2:4
    int8 = table[table["format"] == "int8"]["weight_sqnr_db"]
    assert (int8 > 35).all() and (int8 > table[table["format"] == "2:4"]["weight_sqnr_db"].to_numpy()).all()
    with pytest.raises(LayerError, match="nope"):
        weight_error(digits_mlp, ["2:4"], layers=["nope"])
    with pytest.raises(FormatError):
        weight_error(digits_mlp, [])


def test_mask_sample_is_nm(digits_mlp):
    sample = mask_sample(digits_mlp, "2:4", "fc2", rows=8, cols=16)
    assert len(sample) == 8 * 16
    kept = sample.pivot(index="row", columns="col", values="kept").to_numpy()
    assert (kept.reshape(8, 4, 4).sum(-1) == 2).all()
    weights = sample.pivot(index="row", columns="col", values="weight").to_numpy().reshape(8, 4, 4)
    # the kept ones are the largest in magnitude of each group
    for r in range(8):
        for g in range(4):
            mags = np.abs(weights[r, g])
            assert set(np.argsort(-mags)[:2]) == set(np.flatnonzero(kept.reshape(8, 4, 4)[r, g]))
    with pytest.raises(FormatError, match="no sparsity"):
        mask_sample(digits_mlp, "int8", "fc2")


def test_quantization_sample_lies_on_the_grid(digits_mlp):
    sample = quantization_sample(digits_mlp, ["2:4", "int8", "int4"], "fc1", n=300)
    assert set(sample["format"]) == {"int8", "int4"}  # 2:4 has no number format
    w = dict(digits_mlp.model.named_modules())["fc1"].weight.detach().double()
    for fmt, levels in (("int8", 127), ("int4", 7)):
        part = sample[sample["format"] == fmt]
        assert len(part) == 300
        # per-channel scale amax/qmax: every value is an integer multiple of some row's step
        steps = w.abs().amax(dim=1) / levels
        q = torch.tensor(part["quantized"].to_numpy())
        on_grid = torch.stack([(q / s - torch.round(q / s)).abs() < 1e-3 for s in steps]).any(0)
        assert bool(on_grid.all())
        assert np.abs(part["quantized"] - part["original"]).max() <= steps.max().item() / 2 + 1e-6


def test_metrics_and_figures(digits_mlp):
    tradeoff = format_tradeoff(digits_mlp, ["int8"])
    errors = weight_error(digits_mlp, ["dense", "int8"])
    metrics = report_metrics("digits-mlp", tradeoff, errors)
    assert metrics["metric"] == "accuracy" and set(metrics["formats"]) == {"dense", "int8"}
    assert metrics["weight_sqnr_db"]["fc1"]["dense"] is None  # infinite SQNR -> null in JSON
    assert json.loads(metrics_json(metrics)) == json.loads(metrics_json(json.loads(metrics_json(metrics))))
    fig = tradeoff_figure(tradeoff)
    assert list(fig.data[0].text) == ["dense", "int8"]
    heat = layer_error_figure(errors)
    assert list(heat.data[0].y) == ["fc1", "fc2", "fc3"] and heat.data[0].z[0][0] is None
    mfig = mask_figure(mask_sample(digits_mlp, "2:4", "fc2", rows=4, cols=8))
    assert len(mfig.data) == 2
    qfig = quantization_figure(quantization_sample(digits_mlp, ["int8"], "fc2", n=50))
    assert [t.name for t in qfig.data] == ["int8", "identity"]


@pytest.mark.parametrize("call", [
    lambda h: format_tradeoff(h, ["int4", "2:4"]),
    lambda h: weight_error(h, ["int8", "2:4"]),
    lambda h: mask_sample(h, "2:4", "fc1"),
    lambda h: quantization_sample(h, ["int4"], "fc1", n=50),
], ids=["format_tradeoff", "weight_error", "mask_sample", "quantization_sample"])
def test_report_functions_leave_the_users_formats(call):
    """The report's analyses set the user's formats aside and give them back, objects and weights unchanged."""
    h = wb.load_model("digits-mlp")
    names = list(wb.formats.eligible_layers(h.model))
    wb.apply(h.model, {names[-1]: "int4"}, activations=True)
    before_formats, before_state = wb.current_formats(h.model), _state(h.model)
    before_param = h.model.get_submodule(names[-1]).parametrizations.weight[0]
    call(h)
    assert wb.current_formats(h.model) == before_formats == {names[-1]: "int4"}
    assert h.model.get_submodule(names[-1]).parametrizations.weight[0] is before_param
    assert wb.formats.activation_quantizer(h.model.get_submodule(names[-1])) is not None
    after = _state(h.model)
    assert after.keys() == before_state.keys() and all(torch.equal(after[k], before_state[k]) for k in after)
