"""GeometryView headlessly: the shift sliders redraw live, training fills the size table, the tab is registered;
and the figures of workbench.viz.geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataError

from workbench.viz.geometry import (
    consistency_figure,
    image_figure,
    polyphase_figure,
    probabilities_figure,
    shift_map_figure,
    size_accuracy_figure,
)


def test_registered_as_a_lab_view():
    from workbench.widgets import LAB_VIEWS, load_view

    assert LAB_VIEWS["geometry"] == ("workbench.widgets.geometry", "GeometryView")
    assert load_view("geometry").__name__ == "GeometryView"


def test_shift_sliders_update_the_probabilities_and_aps_does_not_move():
    from workbench.widgets.geometry import GeometryView

    view = GeometryView("digits32-cnn-aps", quick=True, sync=True)
    before = view.current.copy()
    assert set(before["model"]) == {"digits32-cnn-max", "digits32-cnn-blur", "digits32-cnn-aps"}
    view.dx.value = 3
    view.dy.value = -5
    after = view.current
    aps0 = before[before["model"] == "digits32-cnn-aps"]["probability"].to_numpy()
    aps1 = after[after["model"] == "digits32-cnn-aps"]["probability"].to_numpy()
    np.testing.assert_allclose(aps1, aps0, atol=1e-6)  # circular shift: APS output unchanged
    mx0 = before[before["model"] == "digits32-cnn-max"]["probability"].to_numpy()
    mx1 = after[after["model"] == "digits32-cnn-max"]["probability"].to_numpy()
    assert np.abs(mx1 - mx0).max() > 1e-6  # the max-pool model's probabilities move
    assert "shifted (3, -5)" in view.image.layout.title.text
    assert len(view.bars.data) == 3


def test_train_fills_the_size_table_and_the_slider_reads_it(monkeypatch):
    import workbench.widgets.geometry as wg
    from workbench.geometry import MixResult, make_digits_cnn
    from workbench.widgets.geometry import TEST_SIZES, GeometryView

    calls = []

    def fake_mix_and_match(sizes, steps, seed=0, stop=None):  # the training itself is tested in test_geometry_mixsize
        calls.append((tuple(sizes), steps))
        return MixResult(model=make_digits_cnn("max", seed=len(calls)).eval(), schedule=None, train_result=None)

    monkeypatch.setattr(wg, "mix_and_match", fake_mix_and_match)
    view = GeometryView(None, quick=True, sync=True)
    view.steps.value = 3
    view.train_button.click()
    assert view.wait(120) and view.error is None
    assert calls == [((32,), 3), ((16, 24, 32, 40), 3)]
    t = view.sizes_table
    assert set(t["training"]) == {"fixed", "mixed"} and sorted(set(t["test_size"])) == list(TEST_SIZES)
    view.test_size.value = 16
    row = t[(t["training"] == "mixed") & (t["test_size"] == 16)].iloc[0]
    assert f"{row['accuracy']:.3f}" in view.size_readout.value
    assert len(view.curve.data) == 2


def test_figures_take_tidy_frames():
    assert image_figure(np.zeros((4, 4))).data[0].z.shape == (4, 4)
    assert "★ APS" in "".join(a.text for a in polyphase_figure(np.random.rand(4, 3, 3)).layout.annotations)
    probs = pd.DataFrame({"model": ["a"] * 10 + ["b"] * 10, "class": list(range(10)) * 2,
                          "probability": [0.1] * 20})
    assert len(probabilities_figure(probs).data) == 2
    summ = pd.DataFrame({"model": ["a", "b"], "mode": ["circular"] * 2, "consistency": [1.0, 0.8],
                         "accuracy": [0.99, 0.98]})
    assert len(consistency_figure(summ).data) == 2
    per = pd.DataFrame({"dx": [0, 1, 0, 1], "dy": [0, 0, 1, 1], "agreement": [1, 0.9, 0.8, 1.0]})
    assert shift_map_figure(per).data[0].z.shape == (2, 2)
    sizes = pd.DataFrame({"training": ["fixed", "fixed", "mixed", "mixed"], "test_size": [16, 32, 16, 32],
                          "accuracy_mean": [0.5, 0.9, 0.8, 0.9], "accuracy_sd": [0.1, 0.0, 0.05, 0.01]})
    assert len(size_accuracy_figure(sizes).data) == 2
    with pytest.raises(DataError, match="columns"):
        size_accuracy_figure(pd.DataFrame({"x": [1]}))
