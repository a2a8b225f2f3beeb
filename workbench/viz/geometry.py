"""Figures of the geometry lab: pure functions from tidy DataFrames / arrays to plotly figures (no torch, no
ipywidgets).

- :func:`image_figure`: one image as a grey heatmap (a shifted digit).
- :func:`polyphase_figure`: the stride² polyphase components of a feature map, each titled with its norm, the one
  APS keeps marked (Chaman & Dokmanić 2020).
- :func:`probabilities_figure`: class probabilities of several models for one input (``model, class,
  probability`` rows), grouped bars.
- :func:`consistency_figure`: ``shift_consistency`` summaries, consistency and accuracy per model.
- :func:`shift_map_figure`: a per-shift table (``dx, dy`` and a value such as ``agreement``) as a heatmap.
- :func:`size_accuracy_figure`: accuracy against test size, one line per training (``training, test_size,
  accuracy_mean[, accuracy_sd]`` or ``accuracy`` rows), FLOPs on the hover.

Each builds a new ``go.Figure`` and ends with ``return redraw(fig, new)`` (:func:`workbench.viz.figure.redraw`):
the optional ``fig=`` is a figure to redraw into; without it the new figure is returned.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.errors import DataError
from workbench.viz.figure import redraw

__all__ = ["image_figure", "polyphase_figure", "probabilities_figure", "consistency_figure", "shift_map_figure",
           "size_accuracy_figure", "MODEL_COLORS"]

MODEL_COLORS = {"digits32-cnn-max": "#1f77b4", "digits32-cnn-blur": "#2ca02c", "digits32-cnn-aps": "#d62728",
                "fixed": "#1f77b4", "mixed": "#d62728"}
_FALLBACK = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _color(name: str, i: int) -> str:
    return MODEL_COLORS.get(str(name), _FALLBACK[i % len(_FALLBACK)])


def image_figure(image: Any, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """A 2-D array (H, W) as a grey image, row 0 at the top."""
    a = np.asarray(image, dtype=float)
    if a.ndim != 2:
        raise DataError(f"image_figure: image must be 2-D (H, W), got shape {a.shape}")
    trace = go.Heatmap(z=a, colorscale="gray_r", showscale=False,
                       hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>")
    layout = dict(title=title or "", yaxis=dict(autorange="reversed", scaleanchor="x", visible=False),
                  xaxis=dict(visible=False), margin=dict(l=10, r=10, t=40, b=10))
    return redraw(fig, go.Figure(data=[trace], layout=layout))


def polyphase_figure(components: Any, norms: Sequence[float] | None = None, title: str | None = None,
                     fig: go.Figure | None = None) -> go.Figure:
    """The ``s²`` polyphase components (s², h, w) of one channel in an s×s grid, component ``(i, j)`` =
    ``x[i::s, j::s]``; titles give each component's norm and the largest (APS's pick) is starred."""
    c = np.asarray(components, dtype=float)
    if c.ndim != 3 or int(round(np.sqrt(c.shape[0]))) ** 2 != c.shape[0]:
        raise DataError(f"polyphase_figure: components must be (s², h, w), got shape {c.shape}")
    s = int(round(np.sqrt(c.shape[0])))
    n = np.asarray(norms, dtype=float) if norms is not None else np.sqrt((c ** 2).reshape(len(c), -1).sum(1))
    best = int(np.argmax(n))
    titles = [f"({k // s},{k % s}) ‖·‖={n[k]:.2f}{' ★ APS' if k == best else ''}" for k in range(len(c))]
    new = make_subplots(rows=s, cols=s, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.1)
    vmax = float(np.abs(c).max()) or 1.0
    for k in range(len(c)):
        new.add_trace(go.Heatmap(z=c[k], colorscale="gray_r", zmin=0, zmax=vmax, showscale=False), row=k // s + 1,
                      col=k % s + 1)
    new.update_yaxes(autorange="reversed", visible=False)
    new.update_xaxes(visible=False)
    new.update_layout(title=title or f"the {s * s} polyphase components (stride {s})", height=160 * s + 60,
                      width=160 * s + 40, margin=dict(l=10, r=10, t=70, b=10))
    return redraw(fig, new)


def probabilities_figure(frame: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Grouped bars of class probabilities: one bar group per class, one colour per ``model``."""
    need = {"model", "class", "probability"}
    if not need <= set(frame.columns):
        raise DataError(f"probabilities_figure: frame needs columns {sorted(need)}, got {list(frame.columns)}")
    traces = []
    for i, (name, g) in enumerate(frame.groupby("model", sort=False)):
        traces.append(go.Bar(x=[str(c) for c in g["class"]], y=g["probability"], name=str(name),
                             marker_color=_color(name, i)))
    layout = dict(title=title or "class probabilities", barmode="group", yaxis=dict(range=[0, 1], title="p"),
                  xaxis=dict(title="class"), legend=dict(orientation="h", y=-0.25), margin=dict(t=40, b=10))
    return redraw(fig, go.Figure(data=traces, layout=layout))


