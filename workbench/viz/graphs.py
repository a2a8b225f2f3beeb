"""Figures of the graph lab: pure functions from tidy DataFrames to plotly figures (no torch, no ipywidgets).

- :func:`graph_figure`: a small graph (``workbench.graphs.layout_tables``) with nodes coloured by prediction,
  training nodes drawn as squares and misclassified test nodes ringed in red.
- :func:`memory_figure`: kernel (or peak) memory against N on log–log axes for dense and thresholded diffusion
  (``workbench.graphs.memory_scaling``); dense sizes that were refused are drawn as open markers at their
  estimate, and a horizontal line marks the memory available when given.
- :func:`accuracy_table_figure`: the accuracy table (``workbench.graphs.accuracy_table``) as a plotly table.

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

__all__ = ["graph_figure", "memory_figure", "accuracy_table_figure"]

_CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a"]
_FORM_COLORS = {"dense": "#d62728", "thresholded": "#1f77b4"}


def graph_figure(nodes: pd.DataFrame, edges: pd.DataFrame, color_by: str = "prediction",
                 fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Draw a graph from ``nodes`` (``node, x, y`` and ``color_by``; optional ``label, train, correct, name``) and
    ``edges`` (``source, target``): one trace per class of ``color_by`` so the legend names the classes."""
    if nodes.empty:
        raise DataError("graph_figure: no nodes to draw")
    if color_by not in nodes:
        color_by = "label"
    xy = nodes.set_index("node")[["x", "y"]]
    s, t = edges["source"].to_numpy(), edges["target"].to_numpy()
    ex = np.stack([xy.x.loc[s].to_numpy(), xy.x.loc[t].to_numpy(), np.full(len(s), np.nan)], 1).ravel()
    ey = np.stack([xy.y.loc[s].to_numpy(), xy.y.loc[t].to_numpy(), np.full(len(s), np.nan)], 1).ravel()
    traces: list[Any] = [go.Scatter(x=[None if np.isnan(v) else float(v) for v in ex],
                                    y=[None if np.isnan(v) else float(v) for v in ey], mode="lines",
                                    name="edges", line=dict(color="rgba(120,120,120,0.4)", width=1),
                                    hoverinfo="skip", showlegend=False)]
    classes = sorted(nodes[color_by].astype(str).unique())
    train = nodes["train"].to_numpy(bool) if "train" in nodes else np.zeros(len(nodes), bool)
    wrong = (~nodes["correct"].to_numpy(bool)) if "correct" in nodes else np.zeros(len(nodes), bool)
    for k, c in enumerate(classes):
        sel = (nodes[color_by].astype(str) == c).to_numpy()
        sub = nodes[sel]
        hover = [f"{r.get('name', r['node'])}<br>label: {r.get('label', '?')}<br>{color_by}: {c}"
                 + ("<br>(training node)" if tr else "") for r, tr in zip(sub.to_dict("records"), train[sel])]
        traces.append(go.Scatter(
            x=sub["x"], y=sub["y"], mode="markers", name=f"{color_by}: {c}", text=hover, hoverinfo="text",
            marker=dict(size=11, color=_CLASS_COLORS[k % len(_CLASS_COLORS)],
                        symbol=np.where(train[sel], "square", "circle").tolist(),
                        line=dict(color=np.where(wrong[sel] & ~train[sel], "red", "white").tolist(),
                                  width=np.where(wrong[sel] & ~train[sel], 3, 1).tolist()))))
    if title is None:
        acc = nodes.attrs.get("test_accuracy")
        title = f"{nodes.attrs.get('graph', 'graph')}: nodes coloured by {color_by}" + (
            f" (test accuracy {acc:.1%}; squares trained, red rings wrong)" if acc is not None else "")
    layout = dict(title=title, height=460, xaxis=dict(visible=False), yaxis=dict(visible=False, scaleanchor="x"),
                  legend=dict(orientation="h"))
    new = go.Figure(data=traces, layout=layout)
    return redraw(fig, new)


def memory_figure(df: pd.DataFrame, metric: str = "kernel_bytes", available_bytes: float | None = None,
                  fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Memory (``metric``: ``kernel_bytes`` or ``peak_bytes``, in GiB) against N, one line per form; refused dense
    runs as open markers at ``estimate_bytes``."""
    if df.empty:
        raise DataError("memory_figure: empty scaling table")
    traces: list[Any] = []
    for form, part in df.groupby("form", sort=False):
        ran = part[~part["refused"].astype(bool)].dropna(subset=[metric])
        color = _FORM_COLORS.get(str(form), "#333")
        thr = part["threshold"].dropna()
        label = f"{form}" + (f" (ε={thr.iloc[0]:g})" if len(thr) else "")
        traces.append(go.Scatter(x=ran["n_nodes"], y=ran[metric] / 2**30, mode="lines+markers", name=label,
                                 line=dict(color=color),
                                 hovertemplate="N=%{x}<br>%{y:.4g} GiB<extra>" + label + "</extra>"))
        refused = part[part["refused"].astype(bool)]
        if len(refused):
            traces.append(go.Scatter(x=refused["n_nodes"], y=refused["estimate_bytes"] / 2**30, mode="markers",
                                     name=f"{form}: refused (estimate)",
                                     marker=dict(symbol="x-open", size=11, color=color),
                                     hovertemplate="N=%{x}<br>estimate %{y:.4g} GiB: refused<extra></extra>"))
    if available_bytes:
        xs = [float(df["n_nodes"].min()), float(df["n_nodes"].max())]
        traces.append(go.Scatter(x=xs, y=[available_bytes / 2**30] * 2, mode="lines", name="memory available",
                                 line=dict(color="#555", dash="dash")))
    what = "stored diffusion kernel" if metric == "kernel_bytes" else "peak allocated (tracemalloc)"
    layout = dict(title=title or f"Memory vs N ({what}; synthetic SBM)", height=400,
                  xaxis=dict(title="nodes N", type="log"), yaxis=dict(title="GiB", type="log"))
    new = go.Figure(data=traces, layout=layout)
    return redraw(fig, new)


def accuracy_table_figure(table: pd.DataFrame, fig: go.Figure | None = None,
                          title: str = "Accuracy over splits") -> go.Figure:
    """A plotly table of ``accuracy_table`` rows: method, form, hops, threshold, accuracy ± std, memory, time."""
    if table.empty:
        raise DataError("accuracy_table_figure: empty table")
    t = table
    cells = [t["graph"].astype(str), t["method"].astype(str), t["form"].astype(str), t["hops"].astype(str),
             t["threshold"].astype(str),
             [f"{a:.1%} ± {s:.1%}" for a, s in zip(t["accuracy"], t["accuracy_std"])],
             [f"{b / 2**20:.3g}" for b in t["peak_bytes"]],
             [f"{s:.3g}" for s in t["seconds_graph"] + t["seconds_train"]]]
    header = ["graph", "method", "form", "hops", "threshold", "accuracy", "peak MiB", "seconds"]
    trace = go.Table(header=dict(values=header, fill_color="#eee", align="left"),
                     cells=dict(values=cells, align="left"))
    new = go.Figure(data=[trace], layout=dict(title=title, height=60 + 28 * (len(t) + 1)))
    return redraw(fig, new)
