"""Every registered format on every bundled model: apply, forward, restore gives bit-identical weights and outputs."""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.formats import current_formats, list_formats

BUNDLED = ["digits-mlp", "digits-cnn", "digits-gru"]


@pytest.fixture(scope="module", params=BUNDLED)
def handle(request):
    return wb.load_model(request.param)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fmt", list_formats())
def test_format_round_trip_on_bundled_model(handle, fmt: str) -> None:
    model = handle.model
    batch = handle.calibration_batches()[0]
    before, out0, metrics0 = _state(model), handle.run(batch), handle.evaluate()
    report = wb.apply(model, fmt)
    applied = set(report.loc[report.status == "applied", "layer"])
    if fmt != "dense":
        assert applied, f"{fmt} applied to no layer of {handle.name}"
        assert set(current_formats(model)) == applied
        # skipped layers say why (conv1 has one input channel, no multiple of M)
        assert (report.loc[report.status == "skipped", "reason"].str.len() > 0).all()
    out_q = handle.run(batch)
    assert out_q.shape == out0.shape
    wb.restore(model)
    after = _state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(handle.run(batch), out0)
    assert handle.evaluate() == metrics0


def test_issue_example_digits_cnn() -> None:
    h = wb.load_model("digits-cnn")
    base = h.evaluate()
    assert set(h.layers["name"]) == {"conv1", "conv2", "fc1", "fc2"}
    report = wb.apply(h.model, "2:4+fp8_e4m3", layers=["conv2", "fc1"])
    assert list(report["status"]) == ["applied", "applied"]
    changed = h.evaluate()
    assert changed["accuracy"] > 0.9 and changed != base
    wb.restore(h.model)
    assert h.evaluate() == base
