"""train_zero_shot / compare_methods: the one train loop, the handle left alone, checks before any work."""

import copy

import numpy as np
import pytest
import torch

import workbench
from workbench.errors import DataError, NonFiniteError, ShapeError
from workbench.zeroshot import compare_methods, digits_attributes, train_zero_shot, zero_shot_metrics


def test_soft_label_network_scores_unseen_classes_and_leaves_the_handle_alone(digits_mlp):
    before = copy.deepcopy(digits_mlp.model.state_dict())
    r = train_zero_shot(digits_mlp, None, [2, 5, 8], "soft_labels", epochs=3, seed=1, unseen_mass=0.3)
    for k, v in digits_mlp.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert r.model is not digits_mlp.model and r.scores.shape == (360, 10)
    assert r.metrics == pytest.approx(dict(zero_shot_metrics(r.scores, r.y_test, r.split), ausuc=r.metrics["ausuc"]))
    assert r.metrics["seen"] > 0.5  # three epochs learn the seen digits
    # the unseen outputs were trained through the soft labels only: they carry probability on seen images
    probs = np.exp(r.scores)
    seen_rows = ~np.isin(r.y_test, [2, 5, 8])
    assert probs[seen_rows][:, [2, 5, 8]].sum(1).mean() > 0.05
    row = r.table.iloc[0]
    assert row.method == "soft_labels" and row.split == "unseen 2,5,8" and row.unseen_mass == 0.3
    # at unseen mass 0 the unseen outputs get no target: they fall to (near) zero probability
    hard = train_zero_shot(digits_mlp, None, [2, 5, 8], "soft_labels", epochs=3, seed=1, unseen_mass=0.0)
    assert np.exp(hard.scores)[seen_rows][:, [2, 5, 8]].sum(1).mean() < probs[seen_rows][:, [2, 5, 8]].sum(1).mean()


def test_compare_methods_one_row_per_method_split_seed(digits_mlp):
    c = compare_methods(digits_mlp, splits=[[1, 7], [0, 6]], seeds=(0,), methods=("dap", "eszsl"))
    assert len(c.runs) == 4 and set(c.table.method) == {"dap", "eszsl"}
    assert (c.table.runs == 2).all()
    for m in ("dap", "eszsl"):
        sub = c.runs[c.runs.method == m]
        assert c.table.set_index("method").loc[m, "H_mean"] == pytest.approx(sub.H.mean())
    curve = c.tradeoff()
    assert {"method", "split", "seed", "gamma", "seen", "unseen"} <= set(curve.columns)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(attributes=digits_attributes().iloc[:8]), ShapeError, "8 rows"),
    (dict(attributes=digits_attributes().assign(closed_loops=np.nan)), NonFiniteError, "NaN"),
    (dict(attributes=digits_attributes().assign(flat=0.5)), DataError, "constant"),
    (dict(split=[]), DataError, "empty"),
    (dict(split=list(range(10))), DataError, "every one"),
    (dict(temperature=0), DataError, "temperature"),
    (dict(unseen_mass=1.0), DataError, "unseen_mass"),
    (dict(method="knn"), DataError, "method"),
    (dict(features="pca"), DataError, "features"),
    (dict(epoch=3), DataError, "unknown settings"),
])
def test_bad_input_is_refused_before_training(digits_mlp, kwargs, error, words, monkeypatch):
    import importlib

    loop = importlib.import_module("workbench.dynamics.train")

    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("trained despite bad input"))
    kwargs = {"split": [2, 5, 8], **kwargs}
    with pytest.raises(error, match=words):
        train_zero_shot(digits_mlp, **kwargs)
