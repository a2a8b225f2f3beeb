"""Figures of the sparse training lab (DataFrames in, plotly figures out; no torch).

* :func:`mask_frames_figure`: the mask of one layer over training as heatmap frames with a step slider;
* :func:`accuracy_figure`: test accuracy over training, one line per run, the dense reference as a dashed line;
* :func:`search_space_figure`: achieved sparsity and the fraction of weights that ever entered the mask;
* :func:`accuracy_vs_sparsity_figure`: the benchmark's mean ± sd accuracy per method against sparsity.

Each builds a new figure and ends with :func:`workbench.viz.figure.redraw` (``fig=``: draw into that figure instead;
the mask's frames come along).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

METHOD_COLORS = {"block_pruning": "#1f77b4", "group_lasso": "#ff7f0e", "fixed_mask": "#7f7f7f",
                 "augmented": "#2ca02c", "dense": "#000000"}


def _grid(mask: Any, max_side: int = 128) -> np.ndarray:
    m = np.asarray(mask, dtype=float)
    # pool big masks so the heatmap stays small: the fraction kept per cell
    fr, fc = max(1, -(-m.shape[0] // max_side)), max(1, -(-m.shape[1] // max_side))
    if fr > 1 or fc > 1:
        r, c = (m.shape[0] // fr) * fr, (m.shape[1] // fc) * fc
        m = m[:r, :c].reshape(r // fr, fr, c // fc, fc).mean(axis=(1, 3))
    return m


def mask_frames_figure(frames: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None,
                       index: int | None = None) -> go.Figure:
    """Heatmap of the mask (rows = outputs, columns = inputs; dark = kept) at each recorded step, with a slider.

    ``frames``: columns ``step, layer, mask`` (:attr:`SparseTrainResult.frames`). ``index`` shows one frame only
    (for a view that redraws on a slider of its own)."""
    new = go.Figure()
    if frames is None or len(frames) == 0:
        new.update_layout(title=title or "no mask frames")
        return redraw(fig, new)
    layer = str(frames.layer.iloc[0])
    grids = [_grid(m) for m in frames["mask"]]
    steps = [int(s) for s in frames.step]
    heat = dict(colorscale=[[0, "#f7f7f7"], [1, "#08306b"]], zmin=0, zmax=1, showscale=False)
    show = len(grids) - 1 if index is None else int(np.clip(index, 0, len(grids) - 1))
    density = float(np.mean(frames["mask"].iloc[show]))
    new.add_trace(go.Heatmap(z=grids[show], **heat))
    if index is None and len(grids) > 1:
        new.frames = [go.Frame(data=[go.Heatmap(z=g, **heat)], name=str(s)) for g, s in zip(grids, steps)]
        new.update_layout(sliders=[dict(active=show, currentvalue=dict(prefix="step "), steps=[
            dict(label=str(s), method="animate", args=[[str(s)], dict(mode="immediate", frame=dict(duration=0))])
            for s in steps])])
    new.update_layout(title=title or f"mask of {layer} at step {steps[show]} (density {density:.3f})",
                      yaxis=dict(autorange="reversed", title="output"), xaxis=dict(title="input"), height=420)
    return redraw(fig, new)


def accuracy_figure(table: pd.DataFrame, dense: float | None = None, fig: go.Figure | None = None,
                    title: str = "Test accuracy over training") -> go.Figure:
    """Test accuracy against step, one line per ``(method, structure)`` of ``table`` (:attr:`SparseTrainResult.table`
    rows, several runs concatenated); ``dense`` draws the dense model's accuracy."""
    new = go.Figure()
    for (method, structure), g in table.groupby(["method", "structure"], sort=False):
        new.add_trace(go.Scatter(x=g.step, y=g.test_acc, mode="lines+markers", name=f"{method} · {structure}",
                                 line=dict(color=METHOD_COLORS.get(method))))
    if dense is not None and len(table):
        new.add_hline(y=float(dense), line_dash="dash", annotation_text=f"dense {dense:.3f}")
    new.update_layout(title=title, xaxis_title="step", yaxis_title="test accuracy", height=380)
    return redraw(fig, new)


def search_space_figure(table: pd.DataFrame, fig: go.Figure | None = None,
                        title: str = "Sparsity and search space over training") -> go.Figure:
    """Achieved sparsity (solid) and the fraction of weights that ever entered the mask (dotted) against step."""
    new = go.Figure()
    for (method, structure), g in table.groupby(["method", "structure"], sort=False):
        color = METHOD_COLORS.get(method)
        new.add_trace(go.Scatter(x=g.step, y=g.sparsity, mode="lines", name=f"sparsity · {method}",
                                 line=dict(color=color)))
        new.add_trace(go.Scatter(x=g.step, y=g.ever_entered, mode="lines", name=f"ever in mask · {method}",
                                 line=dict(color=color, dash="dot")))
    new.update_layout(title=title, xaxis_title="step", yaxis_title="fraction of weights", yaxis_range=[0, 1.02],
                      height=380)
    return redraw(fig, new)


def accuracy_vs_sparsity_figure(summary: pd.DataFrame, dense: float | None = None, fig: go.Figure | None = None,
                                title: str = "Accuracy against sparsity") -> go.Figure:
    """``summary`` columns: ``method, structure, sparsity, mean, sd``; one marker series per method."""
    new = go.Figure()
    for method, g in summary.groupby("method", sort=False):
        new.add_trace(go.Scatter(x=g.sparsity, y=g["mean"], error_y=dict(type="data", array=g["sd"]),
                                 mode="markers", name=method, text=g.structure,
                                 marker=dict(color=METHOD_COLORS.get(method), size=9)))
    if dense is not None:
        new.add_hline(y=float(dense), line_dash="dash", annotation_text="dense")
    new.update_layout(title=title, xaxis_title="sparsity", yaxis_title="test accuracy", height=400)
    return redraw(fig, new)


__all__ = ["mask_frames_figure", "accuracy_figure", "search_space_figure", "accuracy_vs_sparsity_figure",
           "METHOD_COLORS"]
