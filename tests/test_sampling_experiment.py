"""The sampling lab's experiments: the comparison table, time to accuracy, the sketch-error curve, the data."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.errors import DataError, OptionError
from workbench.sampling import (
    compare_samplers,
    sampling_handle,
    sketch_error,
    sketch_vs_exact,
    static_scores,
    tabular_split,
    time_to_accuracy,
)


def test_compare_samplers_on_wine():
    c = compare_samplers("wine", samplers=("uniform", "nw_sketch", "loss"), seeds=(0,), epochs=1, eval_every=0.5)
    assert set(c.table.sampler) == {"uniform", "nw_sketch", "loss"}
    assert {"seed", "step", "train_seconds", "test_acc"} <= set(c.table.columns)
    assert c.table.groupby("sampler").step.max().to_dict() == c.costs.set_index("sampler").steps.to_dict()
    assert (c.costs.sampler_seconds > 0).all() and (c.costs.fraction < 1).all()
    # the training time without evaluation is below the wall time with it, and grows
    assert (c.table.train_seconds <= c.table.seconds + 1e-9).all()
    snap = c.snapshots[c.snapshots.sampler == "nw_sketch"]
    assert len(snap) == 3 and all(abs(w.sum() - 1) < 1e-9 for w in snap.weights)
    tta = c.time_to_accuracy()
    assert tta.set_index("sampler").loc["uniform", "seconds_vs_uniform"] == 1.0
    with pytest.raises(OptionError, match="'nw_sketch'"):
        compare_samplers("wine", samplers=("fancy",))
    with pytest.raises(OptionError, match="'digits-mlp'"):
        compare_samplers("mnist")


def test_time_to_accuracy_from_a_table():
    rows = []
    for sampler, accs in {"uniform": [0.5, 0.7, 0.8], "fast": [0.6, 0.85, 0.9], "never": [0.1, 0.2, 0.3]}.items():
        for step, acc in enumerate(accs):
            rows.append({"sampler": sampler, "seed": 0, "step": step * 10, "train_seconds": step * 2.0,
                         "test_acc": acc})
    t = time_to_accuracy(pd.DataFrame(rows)).set_index("sampler")
    assert t.loc["uniform", "target"] == 0.8 and t.loc["uniform", "steps"] == 20
    assert t.loc["fast", "steps"] == 10 and t.loc["fast", "seconds_vs_uniform"] == 0.5
    assert t.loc["never", "reached"] == "0/1" and np.isnan(t.loc["never", "seconds"])
    with pytest.raises(DataError, match="uniform"):
        time_to_accuracy(pd.DataFrame(rows[3:]))


def test_sketch_error_falls_with_tables_on_given_losses():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=gen)
    losses = torch.rand(300, generator=gen, dtype=torch.float64) + x[:, 0].double().abs()
    df = sketch_error(tables=(1, 8, 64), losses=(x, losses), hash_seeds=range(3), K=3)
    curve = df.groupby("L").mean_rel_error.mean()
    assert curve[1] > curve[8] > curve[64]
    one = sketch_vs_exact(x, losses, K=3, L=4)
    assert list(one.columns) == ["index", "loss", "exact", "sketch"] and len(one) == 300


def test_tabular_data_and_static_scores():
    (xtr, ytr), (xte, yte) = tabular_split("wine")
    assert xtr.shape == (142, 13) and xte.shape == (36, 13) and abs(float(xtr.mean())) < 1e-5
    h = sampling_handle("breast-cancer")
    assert h.train_data()[0].shape == (455, 30) and "breast-cancer" in h.notes
    s = static_scores(xtr, ytr, seed=0)
    assert s.shape == (142,) and (s >= 0).all()
    # the proxy's loss is higher on average for samples the proxy misclassifies out-of-fold
    assert s.max() > 5 * np.median(s)
    with pytest.raises(DataError, match="folds=5 needs at least 5"):
        static_scores(xtr[:6], ytr[:6])


def test_compare_samplers_checks_stop_before_any_work():
    class Untouchable:
        name = "untouchable"

        def train_data(self):
            raise AssertionError("work started before stop= was checked")

    with pytest.raises(DataError, match="stop must be None, a callable or a threading.Event, got int"):
        compare_samplers(Untouchable(), samplers=("uniform",), seeds=(0,), stop=3)
    import threading

    ev = threading.Event()
    ev.set()  # an event already set: no sampler runs
    c = compare_samplers("wine", samplers=("uniform",), seeds=(0,), epochs=1, stop=ev)
    assert c.table.empty and c.costs.empty
