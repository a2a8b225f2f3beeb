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
    view.frame.value = 0
    assert view.mask.data[0].z is not None
    after = h.model.state_dict()
    assert all((before[k] == after[k]).all() for k in before)  # the handle's model is untouched


def test_mask_frames_figure_has_a_slider_frame_per_step() -> None:
    frames = pd.DataFrame({"step": [0, 5], "layer": ["a", "a"],
                           "mask": [np.ones((4, 8), bool), np.eye(4, 8, dtype=bool)]})
    fig = mask_frames_figure(frames)
    assert len(fig.frames) == 2 and len(fig.layout.sliders[0].steps) == 2
    assert np.array_equal(np.asarray(fig.frames[1].data[0].z), np.eye(4, 8))
    s = pd.DataFrame({"method": ["augmented"], "structure": ["2:4"], "sparsity": [0.5], "mean": [0.9], "sd": [0.01]})
    assert len(accuracy_vs_sparsity_figure(s, dense=0.95).data) == 1
