"""Metric figures and MetricView, headless: figures from the lab's tables, the view driven through its widgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.metric import compare_metrics, embedding_2d, fit_metric
from workbench.viz.metric import comparison_figure, embedding_figure, trace_figure
from workbench.widgets import LAB_VIEWS, load_view
from workbench.widgets.metric import MetricView


def _data():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    return rng.normal(size=(60, 3)) + y[:, None], y


def test_embedding_is_the_map_rows_or_pca_with_stable_signs():
    X, y = _data()
    L = np.array([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    df = embedding_2d(X, y, L)
    assert np.allclose(df["x"], 2 * X[:, 0]) and np.allclose(df["y"], 0.5 * X[:, 1])
    p = embedding_2d(X, y, np.eye(3))
    q = embedding_2d(X, y, -np.eye(3), reference=p[["x", "y"]].to_numpy())
    assert np.allclose(p[["x", "y"]], q[["x", "y"]])  # flipped axes are flipped back


def test_figures_draw_the_tables_and_redraw_in_place():
    X, y = _data()
    m = fit_metric(X, y, "free_energy", steps=200, block=20, progress=False)
    fig = embedding_figure(embedding_2d(X, y, m.L, basis="pca"))
    assert len(fig.data) == 3 and sum(len(t.x) for t in fig.data) == 60
    before = fig.data[0]
    embedding_figure(embedding_2d(X, y, np.eye(3), basis="pca"), fig=fig)
    assert fig.data[0] is before
    tf = trace_figure(m.trace)
    assert list(tf.data[0].y) == pytest.approx(m.trace["energy"].tolist())
    assert list(tf.data[2].y) == pytest.approx(m.trace["free_energy"].tolist())
    df = compare_metrics({"toy": (X, y)}, ["euclidean", "nca", "itml"], splits=2, progress=False)
    cf = comparison_figure(df)
    ok = df[df.status == "ok"]
    assert len(cf.data) == len(ok)
    if (df.status != "ok").any():
        assert "itml" in cf.layout.title.text


def test_view_is_registered_and_fits_headlessly():
    assert LAB_VIEWS["metric"] == ("workbench.widgets.metric", "MetricView")
    assert load_view("metric") is MetricView
    v = MetricView(None, sync=True, steps=200)
    v.dataset.value = "iris"
    v.run_button.click()
    assert v.error is None and v.metric is not None and v.metric.L.shape == (2, 4)
    assert len(v.scatter.data) == 3 and len(v.traces.data[0].x) == len(v.metric.trace)
    assert v.progress.value == 1.0 and "done" in v.status.value


def test_view_cancel_keeps_best_map_so_far():
    v = MetricView(None, steps=100_000)
    v.dataset.value = "wine"
    v.run_button.click()
    import time

    t0 = time.time()
    while not v._rows and time.time() - t0 < 30:
        time.sleep(0.05)
    v.cancel()
    assert v.wait(30)
    assert v.metric is not None and v.metric.cancelled
    assert "cancelled" in v.status.value
    v.runner.close()


def test_view_comparison_table():
    v = MetricView(None, sync=True, steps=100)
    v.dataset.value = "iris"
    v.compare_button.click()
    assert v.error is None
    assert set(v.table["method"]) == {"free_energy", "nca", "lmnn", "itml", "euclidean"}
    assert "accuracy_mean" in v.table_html.value and len(v.compare_fig.data) >= 3


def test_view_on_a_model_handle_uses_its_features_and_leaves_it_alone():
    import torch

    import workbench
    from workbench.metric import cnn_features
    from workbench.widgets.metric import _HANDLE

    h = workbench.load_model("digits-cnn")
    before = {k: v.clone() for k, v in h.model.state_dict().items()}
    v = MetricView(h, sync=True, steps=50)
    assert _HANDLE in v.dataset.options
    v.dataset.value = _HANDLE
    v.method.value = "euclidean"
    v.run_button.click()
    assert v.error is None and v.metric.L.shape == (2, 64)
    X, y = cnn_features(h, "int4")  # a format applied for the features and removed again
    assert X.shape == (360, 64) and len(y) == 360
    after = h.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not workbench.current_formats(h.model)
