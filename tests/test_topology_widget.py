"""Topology figures and TopologyView, headless: figures built from the analysis tables, widget driven by clicks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.topology import connection_table, nnstd, nnstd_matrix, train_set_runs
from workbench.viz.topology import connections_figure, nnstd_epochs_figure, nnstd_heatmap
from workbench.widgets.topology import TopologyView


def _nets(rng, k=3):
    return [[(rng.random((6, 8)) < 0.4).astype(int), (rng.random((3, 6)) < 0.5).astype(int)] for _ in range(k)]


def test_heatmap_is_the_mean_matrix_with_accuracy_labels():
    nets = _nets(np.random.default_rng(0))
    df = nnstd_matrix(nets, names=["a", "b", "c"])
    fig = nnstd_heatmap(df, {"a": 0.9, "b": 0.95, "c": 0.5})
    z = np.array(fig.data[0].z)
    assert z.shape == (3, 3) and np.allclose(z, z.T) and np.allclose(np.diag(z), 0)
    assert z[0, 1] == pytest.approx(nnstd(nets[0], nets[1]).mean)
    assert list(fig.data[0].x) == ["a (90.0%)", "b (95.0%)", "c (50.0%)"]


def test_epochs_figure_one_line_per_layer_with_range():
    df = pd.DataFrame(dict(epoch=[0, 0, 1, 1, 0, 0, 1, 1], layer=[0, 0, 0, 0, 1, 1, 1, 1],
                           name=["l0"] * 4 + ["l1"] * 4, distance=[0.1, 0.3, 0.2, 0.4, 0.5, 0.5, 0.6, 0.8]))
    fig = nnstd_epochs_figure(df)
    assert len(fig.data) == 2
    assert list(fig.data[0].y) == pytest.approx([0.2, 0.3])
    assert list(fig.data[1].error_y.array) == pytest.approx([0.0, 0.1])


def test_connections_figure_draws_every_edge_and_neuron():
    masks = [np.array([[1, 0, 1], [0, 1, 0]]), np.array([[1, 1]])]
    ct = connection_table(masks)
    fig = connections_figure(ct)
    grey = fig.data[2]
    assert sum(v is None for v in grey.x) == 5  # one separator per edge (3 + 2 edges)
    assert len(fig.data[3].x) == 3 + 2 + 1
    # redraw into the same figure keeps the trace objects
    before = fig.data[3]
    connections_figure(ct, fig=fig)
    assert fig.data[3] is before


def test_view_accepts_handle_and_trains_on_click():
    view = TopologyView(object())  # the dashboard passes a ModelHandle first: ignored
    assert view.nets == [] and "no networks" in view.status.value
    heat, epochs, conns = view.heatmap, view.over_epochs, view.connections
    view.n_nets.value, view.hidden.value, view.epochs.value = 2, 12, 2
    view.train_button.click()
    assert len(view.runs) == 2 and view.heatmap is heat and view.over_epochs is epochs and view.connections is conns
    z = np.array(view.heatmap.data[0].z)
    assert z.shape == (2, 2) and z[0, 1] > 0
    assert "test_accuracy" in view.table.value
    # per-layer over epochs: starts at 0 (shared initial topology), 3 layers
    assert len(view.over_epochs.data) == 3 and view.over_epochs.data[0].y[0] == 0
    view.against.value = "init"
    assert view.epochs_df.b.str.endswith("@0").all()
    assert view.picked.value == "seed 0" and len(view.connections.data) == 4
    view.picked.value = "seed 1"
    assert "seed 1" in view.connections.layout.title.text


def test_view_with_given_nets_and_accuracies():
    nets = _nets(np.random.default_rng(1), 3)
    view = TopologyView(nets, accuracies=[0.8, 0.9, 0.7])
    assert "80.0%" in view.heatmap.data[0].x[0]
    assert view.runs == [] and len(view.over_epochs.data) == 0
    bad = TopologyView([nets[0], [np.ones((6, 8), int)]])
    assert "cannot compare" in bad.status.value
