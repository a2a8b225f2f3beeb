"""The large-outputs lab's data and experiment functions: seeded synthetic power-law data, the docstring next-token
corpus, tidy training rows through the one train loop, speedup tables and step costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.errors import DataError, OptionError
from workbench.hashing.large_outputs import (COLUMNS, XCModel, make_output_layer, speedups, step_costs,
                                             train_output_layer)
from workbench.hashing.softmax import LSHSoftmax
from workbench.hashing.xc import docstring_tokens, power_law, synthetic_xc


def test_synthetic_xc_is_seeded_power_law_and_learnable_shape():
    a, b = synthetic_xc(500, 20_000, 100, seed=3), synthetic_xc(500, 20_000, 100, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.synthetic and a.x_train.shape == (20_000, 8) and int(a.y_train.max()) < 500
    counts = np.sort(a.class_counts.numpy())[::-1] / 20_000
    p = power_law(500, 1.0)
    assert abs(counts[0] - p[0]) < 0.01 and abs(counts[9] - p[9]) < 0.005
    assert not torch.equal(synthetic_xc(500, 200, 10, seed=4).y_train, a.y_train[:200])
    with pytest.raises(DataError, match="n_classes"):
        synthetic_xc(1)


def test_docstring_tokens_builds_and_caches_the_real_task(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    d = docstring_tokens(context=4, max_chars=20_000, packages=("numpy",))
    assert not d.synthetic and d.n_classes == 30_522 and d.x_train.shape[1] == 4
    assert len(d.y_train) > 1000 and int(d.y_train.max()) < 30_522
    assert list(tmp_path.glob("xc/docstrings-*.pt"))
    again = docstring_tokens(context=4, max_chars=20_000, packages=("numpy",))
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)
    # the label is the token after the context window: windows overlap by one shift within a docstring
    assert bool((d.x_train[1:, :-1] == d.x_train[:-1, 1:]).float().mean() > 0.9)


def test_make_output_layer_names():
    assert make_output_layer("dense", 4, 10).sampler == "full"
    assert make_output_layer("lsh", 4, 10, negatives=3).sampler == "lsh"
    with pytest.raises(OptionError, match="kind"):
        make_output_layer("sparse", 4, 10)
    try:
        import workbench.hashing.slide  # noqa: F401
    except ImportError:
        from workbench.errors import UnavailableError

        with pytest.raises(UnavailableError, match="HashedSparseLinear"):
            make_output_layer("hashed", 4, 10)


def test_train_output_layer_rows_and_learning():
    data = synthetic_xc(200, 3000, 300, seed=0, noise=0.1)
    table = train_output_layer(data, "lsh", hidden=16, epochs=2, batch_size=100, negatives=16, K=4, L=4,
                               rebuild_every=20, eval_samples=300, lr=1.0)
    assert list(table.columns) == COLUMNS
    assert table["epoch"].round().tolist() == [0, 1, 2]
    assert (table["kind"] == "lsh").all() and (table["width"] == 200).all()
    majority = float(data.y_test.eq(torch.mode(data.y_train).values).float().mean())
    assert table["p_at_1"].iloc[-1] > majority + 0.1  # it learns beyond the majority class
    assert table["rebuilds"].iloc[-1] >= 3
    assert (table["seconds"].iloc[1:] > 0).all()
    assert table["active_fraction"].iloc[-1] == pytest.approx(16 / 199)


def test_full_and_sampled_models_forward_exact_logits():
    head = LSHSoftmax(8, 50, sampler="uniform", negatives=5)
    model = XCModel(100, 8, head)
    x = torch.randint(0, 100, (3, 4))
    assert torch.allclose(model(x), torch.tanh(model.encoder(x)) @ head.weight.T + head.bias)


def test_speedups_ratios_against_full_of_the_same_width():
    rows = []
    for kind, sec, p in (("full", 10.0, 0.5), ("lsh", 2.0, 0.49)):
        for epoch in (0, 1, 2):
            rows.append({"width": 100, "kind": kind, "epoch": epoch, "step": epoch * 10,
                         "seconds": sec if epoch else 0.0, "seconds_per_step": sec / 10, "p_at_1": p,
                         "active_fraction": 0.1, "peak_rss_mb": 1.0})
    out = speedups(pd.DataFrame(rows)).set_index("kind")
    assert out.loc["lsh", "speedup"] == pytest.approx(5.0)
    assert out.loc["lsh", "p_at_1_gap"] == pytest.approx(1.0)
    with pytest.raises(DataError):
        speedups(pd.DataFrame(columns=rows[0].keys()))


def test_step_costs_table():
    out = step_costs((100, 400), ("full", "lsh"), hidden=8, batch_size=16, negatives=8, K=3, L=2, repeats=1)
    assert set(out["kind"]) == {"full", "lsh"} and len(out) == 4
    assert (out["seconds_per_step"] > 0).all()
    assert (out.loc[out["kind"] == "full", "ratio"] == 1).all()
    assert (out.loc[out["kind"] == "lsh", "rebuild_seconds"] > 0).all()
