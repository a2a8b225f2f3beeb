"""The sparse training view: trains through the runner, shows the frames, the curves and the status; figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

import workbench as wb
from workbench.viz.sparse_training import accuracy_vs_sparsity_figure, mask_frames_figure
from workbench.widgets import LAB_VIEWS, load_view


def test_view_is_registered_and_trains_headless() -> None:
    assert "sparse training" in LAB_VIEWS
    View = load_view("sparse training")
    h = wb.load_model("digits-gru")
    before = {k: v.clone() for k, v in h.model.state_dict().items()}
    view = View(h, quick=True, sync=True)
    view.steps.value = 12
    view.structure.value = "block8x8@80%"
    view.method.value = "augmented"
    view._on_train()
    assert view.wait(60) and view.error is None and view.result is not None
    assert abs(view.result.sparsity - 0.8) < 0.01 and "sparsity" in view.status.value
    assert len(view.accuracy.data) == 1 and len(view.search.data) == 2
    last = view.mask.figure
    assert f"step {int(view.result.frames.step.iloc[-1])}" in last.layout.title.text
    view.frame.value = 0  # the frame slider re-shows the mask of that recorded step
    assert view.mask.figure is not last and "at step 0 " in view.mask.layout.title.text
    first = view.result.frames["mask"].iloc[0]  # the heatmap pools big masks: the density stays
    assert np.isclose(np.asarray(view.mask.data[0].z).mean(), first.mean())
    shown = view.mask.ui.outputs[-1]["data"]["application/vnd.plotly.v1+json"]
    assert shown["layout"]["title"]["text"] == view.mask.layout.title.text
    after = h.model.state_dict()
    assert all((before[k] == after[k]).all() for k in before)  # the handle's model is untouched


def test_mask_frames_figure_has_a_slider_frame_per_step() -> None:
    frames = pd.DataFrame({"step": [0, 5], "layer": ["a", "a"],
                           "mask": [np.ones((4, 8), bool), np.eye(4, 8, dtype=bool)]})
    fig = mask_frames_figure(frames)
    assert len(fig.frames) == 2 and len(fig.layout.sliders[0].steps) == 2
    assert np.array_equal(np.asarray(fig.frames[1].data[0].z), np.eye(4, 8))
    one = mask_frames_figure(frames, fig=fig, index=0)  # drawn into the same figure: frames and slider go
    assert one is fig and len(fig.frames) == 0 and not fig.layout.sliders
    assert np.array_equal(np.asarray(fig.data[0].z), np.ones((4, 8)))
    again = mask_frames_figure(frames, fig=fig)  # and come back
    assert again is fig and len(fig.frames) == 2 and len(fig.layout.sliders[0].steps) == 2
    s = pd.DataFrame({"method": ["augmented"], "structure": ["2:4"], "sparsity": [0.5], "mean": [0.9], "sd": [0.01]})
    assert len(accuracy_vs_sparsity_figure(s, dense=0.95).data) == 1
