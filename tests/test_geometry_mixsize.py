"""Mix & Match: the size schedule, the batch/learning-rate rule, training through the one train loop, accuracy and
FLOPs per test size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.dynamics.train import train
from workbench.errors import DataError, ShapeError
from workbench.geometry import (
    accuracy_vs_size,
    batch_for_size,
    digits32,
    flops_per_image,
    geometry_handle,
    make_digits_cnn,
    mix_and_match,
    size_schedule,
)
from workbench.geometry.mixsize import _ScaledLoss


def test_batch_keeps_pixels_per_step():
    assert [batch_for_size(s) for s in (16, 24, 32, 40)] == [128, 57, 32, 20]
    plan = size_schedule((16, 24, 32, 40), 400, seed=0)
    assert set(plan["size"]) == {16, 24, 32, 40}
    assert (abs(plan["pixels"] / (32 * 32 * 32) - 1) < 0.03).all()  # within rounding of the batch (40: 20 × 1600)
    assert plan.equals(size_schedule((16, 24, 32, 40), 400, seed=0))
    only = size_schedule((16, 32), 50, probs=[0, 1])
    assert (only["size"] == 32).all()


def test_linear_rule_is_lr_times_batch_ratio():
    torch.manual_seed(0)
    logits, y = torch.randn(128, 10), torch.randint(0, 10, (128,))
    linear = _ScaledLoss("linear", 32)(logits, y)
    torch.testing.assert_close(linear, F.cross_entropy(logits, y) * 128 / 32)
    torch.testing.assert_close(_ScaledLoss("sqrt", 32)(logits, y), F.cross_entropy(logits, y) * 2.0)


def small_data():
    (xtr, ytr), (xte, yte) = digits32()
    return (xtr[:64], ytr[:64]), (xte[:32], yte[:32])


def test_train_batch_transform_hook_sees_every_step_and_changes_the_batch():
    seen = []

    def halve(x, y, step):
        seen.append((step, tuple(x.shape)))
        return F.interpolate(x, size=(16, 16)), y

    h = geometry_handle(make_digits_cnn("max", 32), name="t", data=small_data())
    r = train(h, batch_size=8, steps=3, progress=False, track_every=3, batch_transform=halve)
    assert [s for s, _ in seen] == [0, 1, 2] and all(shape == (8, 1, 32, 32) for _, shape in seen)
    assert r.config["batch_transform"] == "halve"
    with pytest.raises(DataError, match="batch_transform"):
        train(h, batch_size=8, steps=1, progress=False, batch_transform="resize")


def test_mix_and_match_follows_its_schedule_and_runs_at_every_size():
    data = small_data()
    res = mix_and_match((16, 32), steps=4, seed=2, data=data, base_batch=8)  # 4 × 8 images at size 16 ≤ 64
    assert list(res.schedule["step"]) == [0, 1, 2, 3] and res.train_result.steps == 4
    acc = accuracy_vs_size(res.model, (16, 24, 32, 40), data=data[1])
    assert list(acc["size"]) == [16, 24, 32, 40] and acc["accuracy"].between(0, 1).all()
    assert list(acc["flops"]) == [flops_per_image(res.model, s) for s in (16, 24, 32, 40)]
    assert acc["flops"].is_monotonic_increasing and acc["rel_flops"].iloc[-1] == 1.0


def test_bad_sizes():
    with pytest.raises(ShapeError, match="too small"):
        accuracy_vs_size(make_digits_cnn("max"), (4, 32))
    with pytest.raises(ShapeError, match="multiple of its total stride"):
        mix_and_match((20, 32), steps=1, pool="aps")
    with pytest.raises(DataError, match="lr_scaling"):
        mix_and_match((32,), steps=1, lr_scaling="cubic")
    with pytest.raises(DataError, match="probs"):
        size_schedule((16, 32), 5, probs=[1.0])
    with pytest.raises(DataError, match="sizes"):
        size_schedule((), 5)
    with pytest.raises(DataError, match="data"):
        geometry_handle(make_digits_cnn("max"), data=(torch.zeros(3, 64), torch.zeros(3)))


def test_recorded_notebook_table_matches_the_code_and_the_claims():
    """data/results/12_mix_and_match.json (what notebook 12 loads by default): its FLOPs are what the code counts
    for the architecture, and it holds the claims the notebook asserts (mixed beats fixed at 16×16)."""
    import json

    import pandas as pd

    from workbench.data import DATA_DIR
    from workbench.geometry import make_digits_cnn

    rec = json.loads((DATA_DIR / "results" / "12_mix_and_match.json").read_text(encoding="utf-8"))
    t = pd.DataFrame(rec["table"])
    assert rec["steps"] == 200 and 0 in rec["seeds"] and sorted(t["test_size"].unique()) == rec["test_sizes"]
    net = make_digits_cnn("max", seed=0)
    for s, g in t.groupby("test_size"):
        assert set(g["flops"]) == {flops_per_image(net, int(s))}
    at16 = t[(t["seed"] == 0) & (t["test_size"] == 16)].set_index("training")
    assert at16.loc["mixed", "accuracy"] > at16.loc["fixed", "accuracy"]
    assert at16.loc["mixed", "accuracy_bn"] > at16.loc["fixed", "accuracy_bn"]
