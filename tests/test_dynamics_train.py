"""The training loop: a fresh copy, seeded, stoppable, the recipe's switches and their bad inputs."""

import copy
import threading

import numpy as np
import pytest
import torch

import workbench
from workbench.dynamics import (HadamardClassifier, batch_augment, compare_regimes, fix_hadamard_classifier, plan,
                                shift_and_noise, summarize_regimes, train)
from workbench.errors import DataError, LayerError


def test_trains_a_fresh_seeded_copy_and_leaves_the_handle_alone(digits_cnn):
    before = copy.deepcopy(digits_cnn.model.state_dict())
    a = train(digits_cnn, batch_size=32, steps=30, seed=3, progress=False, track_every=5, eval_every=0.5)
    b = train(digits_cnn, batch_size=32, steps=30, seed=3, progress=False, track_every=5, eval_every=0.5)
    for k, v in digits_cnn.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not digits_cnn.model.training
    assert a.model is not digits_cnn.model and a.steps == 30
    assert a.metrics.equals(a.metrics) and np.allclose(a.metrics.drop(columns="seconds"),
                                                       b.metrics.drop(columns="seconds"))
    assert a.distances.equals(b.distances)
    assert sorted(a.distances["step"].unique()) == list(range(0, 31, 5))
    # re-initialised from the architecture: the copy's start differs from the trained checkpoint
    fresh = train(digits_cnn, batch_size=32, steps=1, lr=1e-9, momentum=0.0, seed=3, progress=False)
    assert not torch.allclose(fresh.model.fc1.weight, digits_cnn.model.fc1.weight)
    # metrics per evaluation: step 0 and every half epoch (1437 / 32 ≈ 45 steps per epoch) and the end
    assert list(a.metrics["step"]) == [0, 23, 30] and a.metrics["test_acc"].iloc[-1] > 0.3
    assert a.metrics["train_loss"].iloc[-1] < a.metrics["train_loss"].iloc[0]


def test_distance_rows_match_the_trained_model(digits_cnn):
    res = train(digits_cnn, batch_size=64, steps=15, seed=0, progress=False, track_every=15, travelled=True)
    start = train(digits_cnn, batch_size=64, steps=1, lr=1e-30, momentum=0.0, seed=0, progress=False).model
    total = torch.sqrt(sum(((p.detach().double() - q.detach().double()) ** 2).sum()
                           for p, q in zip(res.model.parameters(), start.parameters())))
    final = res.distances.query("step == 15").set_index("layer")
    assert final.loc["total", "distance"] == pytest.approx(float(total), rel=1e-4)
    assert final.loc["total", "travelled"] >= final.loc["total", "distance"]


def test_stop_event_and_keyboard_interrupt_keep_what_was_recorded(digits_cnn):
    stop = threading.Event()
    seen = []

    def on_record(rows):
        seen.extend(rows)
        if rows[0]["step"] >= 7:
            stop.set()

    res = train(digits_cnn, batch_size=32, steps=500, track_every=1, stop=stop, on_record=on_record, progress=False)
    assert res.stopped and not res.interrupted and res.steps == 7
    assert res.distances["step"].max() == 7 and len(seen) == len(res.distances)
    assert res.metrics["step"].iloc[-1] == 7

    def interrupt(rows):
        if rows[0]["step"] == 5:
            raise KeyboardInterrupt

    res = train(digits_cnn, batch_size=32, steps=500, track_every=1, on_record=interrupt, progress=False)
    assert res.interrupted and res.steps == 5 and res.distances["step"].max() == 5
    assert len(res.metrics) >= 2


def test_recipe_plan():
    p = plan(512, 0.1, None, 10, 1437, "sqrt", 32, True)
    assert p["lr_effective"] == pytest.approx(0.1 * 4.0) and p["epochs_effective"] == pytest.approx(160)
    assert p["total_steps"] == int(np.ceil(160 * 1437 / 512))
    small = plan(32, 0.1, None, 10, 1437, None, 32, False)
    assert abs(p["total_steps"] - small["total_steps"]) <= 1  # regime adaptation matches the number of updates
    assert plan(128, 0.1, None, 1, 1437, "linear", 32, False)["lr_effective"] == pytest.approx(0.4)


def test_ghost_batch_and_switches_run(digits_cnn):
    res = train(digits_cnn, batch_size=64, steps=6, ghost_batch=16, lr_scaling="sqrt", batch_augmentation=2,
                hadamard_classifier=True, progress=False)
    assert type(res.model.bn1).__name__ == "GhostBatchNorm" and res.model.bn1.ghost_size == 16
    assert isinstance(res.model.fc2, HadamardClassifier)
    assert res.config["lr_effective"] == pytest.approx(0.05 * np.sqrt(2))
    assert "fc2" in set(res.distances["layer"])  # the learned scale is all that moves in the classifier


def test_hadamard_classifier_is_fixed_up_to_a_scale():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    assert fix_hadamard_classifier(model) == "2"
    clf = model[2]
    w = clf.weight.double()
    torch.testing.assert_close(w @ w.T, torch.eye(10, dtype=torch.float64))  # orthonormal rows
    assert set(torch.unique(w * 8).tolist()) == {-1.0, 1.0}
    fixed = clf.weight.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(torch.randn(32, 8)), torch.randint(0, 10, (32,))).backward()
    opt.step()
    assert torch.equal(clf.weight, fixed) and [n for n, _ in clf.named_parameters()] == ["scale"]
    x = torch.randn(4, 64)
    expected = clf.scale * (x / x.norm(dim=1, keepdim=True)) @ fixed.T
    torch.testing.assert_close(clf(x), expected)


