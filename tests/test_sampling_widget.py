"""SamplingView and the sampling figures, driven headlessly."""

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataError

from workbench.viz.sampling import (
    accuracy_time_figure,
    favoured_figure,
    sketch_error_figure,
    sketch_scatter_figure,
    weight_histogram_figure,
)


def test_figures_from_frames():
    frame = pd.DataFrame({"index": [3, 9], "weight": [0.4, 0.1], "label": [1, 2],
                          "pixels": [np.arange(64.0), np.ones(64)]})
    fig = favoured_figure(frame)
    assert len(fig.data) == 2 and fig.data[0].dx == 4 and fig.data[1].dx == 2  # sized by weight, heaviest first
    assert "sample 3" in fig.data[0].hovertemplate
    bars = favoured_figure(frame.drop(columns="pixels"))
    assert list(bars.data[0].y) == [0.4, 0.1]
    snaps = pd.DataFrame({"step": [0, 10], "weights": [np.full(4, 0.25), np.array([0.1, 0.1, 0.4, 0.4])]})
    h = weight_histogram_figure(snaps, bins=5)
    z = np.asarray(h.data[0].z)
    assert z.shape == (5, 2) and np.allclose(z.sum(0), 1)
    sc = sketch_scatter_figure(pd.DataFrame({"exact": [1.0, 2.0], "sketch": [1.1, 1.8]}))
    assert "0.100" in sc.layout.title.text
    table = pd.DataFrame({"sampler": ["uniform"] * 2 + ["nw_sketch"] * 2, "seed": [0, 0, 0, 0], "step": [0, 5] * 2,
                          "train_seconds": [0, 1, 0, 0.5], "test_acc": [0.1, 0.8, 0.1, 0.9]})
    a = accuracy_time_figure(table, target=0.8)
    assert {t.name for t in a.data} == {"uniform", "nw_sketch"} and a.layout.shapes[0].y0 == 0.8
    e = sketch_error_figure(pd.DataFrame({"L": [1, 4, 1, 4], "mean_rel_error": [0.4, 0.2, 0.6, 0.2]}))
    assert list(e.data[0].y) == [0.5, 0.2]
    with pytest.raises(DataError, match="favoured_figure: empty frame"):
        favoured_figure(frame.iloc[:0])


def test_view_is_a_dashboard_tab_and_trains():
    import workbench
    from workbench.widgets import LAB_VIEWS, load_view
    from workbench.widgets.sampling import SamplingView

    assert LAB_VIEWS["sampling"] == ("workbench.widgets.sampling", "SamplingView")
    assert load_view("sampling") is SamplingView
    view = SamplingView(workbench.load_model("digits-mlp"), sync=True, quick=True, top=6)
    view.samplers.value = ("uniform", "nw_sketch")
    view.epochs.value = 0.2
    view.tables.value = 8
    view.train_button.click()
    assert view.wait(120) and view.error is None, view.error
    assert set(view.comparison.table.sampler) == {"uniform", "nw_sketch"}
    assert view.comparison.samplers[("nw_sketch", 0)].L == 8
    assert len(view.favoured.data) == 6 and "nw_sketch" in view.favoured.layout.title.text
    assert len(view.scatter.data[0].x) == 1437 and len(view.accuracy.data) == 2
    assert "seconds_vs_uniform" in view.table.value
    view.show.value = "uniform"
    assert "uniform" in view.histogram.layout.title.text
    # the plots are PlotViews: the widget state a reloaded page restores is the latest figure, not the empty one
    from workbench.widgets.plot import PLOTLY_MIME

    (out,) = view.histogram.ui.get_state()["outputs"]
    assert out["data"][PLOTLY_MIME]["layout"]["title"]["text"].startswith("uniform:")
    (out,) = view.accuracy.ui.get_state()["outputs"]
    assert {t["name"] for t in out["data"][PLOTLY_MIME]["data"]} == {"uniform", "nw_sketch"}


def test_view_falls_back_for_a_handle_without_labels():
    from workbench.widgets.sampling import SamplingView

    class NoData:
        name = "nothing"

        def train_data(self):
            raise AttributeError("no data")

    view = SamplingView(NoData(), sync=True, quick=True)
    assert view.handle.name == "digits-mlp" and "using digits-mlp" in view.status.value
