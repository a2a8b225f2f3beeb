"""Figures of the sampling lab: pure functions from tidy DataFrames to plotly figures (no torch, no ipywidgets).

- :func:`favoured_figure`: the samples a sampler favours now, as a grid of 8×8 digit images whose size grows with
  their sampling weight (rows ``index, weight, label, pixels``); for non-image data, bars of the weights.
- :func:`weight_histogram_figure`: how the sampling weights spread over training: a heatmap of the histogram of
  ``N·p_i`` (1 = uniform) at every evaluation (``compare_samplers(...).snapshots`` rows).
- :func:`sketch_scatter_figure`: the sketch's NW estimate against the exact one per sample (``sketch_vs_exact``).
- :func:`accuracy_time_figure`: test accuracy against training wall time (or steps), one line per sampler and seed.
- :func:`sketch_error_figure`: relative error of the sketch against the number of tables (``sketch_error``).

Each builds a new ``go.Figure`` and takes an optional ``fig=`` to redraw into
(:func:`workbench.viz.figure.redraw`: traces updated in place when their number and types match).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import DataError
from workbench.viz.figure import redraw

__all__ = ["favoured_figure", "weight_histogram_figure", "sketch_scatter_figure", "accuracy_time_figure",
           "sketch_error_figure", "SAMPLER_COLORS"]

SAMPLER_COLORS = {"uniform": "#7f7f7f", "static": "#1f77b4", "loss": "#ff7f0e", "nw": "#2ca02c",
                  "nw_sketch": "#d62728"}


def favoured_figure(frame: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None,
                    max_scale: int = 4, row_width: float = 100.0) -> go.Figure:
    """The favoured samples, heaviest first. Each row of ``frame`` (``index, weight`` and, for images,
    ``pixels``: 64 values of an 8×8 digit, optionally ``label``) is drawn as a tile ``8·s`` units wide with
    ``s = 1 + round((max_scale − 1)·weight/max weight)``; without ``pixels`` the weights are drawn as bars."""
    if frame.empty:
        raise DataError("favoured_figure: empty frame")
    f = frame.sort_values("weight", ascending=False).reset_index(drop=True)
    wmax = float(f["weight"].max()) or 1.0
    title = title or f"The {len(f)} samples favoured now (tile size ∝ weight)"
    if "pixels" not in f.columns:
        trace = go.Bar(x=[str(i) for i in f["index"]], y=f["weight"], marker_color="#d62728",
                       hovertemplate="sample %{x}<br>p = %{y:.3g}<extra></extra>")
        new = go.Figure(data=[trace], layout=dict(title=title, xaxis=dict(title="sample", type="category"),
                                                  yaxis=dict(title="sampling probability"), height=320))
        return redraw(fig, new)
    traces: list[Any] = []
    x = y = row_h = 0.0
    gap = 2.0
    for _, r in f.iterrows():
        s = 1 + int(round((max_scale - 1) * float(r["weight"]) / wmax))
        size = 8.0 * s
        if x > 0 and x + size > row_width:
            x, y, row_h = 0.0, y + row_h + gap, 0.0
        img = np.asarray(r["pixels"], dtype=float).reshape(8, 8)
        label = f", label {int(r['label'])}" if "label" in f.columns else ""
        traces.append(go.Heatmap(z=img, x0=x + s / 2, dx=s, y0=y + s / 2, dy=s, colorscale="Greys", showscale=False,
                                 zmin=0, zmax=float(np.nanmax(img)) or 1.0,
                                 hovertemplate=f"sample {int(r['index'])}{label}<br>p = {float(r['weight']):.3g}"
                                               "<extra></extra>"))
        x += size + gap
        row_h = max(row_h, size)
    layout = dict(title=title, height=max(260, int(3.2 * (y + row_h)) + 80), showlegend=False,
                  xaxis=dict(visible=False, range=[-gap, row_width + gap]),
                  yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
                  margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white")
    new = go.Figure(data=traces, layout=layout)
    return redraw(fig, new)


def weight_histogram_figure(snapshots: pd.DataFrame, fig: go.Figure | None = None, bins: int = 40,
                            title: str = "Sampling weights over training (N·p: 1 = uniform)") -> go.Figure:
    """Heatmap: x = step, y = ``N·p_i`` on a log scale, colour = fraction of samples in the bin. ``snapshots``:
    rows ``step, weights`` (an array of probabilities per evaluation) of one run."""
    if snapshots.empty:
        raise DataError("weight_histogram_figure: empty snapshots")
    snaps = snapshots.sort_values("step")
    rel = [np.asarray(w, dtype=float) * len(w) for w in snaps["weights"]]
    lo = max(min(float(r.min()) for r in rel), 1e-3)
    hi = max(max(float(r.max()) for r in rel), lo * 1.01)
    edges = np.geomspace(lo * 0.999, hi * 1.001, bins + 1)
    z = np.stack([np.histogram(r, edges)[0] / len(r) for r in rel], axis=1)
    centers = np.sqrt(edges[:-1] * edges[1:])
    trace = go.Heatmap(z=z, x=[str(s) for s in snaps["step"]], y=centers, colorscale="Viridis",
                       colorbar=dict(title="fraction"),
                       hovertemplate="step %{x}<br>N·p ≈ %{y:.3g}<br>fraction %{z:.3f}<extra></extra>")
    layout = dict(title=title, xaxis=dict(title="step", type="category"),
                  yaxis=dict(title="N·p (log)", type="log"), height=360)
    new = go.Figure(data=[trace], layout=layout)
    return redraw(fig, new)


def sketch_scatter_figure(frame: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Sketch estimate (y) against exact NW estimate (x) per sample (columns ``exact, sketch``), with y = x."""
    f = frame.dropna(subset=["exact", "sketch"])
    if f.empty:
        raise DataError("sketch_scatter_figure: no rows with both estimates")
    rel = float(((f["sketch"] - f["exact"]).abs() / f["exact"].abs()).mean())
    lo, hi = float(min(f["exact"].min(), f["sketch"].min())), float(max(f["exact"].max(), f["sketch"].max()))
    traces = [go.Scatter(x=f["exact"], y=f["sketch"], mode="markers", name="samples",
                         marker=dict(size=4, color="#d62728", opacity=0.5),
                         text=[str(i) for i in f.get("index", range(len(f)))],
                         hovertemplate="sample %{text}<br>exact %{x:.4f}<br>sketch %{y:.4f}<extra></extra>"),
              go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line=dict(color="black", dash="dot"))]
    layout = dict(title=title or f"Sketch vs exact NW estimate (mean relative error {rel:.3f})",
                  xaxis=dict(title="exact NW estimate (collision kernel)"),
                  yaxis=dict(title="sketch estimate"), height=380)
    new = go.Figure(data=traces, layout=layout)
    return redraw(fig, new)