def test_batch_augmentation_shifts_and_repeats():
    x = torch.zeros(3, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0
    g = torch.Generator().manual_seed(0)
    xa, ya = batch_augment(x, torch.tensor([0, 1, 2]), 4, g, noise=0.0)
    assert xa.shape == (12, 1, 8, 8) and ya.tolist() == [0, 1, 2] * 4
    pos = (xa[:, 0] == 1).nonzero()[:, 1:]
    assert ((pos - 4).abs() <= 1).all() and len(pos) == 12  # every copy keeps its pixel, moved by at most 1
    assert len({tuple(p.tolist()) for p in pos}) > 1  # copies differ
    flat = shift_and_noise(torch.rand(5, 64), torch.Generator().manual_seed(1))
    assert flat.shape == (5, 64) and flat.min() >= 0 and flat.max() <= 1


def test_bad_input(digits_cnn, digits_mlp):
    with pytest.raises(DataError, match="ghost_batch=48"):
        train(digits_cnn, batch_size=64, steps=1, ghost_batch=48, progress=False)
    with pytest.raises(DataError, match="ghost_batch=128"):
        train(digits_cnn, batch_size=64, steps=1, ghost_batch=128, progress=False)
    with pytest.raises(DataError, match="lr"):
        train(digits_cnn, lr=0.0, steps=1, progress=False)
    with pytest.raises(DataError, match="steps"):
        train(digits_cnn, steps=0, progress=False)
    with pytest.raises(DataError, match="epochs"):
        train(digits_cnn, epochs=-1, progress=False)
    with pytest.raises(DataError, match="regime_adaptation"):
        train(digits_cnn, steps=5, regime_adaptation=True, progress=False)
    with pytest.raises(DataError, match="lr_scaling"):
        train(digits_cnn, steps=5, lr_scaling="cubic", progress=False)
    with pytest.raises(LayerError, match="BatchNorm"):
        train(digits_mlp, batch_size=32, steps=1, ghost_batch=16, progress=False)


def test_compare_regimes_table(digits_cnn):
    runs = compare_regimes(digits_cnn, small_batch=32, large_batch=64, epochs=0.25, seeds=(0, 1),
                           regimes=("small", "large+LR+GBN+RA"), progress=False)
    assert len(runs) == 4 and set(runs["regime"]) == {"small", "large+LR+GBN+RA"}
    ra = runs[runs.regime == "large+LR+GBN+RA"]
    assert (ra["ghost_batch"] == 32).all() and np.allclose(ra["lr_effective"], 0.05 * np.sqrt(2))  # √(64/32)
    assert np.allclose(ra["steps"], runs[runs.regime == "small"]["steps"], atol=1)
    table = summarize_regimes(runs)
    assert list(table["regime"]) == ["small", "large+LR+GBN+RA"] and (table["seeds"] == 2).all()
    small = runs[runs.regime == "small"]["test_acc"]
    assert table.loc[0, "test_acc_mean"] == pytest.approx(small.mean())
    assert table.loc[0, "test_acc_std"] == pytest.approx(small.std(ddof=1))
    assert "±" in table.loc[0, "test_acc"]


def test_formats_on_the_handle_are_left_alone_and_the_copy_trains_dense(digits_cnn):
    from workbench.formats import apply, current_formats, restore

    before = {k: v.clone() for k, v in digits_cnn.model.state_dict().items()}
    apply(digits_cnn.model, "2:4")
    applied = current_formats(digits_cnn.model)
    try:
        x = digits_cnn.train_data()[0][:8]
        out = digits_cnn.model(x)
        res = train(digits_cnn, steps=3, progress=False)
        assert applied and current_formats(digits_cnn.model) == applied  # the handle keeps its formats
        assert torch.equal(digits_cnn.model(x), out)
        assert not current_formats(res.model)
        same = train(digits_cnn, steps=1, lr=1e-30, momentum=0.0, reinit=False, progress=False).model
        torch.testing.assert_close(same.fc1.weight, before["fc1.weight"])  # the dense original, not the masked one
        assert set(res.distances["layer"]) == {"conv1", "bn1", "conv2", "bn2", "fc1", "fc2", "total"}
    finally:
        restore(digits_cnn.model)
    for k, v in digits_cnn.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_loss_fn_hook_replaces_the_batch_loss_only(digits_mlp):
    import torch.nn.functional as F

    calls = []

    def ce(logits, labels):
        calls.append(len(labels))
        return F.cross_entropy(logits, labels)

    a = train(digits_mlp, batch_size=16, steps=5, seed=1, progress=False, track_every=5)
    b = train(digits_mlp, batch_size=16, steps=5, seed=1, progress=False, track_every=5, loss_fn=ce)
    assert calls == [16] * 5
    assert np.allclose(a.metrics.drop(columns="seconds"), b.metrics.drop(columns="seconds"))
    # a different loss trains a different model; evaluation stays cross-entropy against the labels
    c = train(digits_mlp, batch_size=16, steps=5, seed=1, progress=False, track_every=5,
              loss_fn=lambda z, y: F.cross_entropy(z, y, label_smoothing=0.5))
    assert not torch.allclose(c.model.fc3.weight, a.model.fc3.weight)
    with pytest.raises(DataError, match="loss_fn"):
        train(digits_mlp, batch_size=16, steps=5, progress=False, loss_fn="ce")
