"""Graph-lab figures from the analysis tables, and GraphsView driven headlessly through its controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.graphs import accuracy_table, layout_tables, memory_scaling, node_classification, node_predictions
from workbench.viz.graphs import accuracy_table_figure, graph_figure, memory_figure


def test_graph_figure_colours_nodes_by_prediction():
    preds = node_predictions("karate", method="label_propagation")
    nodes, edges = layout_tables("karate", preds)
    assert len(nodes) == 34 and len(edges) == 78
    fig = graph_figure(nodes, edges)
    node_traces = fig.data[1:]
    assert sum(len(t.x) for t in node_traces) == 34
    for t in node_traces:  # each trace holds exactly the nodes predicted as its class
        cls = t.name.split(": ", 1)[1]
        assert len(t.x) == int((preds.prediction == cls).sum())
    assert sum(v is None for v in fig.data[0].x) == 78  # one separator per edge
    wrong_test = int((~preds.correct & ~preds.train).sum())
    assert sum(w == 3 for t in node_traces for w in t.marker.line.width) == wrong_test


def test_memory_figure_shows_refused_dense_sizes_at_their_estimate():
    df = memory_scaling([300, 600, 1200], hops=2, threshold=0.01, dense_limit=10 * 2**20)
    fig = memory_figure(df, available_bytes=10 * 2**20)
    names = [t.name for t in fig.data]
    assert "dense: refused (estimate)" in names and "memory available" in names
    refused = fig.data[names.index("dense: refused (estimate)")]
    assert list(refused.x) == [1200] and refused.y[0] == pytest.approx((3 * 1200**2 + 1200 * 3 * 16) * 4 / 2**30)
    thr = fig.data[[n.startswith("thresholded") for n in names].index(True)]
    assert list(thr.x) == [300, 600, 1200]


def test_accuracy_table_figure_has_one_row_per_method():
    df = node_classification("florentine", method=["label_propagation", "logistic"], splits=2)
    fig = accuracy_table_figure(accuracy_table(df))
    assert list(fig.data[0].cells.values[1]) == ["label_propagation", "logistic"]


def test_view_accepts_a_handle_and_redraws_on_slider_changes():
    from workbench.widgets import LAB_VIEWS, load_view
    from workbench.widgets.graphs import GraphsView

    assert LAB_VIEWS["graphs"] == ("workbench.widgets.graphs", "GraphsView") and load_view("graphs") is GraphsView
    view = GraphsView(object(), graph="florentine", sync=True, memory_sizes=(200, 600), dense_limit=2 * 2**20,
                      splits=2, epochs=3)
    fig = view.graph_fig
    assert len(view.nodes) == 15 and "test accuracy" in view.status.value
    assert "label_propagation" in view.table_html.value
    view.hops.value = 0  # H = 0: the DCNN sees only the node's own one-hot features
    assert view.nodes.attrs["hops"] == 0 and view.graph_fig is fig
    view.dense.value = True
    assert view.nodes.attrs["form"] == "dense" and view.threshold.disabled
    view.graph.value = "karate"
    assert len(view.nodes) == 34
    view.hops.value = 2
    view.memory_button.click()
    s = view.scaling.set_index(["form", "n_nodes"])
    assert set(view.scaling.form) == {"dense", "thresholded"} and not view.memory_button.disabled
    assert s.loc[("dense", 600), "refused"] and not s.loc[("dense", 200), "refused"]  # 4.3 MB > 2 MiB > 0.5 MB
    assert "dense refused at N ≥ 600" in view.memory_status.value
    assert len(view.memory_fig.data) == 4  # dense, dense refused, thresholded, budget line
    from workbench.widgets.plot import PLOTLY_MIME  # the restored widget state is the latest figure

    (out,) = view.graph_fig.ui.get_state()["outputs"]
    assert out["data"][PLOTLY_MIME]["layout"]["title"]["text"].startswith("karate:")
    (out,) = view.memory_fig.ui.get_state()["outputs"]
    assert len(out["data"][PLOTLY_MIME]["data"]) == 4
    view.close()