def consistency_figure(frame: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Bars of ``consistency`` and ``accuracy`` per ``model`` (and ``mode``) from ``shift_consistency`` rows."""
    need = {"model", "mode", "consistency", "accuracy"}
    if not need <= set(frame.columns):
        raise DataError(f"consistency_figure: frame needs columns {sorted(need)}, got {list(frame.columns)}")
    x = [f"{m} ({mode})" if frame["mode"].nunique() > 1 else str(m) for m, mode in zip(frame["model"], frame["mode"])]
    traces = [go.Bar(x=x, y=frame["consistency"], name="shift consistency", marker_color="#d62728",
                     text=[f"{v:.1%}" for v in frame["consistency"]], textposition="outside"),
              go.Bar(x=x, y=frame["accuracy"], name="accuracy (unshifted)", marker_color="#7f7f7f",
                     text=[f"{v:.1%}" for v in frame["accuracy"]], textposition="outside")]
    layout = dict(title=title or "same class under every shift", barmode="group",
                  yaxis=dict(range=[0, 1.1], tickformat=".0%"), legend=dict(orientation="h", y=-0.2))
    return redraw(fig, go.Figure(data=traces, layout=layout))


def shift_map_figure(frame: pd.DataFrame, value: str = "agreement", fig: go.Figure | None = None,
                     title: str | None = None) -> go.Figure:
    """A heatmap of ``value`` over the shifts ``(dx, dy)`` of a per-shift table (``shift_consistency(...,
    per_shift=True)``); missing shifts are blank."""
    need = {"dx", "dy", value}
    if not need <= set(frame.columns):
        raise DataError(f"shift_map_figure: frame needs columns {sorted(need)}, got {list(frame.columns)}")
    grid = frame.pivot_table(index="dy", columns="dx", values=value)
    trace = go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=list(grid.index), colorscale="Viridis",
                       zmin=0, zmax=1 if value in ("agreement", "accuracy") else None,
                       hovertemplate="dx %{x}, dy %{y}: %{z:.3f}<extra></extra>")
    layout = dict(title=title or f"{value} per shift", xaxis=dict(title="dx"),
                  yaxis=dict(title="dy", autorange="reversed", scaleanchor="x"))
    return redraw(fig, go.Figure(data=[trace], layout=layout))


def size_accuracy_figure(frame: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None,
                         flops: pd.DataFrame | None = None) -> go.Figure:
    """Accuracy against test size, one line per ``training`` (mean with ±sd error bars when ``accuracy_sd`` is
    there). ``flops``: rows ``size, flops`` shown on the hover as MFLOPs per image."""
    y_col = "accuracy_mean" if "accuracy_mean" in frame.columns else "accuracy"
    need = {"training", "test_size", y_col}
    if not need <= set(frame.columns):
        raise DataError(f"size_accuracy_figure: frame needs columns {sorted(need)}, got {list(frame.columns)}")
    fl = {} if flops is None else dict(zip(flops["size"], flops["flops"]))
    traces = []
    for i, (name, g) in enumerate(frame.groupby("training", sort=False)):
        g = g.sort_values("test_size")
        err = dict(type="data", array=g["accuracy_sd"].fillna(0)) if "accuracy_sd" in g.columns else None
        hover = [f"{fl[s] / 1e6:.2f} MFLOPs/image" if s in fl else "" for s in g["test_size"]]
        traces.append(go.Scatter(x=g["test_size"], y=g[y_col], error_y=err, mode="lines+markers", name=str(name),
                                 line=dict(color=_color(name, i)), customdata=hover,
                                 hovertemplate="size %{x}: %{y:.3f} %{customdata}<extra>" + str(name) + "</extra>"))
    layout = dict(title=title or "accuracy against test image size", xaxis=dict(title="test size (pixels)"),
                  yaxis=dict(title="accuracy", range=[0, 1.02]), legend=dict(orientation="h", y=-0.25))
    return redraw(fig, go.Figure(data=traces, layout=layout))
