"""ZeroShotView and the zero-shot figures, driven headlessly."""

import numpy as np
import pandas as pd
import pytest

import workbench
from workbench.viz.zeroshot import digit_figure, metrics_table_figure, soft_label_figure, tradeoff_figure


def test_figures_from_frames():
    fig = soft_label_figure([0.7, 0, 0.2, 0, 0.1], 0, [2, 4])
    kinds = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert kinds["true class"] == {"0": 0.7} and kinds["unseen"] == {"2": 0.2, "4": 0.1}
    assert "0.30 on unseen" in fig.layout.title.text
    assert np.asarray(digit_figure(np.arange(64)).data[0].z).shape == (8, 8)
    curves = pd.DataFrame({"method": ["a"] * 3, "gamma": [-np.inf, 0.0, np.inf], "seen": [1, 0.8, 0],
                           "unseen": [0, 0.4, 1]})
    tf = tradeoff_figure(curves)
    assert tuple(tf.data[1].x) == (0.4,) and tuple(tf.data[1].y) == (0.8,)  # the γ = 0 marker
    table = pd.DataFrame({"method": ["a"], "zsl_mean": [0.5], "zsl_sd": [0.1], "runs": [2]})
    assert list(metrics_table_figure(table).data[0].cells.values[1]) == ["0.500 ± 0.100"]
    with pytest.raises(ValueError):
        tradeoff_figure(curves.iloc[:0])


def test_view_is_a_dashboard_tab_and_trains():
    from workbench.widgets import LAB_VIEWS, load_view
    from workbench.widgets.zeroshot import ZeroShotView

    assert LAB_VIEWS["zero-shot"] == ("workbench.widgets.zeroshot", "ZeroShotView")
    assert load_view("zero-shot") is ZeroShotView
    view = ZeroShotView(workbench.load_model("digits-mlp"), sync=True, quick=True)
    unseen = list(view.current_split.unseen)
    view.mass.value = 0.4
    assert view.soft_label[unseen].sum() == pytest.approx(0.4)
    bars = {t.name: t for t in view.bars.data}
    assert sum(bars["unseen"].y) == pytest.approx(0.4)
    view.mass.value = 0.0
    assert view.soft_label.max() == pytest.approx(1.0)
    view.mass.value = 0.3
    view.split.value = 1
    assert list(view.current_split.unseen) != unseen
    view.epochs.value = 1
    view.train_button.click()
    assert view.wait(120) and view.error is None
    assert set(view.comparison.runs.method) == {"soft_labels", "dap", "eszsl"}
    assert len(view.curve.data) == 6 and "soft_labels" in view.table.value
    assert view.progress.value == pytest.approx(1.0)
