"""Figures of the metric lab: pure functions from tidy DataFrames to plotly figures (no torch, no ipywidgets).

- :func:`embedding_figure`: the data in 2-D under the current map (``x, y, label`` from
  ``workbench.metric.embedding_2d``), one colour per class; redrawn while the Monte Carlo runs.
- :func:`trace_figure`: the Monte Carlo trace (``workbench.metric.Metric.trace``): energy with the free energy
  ``F = ⟨E⟩ − T·S``, the temperature (log axis) and the acceptance rate, stacked on one step axis.
- :func:`comparison_figure`: kNN accuracy mean ± sd per data set and method from ``compare_metrics``; methods that
  could not run are named in the title.

Each builds a new ``go.Figure`` and takes an optional ``fig=`` to redraw into
(:func:`workbench.viz.figure.redraw`: traces updated in place when their number and types match).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.viz.figure import redraw

__all__ = ["embedding_figure", "trace_figure", "comparison_figure", "PALETTE"]

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def embedding_figure(df: pd.DataFrame, fig: go.Figure | None = None, title: str = "Data under the learned map"
                     ) -> go.Figure:
    """Scatter of ``df`` (columns ``x, y, label``), one trace per class (sorted labels when they sort)."""
    labels = list(dict.fromkeys(df["label"].tolist()))
    try:
        labels = sorted(labels)
    except TypeError:
        pass
    new = go.Figure()
    for i, lab in enumerate(labels):
        part = df[df["label"] == lab]
        new.add_scatter(x=part["x"].to_numpy(), y=part["y"].to_numpy(), mode="markers", name=str(lab),
                        marker=dict(size=5, color=PALETTE[i % len(PALETTE)], opacity=0.8))
    new.update_layout(title=title, xaxis_title="direction 1", yaxis_title="direction 2", height=420,
                      legend_title="class")
    return redraw(fig, new)


_SERIES = [("energy", "E (current)", 1, "#1f77b4", "solid"), ("mean_energy", "⟨E⟩ (block mean)", 1, "#aec7e8", "dot"),
           ("free_energy", "F = ⟨E⟩ − T·S", 1, "#d62728", "dash"), ("temperature", "T", 2, "#ff7f0e", "solid"),
           ("acceptance", "acceptance", 3, "#2ca02c", "solid")]


def trace_figure(trace: pd.DataFrame, fig: go.Figure | None = None, title: str = "Monte Carlo trace") -> go.Figure:
    """Three stacked panels over ``step``: energy (current, block mean, free energy), temperature (log axis),
    acceptance rate. An empty ``trace`` (the columns only) gives the empty panels."""
    new = go.Figure(make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                                  subplot_titles=("energy E and free energy F = ⟨E⟩ − T·S", "temperature T",
                                                  "acceptance rate")))
    step = trace["step"].to_numpy() if len(trace) else []
    for col, name, row, color, dash in _SERIES:
        new.add_scatter(x=step, y=trace[col].to_numpy() if len(trace) else [], mode="lines", name=name,
                        line=dict(color=color, dash=dash), row=row, col=1)
    new.update_yaxes(type="log", row=2, col=1)
    new.update_yaxes(range=[0, 1.02], row=3, col=1)
    new.update_xaxes(title_text="Monte Carlo step", row=3, col=1)
    new.update_layout(title=title, height=560, legend=dict(orientation="h", y=-0.12))
    return redraw(fig, new)


def comparison_figure(df: pd.DataFrame, fig: go.Figure | None = None,
                      title: str = "kNN accuracy, mean ± sd over the same splits") -> go.Figure:
    """Grouped bars: one group per data set, one bar per method, error bars = sd over the splits."""
    ok = df[df["status"] == "ok"]
    missing = sorted(set(df.loc[df["status"] != "ok", "method"]))
    methods = list(dict.fromkeys(ok["method"].tolist()))
    new = go.Figure()
    for i, m in enumerate(methods):
        part = ok[ok["method"] == m]
        new.add_bar(x=part["dataset"].tolist(), y=part["accuracy_mean"].to_numpy(), name=m,
                    error_y=dict(type="data", array=part["accuracy_sd"].to_numpy()),
                    marker_color=PALETTE[i % len(PALETTE)],
                    hovertext=[f"fit {s:.3g} s" for s in part["fit_seconds"]])
    note = f" (not run here: {', '.join(missing)})" if missing else ""
    lo = float((ok["accuracy_mean"] - ok["accuracy_sd"]).min()) if len(ok) else 0.0
    new.update_layout(title=title + note, barmode="group",
                      yaxis=dict(title="accuracy", range=[max(0.0, lo - 0.05), 1.0]), height=400)
    return redraw(fig, new)