def accuracy_time_figure(table: pd.DataFrame, fig: go.Figure | None = None, x: str = "train_seconds",
                         target: float | None = None, title: str | None = None) -> go.Figure:
    """Test accuracy against ``x`` (``"train_seconds"``, ``"seconds"`` or ``"step"``), one line per sampler and seed
    (``compare_samplers(...).table``); ``target`` draws a horizontal line."""
    if table.empty:
        raise DataError("accuracy_time_figure: empty table")
    traces: list[Any] = []
    for (name, seed), g in table.sort_values("step").groupby(["sampler", "seed"], sort=False):
        first = int(seed) == int(table[table.sampler == name]["seed"].min())
        traces.append(go.Scatter(x=g[x], y=g["test_acc"], mode="lines+markers", name=str(name),
                                 legendgroup=str(name), showlegend=first,
                                 line=dict(color=SAMPLER_COLORS.get(str(name))), marker=dict(size=4),
                                 hovertemplate=f"{name} seed {seed}<br>{x} %{{x:.3g}}<br>acc %{{y:.3f}}"
                                               "<extra></extra>"))
    shapes = []
    if target is not None:
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, y0=target, y1=target,
                           line=dict(color="black", dash="dot")))
    label = {"train_seconds": "training wall time (s, evaluation excluded)", "seconds": "wall time (s)",
             "step": "step"}.get(x, x)
    layout = dict(title=title or "Test accuracy per sampler", xaxis=dict(title=label),
                  yaxis=dict(title="test accuracy"), height=400, shapes=shapes)
    new = go.Figure(data=traces, layout=layout)
    return redraw(fig, new)


def sketch_error_figure(frame: pd.DataFrame, fig: go.Figure | None = None,
                        title: str = "Sketch vs exact NW: relative error as tables grow") -> go.Figure:
    """Mean relative error (± sd over hash seeds) against the number of tables L, log–log (``sketch_error``)."""
    if frame.empty:
        raise DataError("sketch_error_figure: empty frame")
    g = frame.groupby("L")["mean_rel_error"].agg(["mean", "std"]).reset_index()
    trace = go.Scatter(x=g["L"], y=g["mean"], mode="lines+markers", name="sketch",
                       error_y=dict(type="data", array=g["std"].fillna(0)), line=dict(color="#d62728"),
                       hovertemplate="L = %{x}<br>relative error %{y:.4f}<extra></extra>")
    ref = go.Scatter(x=g["L"], y=float(g["mean"].iloc[0]) * np.sqrt(float(g["L"].iloc[0]) / g["L"]), mode="lines",
                     name="∝ 1/√L", line=dict(color="black", dash="dot"))
    layout = dict(title=title, xaxis=dict(title="tables L", type="log"),
                  yaxis=dict(title="mean |sketch − exact| / exact", type="log"), height=360)
    new = go.Figure(data=[trace, ref], layout=layout)
    return redraw(fig, new)
