"""shift_consistency, shift_images and the bundled 32×32 models."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench.errors import DataError, ShapeError
from workbench.geometry import (
    BUNDLED_MODELS,
    shift_consistency,
    shift_images,
    shift_set,
    shifted_probabilities,
)


@pytest.fixture(scope="module")
def handles():
    return {name: workbench.load_model(name) for name in BUNDLED_MODELS}


def test_bundled_models_load_with_their_records(handles):
    for name, h in handles.items():
        x, y = h.test_data()
        assert tuple(x.shape) == (360, 1, 32, 32)
        assert h.record["sha256"] and h.record["input"].startswith("digits upsampled to 32")
        assert h.evaluate()["accuracy"] == pytest.approx(h.record["test_accuracy"], abs=1e-6)
        assert h.record["test_accuracy"] >= 0.95


def test_shift_images_circular_and_linear_against_loops():
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6)
    for dx, dy in [(0, 0), (2, 1), (-3, 4), (5, -4)]:
        circ, lin = shift_images(x, dx, dy, "circular"), shift_images(x, dx, dy, "linear")
        for i in range(5):
            for j in range(6):
                assert circ[0, 0, i, j] == x[0, 0, (i - dy) % 5, (j - dx) % 6]
                src_i, src_j = i - dy, j - dx
                want = x[0, 0, src_i, src_j] if 0 <= src_i < 5 and 0 <= src_j < 6 else 0.0
                assert lin[0, 0, i, j] == want


def test_shift_set_all_and_random():
    assert len(shift_set("all", "circular", 4, 4)) == 16
    assert shift_set("all", "circular", 4, 4)[0] == (0, 0)
    assert len(shift_set("all", "linear", 32, 32)) == 81  # |dx|, |dy| <= 4
    picked = shift_set(10, "circular", 32, 32, seed=1)
    assert len(set(picked)) == 10 and picked[0] == (0, 0) and picked == shift_set(10, "circular", 32, 32, seed=1)


def test_aps_is_fully_consistent_under_circular_shifts_and_max_is_not(handles):
    aps = shift_consistency(handles["digits32-cnn-aps"], shifts=16, n_images=100)
    mx = shift_consistency(handles["digits32-cnn-max"], shifts=16, n_images=100)
    assert aps.loc[0, "consistency"] == 1.0
    assert aps.loc[0, "prob_change"] < 1e-6
    assert aps.loc[0, "min_accuracy"] == aps.loc[0, "accuracy"]
    assert mx.loc[0, "consistency"] < 1.0 and mx.loc[0, "prob_change"] > aps.loc[0, "prob_change"]
    per = shift_consistency(handles["digits32-cnn-max"], shifts=16, n_images=100, per_shift=True)
    assert len(per) == 16 and per.loc[0, "agreement"] == 1.0
    # per-shift agreement is 1 exactly where every image kept its class; consistency <= the worst agreement
    assert mx.loc[0, "consistency"] <= per["agreement"].min()


def test_linear_shifts_also_run(handles):
    df = shift_consistency(handles["digits32-cnn-aps"], shifts=[(1, 0), (0, -2)], mode="linear", n_images=50)
    assert df.loc[0, "n_shifts"] == 3 and 0.0 <= df.loc[0, "consistency"] <= 1.0


def test_shifted_probabilities_sum_to_one(handles):
    x, _ = handles["digits32-cnn-aps"].test_data()
    p = shifted_probabilities(handles["digits32-cnn-aps"].model, x[0], 3, -2)
    assert list(p["class"]) == list(range(10)) and p["probability"].sum() == pytest.approx(1.0)


def test_bad_shift_inputs(handles):
    x = torch.zeros(1, 1, 32, 32)
    with pytest.raises(ShapeError, match="larger than the image"):
        shift_images(x, 32, 0)
    with pytest.raises(ShapeError, match="larger than the image"):
        shift_consistency(handles["digits32-cnn-aps"], shifts=[(0, 40)], n_images=2)
    with pytest.raises(ShapeError, match="max_shift=32 is larger than the image"):
        shift_set("all", "linear", 32, 32, max_shift=32)
    with pytest.raises(DataError, match="mode"):
        shift_consistency(handles["digits32-cnn-aps"], mode="reflect")
    with pytest.raises(DataError, match="shifts"):
        shift_consistency(handles["digits32-cnn-aps"], shifts="some")
    with pytest.raises(DataError, match="between 1 and 1024"):
        shift_set(2000, "circular", 32, 32)
    with pytest.raises(ShapeError, match="image inputs"):
        shift_consistency(workbench.load_model("digits-mlp"))
