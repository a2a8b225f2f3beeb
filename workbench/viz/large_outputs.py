"""Figures of the large-outputs lab: pure functions from tidy DataFrames to plotly figures (no torch, no ipywidgets).

- :func:`accuracy_time_figure`: P@1 against cumulative training seconds, one line per (output layer, width): the
  lab's main picture (``train_output_layer`` / ``compare_output_layers`` rows).
- :func:`step_cost_figure`: seconds per training step against the number of outputs (log-log), one line per kind
  (``step_costs`` rows): where the hashed layers cross the dense multiply.
- :func:`active_fraction_figure`: the fraction of outputs a layer touches per sample over training (negatives / n
  for sampled softmax, the active fraction of a hashed layer).
- :func:`speedup_figure`: speedup over full softmax per kind and width, with the P@1 gap in the hover
  (``speedups`` rows).

Each builds a new ``go.Figure`` and takes an optional ``fig=`` to redraw into (:func:`workbench.viz.figure.redraw`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.errors import DataError
from workbench.viz.figure import redraw

__all__ = ["accuracy_time_figure", "step_cost_figure", "active_fraction_figure", "speedup_figure", "KIND_COLORS"]

KIND_COLORS = {"full": "#1f77b4", "dense": "#17becf", "uniform": "#7f7f7f", "unigram": "#ff7f0e", "lsh": "#d62728",
               "hashed": "#2ca02c"}
_DASH = ["solid", "dash", "dot", "dashdot", "longdash"]


def _need(table: pd.DataFrame, cols: tuple[str, ...], where: str) -> None:
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise DataError(f"{where}: the table is empty; pass the rows of the large-outputs experiment functions")
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise DataError(f"{where}: the table lacks the columns {missing}; it has {list(table.columns)}")


def accuracy_time_figure(table: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """P@1 (y) against cumulative training seconds (x, evaluations excluded) per (kind, width)."""
    _need(table, ("kind", "width", "seconds", "p_at_1"), "accuracy_time_figure")
    traces: list[Any] = []
    widths = sorted(table["width"].unique())
    for (kind, width), g in table.groupby(["kind", "width"], sort=False):
        g = g.sort_values("step") if "step" in g.columns else g
        x = g["seconds"].cumsum()
        traces.append(go.Scatter(x=x, y=g["p_at_1"], mode="lines+markers", name=f"{kind} · {width:,}",
                                 line=dict(color=KIND_COLORS.get(kind, "#9467bd"),
                                           dash=_DASH[widths.index(width) % len(_DASH)]),
                                 hovertemplate=f"{kind}, {width:,} outputs<br>%{{x:.1f}} s<br>P@1 %{{y:.3f}}"
                                               "<extra></extra>"))
    layout = dict(title=title or "P@1 against training time", xaxis=dict(title="training seconds (cumulative)"),
                  yaxis=dict(title="P@1 (test)", rangemode="tozero"), height=380)
    return redraw(fig, go.Figure(data=traces, layout=layout))


def step_cost_figure(table: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Seconds per training step (y, log) against outputs (x, log), one line per kind."""
    _need(table, ("kind", "width", "seconds_per_step"), "step_cost_figure")
    traces: list[Any] = []
    for kind, g in table.groupby("kind", sort=False):
        g = g.sort_values("width")
        traces.append(go.Scatter(x=g["width"], y=g["seconds_per_step"], mode="lines+markers", name=kind,
                                 line=dict(color=KIND_COLORS.get(kind, "#9467bd")),
                                 hovertemplate=f"{kind}<br>%{{x:,}} outputs<br>%{{y:.4f}} s/step<extra></extra>"))
    layout = dict(title=title or "Seconds per training step of the output layer",
                  xaxis=dict(title="outputs (classes)", type="log"), yaxis=dict(title="seconds per step", type="log"),
                  height=360)
    return redraw(fig, go.Figure(data=traces, layout=layout))


def active_fraction_figure(table: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """The fraction of outputs touched per sample (log y) against the epoch, per (kind, width)."""
    _need(table, ("kind", "width", "epoch", "active_fraction"), "active_fraction_figure")
    body = table.dropna(subset=["active_fraction"])
    body = body[body["epoch"] > 0] if (body["epoch"] > 0).any() else body
    if body.empty:
        raise DataError("active_fraction_figure: no row has an active fraction")
    traces: list[Any] = []
    for (kind, width), g in body.groupby(["kind", "width"], sort=False):
        traces.append(go.Scatter(x=g["epoch"], y=g["active_fraction"], mode="lines+markers",
                                 name=f"{kind} · {width:,}", line=dict(color=KIND_COLORS.get(kind, "#9467bd")),
                                 hovertemplate=f"{kind}, {width:,}<br>epoch %{{x:.2f}}<br>fraction %{{y:.3g}}"
                                               "<extra></extra>"))
    layout = dict(title=title or "Fraction of the outputs touched per sample",
                  xaxis=dict(title="epoch"), yaxis=dict(title="fraction (log)", type="log"), height=340)
    return redraw(fig, go.Figure(data=traces, layout=layout))


def speedup_figure(table: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Grouped bars: speedup over full softmax (y) per width (x), one bar per kind; hover shows the P@1 gap."""
    _need(table, ("kind", "width", "speedup", "p_at_1_gap"), "speedup_figure")
    traces: list[Any] = []
    for kind, g in table.groupby("kind", sort=False):
        traces.append(go.Bar(x=[f"{int(w):,}" for w in g["width"]], y=g["speedup"], name=kind,
                             marker_color=KIND_COLORS.get(kind, "#9467bd"), customdata=g["p_at_1_gap"],
                             hovertemplate=f"{kind}<br>%{{x}} outputs<br>speedup %{{y:.2f}}×<br>"
                                           "P@1 gap %{customdata:.2f} points<extra></extra>"))
    layout = dict(title=title or "Speedup per epoch over full softmax", barmode="group",
                  xaxis=dict(title="outputs", type="category"), yaxis=dict(title="speedup (×)"), height=340,
                  shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=1, y1=1, line=dict(dash="dot"))])
    return redraw(fig, go.Figure(data=traces, layout=layout))
