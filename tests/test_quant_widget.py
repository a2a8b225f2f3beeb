"""QuantErrorView headless: set values, check the figures and the allocation they produce."""

from __future__ import annotations

import numpy as np
import pytest

import workbench.models as wm
from workbench.formats import current_formats
from workbench.viz.quant import frontier_plot, number_line, training_curves
from workbench.widgets.quant import QuantErrorView


@pytest.fixture(scope="module")
def view():
    return QuantErrorView(wm.load_model("digits-mlp"), formats=["int8", "int4", "binary"])


def test_heatmap_and_bar(view) -> None:
    hm = view.heatmap.data[0]
    assert list(hm.x) == ["int8", "int4", "binary"] and list(hm.y) == ["fc1", "fc2", "fc3"]
    z = np.array(hm.z, dtype=float)
    assert (z[:, 0] > z[:, 1]).all() and (z[:, 1] > z[:, 2]).all()  # int8 > int4 > binary SQNR
    view.fmt.value = "int4"
    assert view.bar.data[0].name == "int4"
    assert list(view.bar.data[0].y) == pytest.approx(list(z[:, 1]))
    view.mode.value = "cumulative"
    zc = np.array(view.heatmap.data[0].z, dtype=float)
    assert zc[-1, 1] <= z[-1, 1] + 1e-9  # cumulative error on the last layer is at least the isolated one
    view.metric.value = "weight_sqnr_db"
    assert view.heatmap.data[0].colorbar.title.text == "weight sqnr db"
    assert current_formats(view.handle.model) == {}


def test_histogram_grid(view) -> None:
    view.fmt.value = "int4"
    view.layer.value = "fc2"
    bars, grid = view.hist.data
    ticks = np.array([v for v in grid.x if v is not None and not np.isnan(v)])
    assert len(np.unique(ticks)) == 15  # int4: 15 values ±7·scale, all inside the weights' range
    w = view.handle.model.fc2.weight.detach().abs().max().item()
    assert np.abs(ticks).max() == pytest.approx(w, rel=1e-5)
    assert sum(bars.y) == view.handle.model.fc2.weight.numel()


def test_budget_slider_resolves(view) -> None:
    view.budget.value = view.budget.min
    assert set(view.allocation.assignment.values()) == {"binary"}
    view.budget.value = view.budget.max
    # with every size allowed, each layer takes its own smallest ΔL
    best = view.sens.groupby("layer")["delta_loss"].min().sum()
    assert view.allocation.predicted_delta == pytest.approx(best)
    mid = (view.budget.min + view.budget.max) / 2
    view.budget.value = mid
    assert view.allocation.size_bytes <= mid
    assert sum(sum(t.y) for t in view.alloc_fig.data) == pytest.approx(view.allocation.size_bytes)
    assert "predicted loss" in view.status.value


def test_other_figures() -> None:
    import pandas as pd

    f = number_line({"a": np.array([-1.0, 0.0, 0.5, 1.0])})
    assert list(f.data[0].x) == [0.5, 1.0]
    h = pd.DataFrame({"epoch": [1, 2], "test_accuracy": [0.5, 0.9]})
    assert list(training_curves({"bin": h}).data[0].y) == [0.5, 0.9]
    fr = pd.DataFrame({"kind": ["allocated", "allocated", "uniform"], "size_bytes": [2, 1, 3],
                       "predicted_loss": [0.1, 0.2, 0.05], "assignment": [{}, {}, "int8"]})
    fig = frontier_plot(fr)
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[-1].text) == ["int8"]
