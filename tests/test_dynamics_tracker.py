"""The weight-distance tracker against a direct float64 computation, one tensor at a time."""

import copy

import numpy as np
import pytest
import torch

from workbench.dynamics import WeightDistanceTracker, distances_direct
from workbench.errors import DataError, LayerError
from workbench.models.zoo import DigitsCNN


def _sgd_steps(model, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(n):
        x = torch.randn(16, 1, 8, 8, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        yield


def test_distances_equal_direct_computation():
    torch.manual_seed(0)
    model = DigitsCNN().train()
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    tracker = WeightDistanceTracker(model, every=3, travelled=True)
    expected, path = {}, {}
    prev = {k: v.detach().clone() for k, v in model.named_parameters()}
    for step, _ in enumerate(_sgd_steps(model, 9), start=1):
        tracker.update(step)
        squares = {}
        for name, p in model.named_parameters():  # direct path length, float64, per layer
            layer = name.rpartition(".")[0]
            squares[layer] = squares.get(layer, 0.0) + float((p.detach().double() - prev[name].double()).pow(2).sum())
        for layer, sq in squares.items():
            path.setdefault(layer, []).append(sq)
        prev = {k: v.detach().clone() for k, v in model.named_parameters()}
        if step % 3 == 0:
            expected[step] = distances_direct(model, init)
    df = tracker.frame()
    assert sorted(df["step"].unique()) == [0, 3, 6, 9]
    assert set(df["layer"]) == {"conv1", "bn1", "conv2", "bn2", "fc1", "fc2", "total"}
    assert (df.query("step == 0")["distance"] == 0).all()
    for step, ref in expected.items():
        got = df[df.step == step].set_index("layer")["distance"]
        for layer, value in ref.items():
            assert got[layer] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, layer)
    final = df[df.step == 9].set_index("layer")
    for layer, squares in path.items():
        assert final.loc[layer, "travelled"] == pytest.approx(sum(np.sqrt(squares)), rel=1e-5)
    # the total path is Σ_t ‖Δw_t‖ of the whole vector, shorter than the sum over layers, longer than the distance
    assert final.loc["total", "distance"] <= final.loc["total", "travelled"] <= sum(
        final.drop("total")["travelled"]) + 1e-6
    init_norm = np.sqrt(sum(float(v.double().pow(2).sum()) for v in init.values()))
    assert final.loc["total", "init_norm"] == pytest.approx(init_norm, rel=1e-6)


def test_layers_subset_record_steps_and_untouched_weights():
    model = DigitsCNN()
    before = copy.deepcopy(model.state_dict())
    tracker = WeightDistanceTracker(model, layers=["fc1", "fc2"], record_steps=[2, 5])
    with torch.no_grad():
        model.fc1.weight.add_(0.5)
    assert tracker.update(1) == []
    rows = tracker.update(2)
    by = {r["layer"]: r["distance"] for r in rows}
    assert by["fc1"] == pytest.approx(0.5 * np.sqrt(512 * 64), rel=1e-6) and by["fc2"] == 0.0
    assert by["total"] == pytest.approx(by["fc1"], rel=1e-6)
    assert set(tracker.frame()["layer"]) == {"fc1", "fc2", "total"}
    assert torch.equal(before["conv1.weight"], model.state_dict()["conv1.weight"])
    assert tracker.update(3, force=True)[0]["step"] == 3  # forced record of a step off the schedule


def test_bad_input():
    with pytest.raises(LayerError, match="fc9"):
        WeightDistanceTracker(DigitsCNN(), layers=["fc9"])
    with pytest.raises(DataError):
        WeightDistanceTracker(DigitsCNN(), every=0)
    frozen = DigitsCNN().requires_grad_(False)
    with pytest.raises(LayerError, match="no trainable"):
        WeightDistanceTracker(frozen)
