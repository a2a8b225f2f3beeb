"""Figures of the training-dynamics lab: distance from initialization on a log step axis, fitted growth laws,
simulated walks, and test accuracy of small vs large batch (Hoffer, Hubara & Soudry 2017).

Pure functions DataFrame -> plotly ``go.Figure`` (pass ``fig=`` to redraw into an existing figure:
:func:`workbench.viz.figure.redraw`). No torch import here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
FIT_DASH = {"log": "dash", "log^β": "dot", "sqrt": "dashdot", "power": "longdash"}


def distance_figure(distances: pd.DataFrame, curves: pd.DataFrame | None = None, fits: pd.DataFrame | None = None,
                    group: str = "layer", layers: list[str] | None = None, fig: go.Figure | None = None,
                    title: str = "distance from initialization ‖w_t − w_0‖") -> go.Figure:
    """One line per ``group`` value (layers and ``total``; ``total`` drawn thick) against step on a log axis.

    ``curves`` (from :func:`workbench.dynamics.predict_growth`: ``step, model, fitted``) are overlaid dashed;
    ``fits`` (from ``fit_growth``) adds R² to their legend names. Step 0 cannot sit on a log axis and is dropped.
    """
    new = go.Figure()
    df = distances[distances["step"] > 0]
    names = list(dict.fromkeys(df[group])) if group in df.columns else []
    if layers is not None:
        names = [n for n in names if n in layers]
    for i, name in enumerate(names):
        part = df[df[group] == name]
        total = name == "total"
        new.add_trace(go.Scatter(x=part["step"], y=part["distance"], mode="lines", name=str(name),
                                 line=dict(width=3.5 if total else 1.5, color="black" if total else
                                           PALETTE[i % len(PALETTE)])))
    if curves is not None and len(curves):
        r2 = {} if fits is None else dict(zip(fits["model"], fits["r2"]))
        best = None if fits is None else fits.attrs.get("best")
        for model in dict.fromkeys(curves["model"]):
            part = curves[curves["model"] == model]
            label = f"fit {model}" + (f" (R²={r2[model]:.3f})" if model in r2 else "") + (" ★" if model == best else "")
            new.add_trace(go.Scatter(x=part["step"], y=part["fitted"], mode="lines", name=label,
                                     line=dict(dash=FIT_DASH.get(model, "dash"), width=2.5 if model == best else 1.5,
                                               color="#444")))
    new.update_layout(title=title, xaxis=dict(type="log", title="step t (updates)"),
                      yaxis=dict(title="‖w_t − w_0‖"), legend=dict(orientation="v"), margin=dict(t=50, r=10))
    return redraw(fig, new)


def walk_figure(walks: pd.DataFrame, curves: pd.DataFrame | None = None, normalize: bool = True,
                fig: go.Figure | None = None) -> go.Figure:
    """Simulated walks (``simulate_walk`` frames concatenated, one line per ``kind``), each divided by its final
    distance when ``normalize`` so √t and (log t)^(2/α) share one axis; optional fitted ``curves`` with a ``kind``
    column, normalized the same way."""
    new = go.Figure()
    walks = walks[walks["step"] > 0]
    scale = walks.groupby("kind")["distance"].last() if normalize else None
    for i, kind in enumerate(dict.fromkeys(walks["kind"])):
        part = walks[walks["kind"] == kind]
        s = float(scale[kind]) if scale is not None else 1.0
        new.add_trace(go.Scatter(x=part["step"], y=part["distance"] / s, mode="lines", name=f"{kind} walk",
                                 line=dict(width=3, color=PALETTE[i % len(PALETTE)])))
        if curves is not None and "kind" in curves.columns:
            for model in dict.fromkeys(curves.loc[curves["kind"] == kind, "model"]):
                c = curves[(curves["kind"] == kind) & (curves["model"] == model)]
                new.add_trace(go.Scatter(x=c["step"], y=c["fitted"] / s, mode="lines", name=f"{kind}: fit {model}",
                                         line=dict(dash=FIT_DASH.get(model, "dash"), width=1.5,
                                                   color=PALETTE[i % len(PALETTE)])))
    new.update_layout(title="random-walk models: free (√t) vs random landscape ((log t)^(2/α))",
                      xaxis=dict(type="log", title="step t"),
                      yaxis=dict(title="‖w_t − w_0‖ / final" if normalize else "‖w_t − w_0‖"), margin=dict(t=50, r=10))
    return redraw(fig, new)


def accuracy_figure(runs: pd.DataFrame, fig: go.Figure | None = None, metric: str = "test_acc") -> go.Figure:
    """Bars of mean ``metric`` per regime with ± std error bars, and one dot per seed (from ``compare_regimes``)."""
    new = go.Figure()
    if len(runs):
        order = list(dict.fromkeys(runs["regime"]))
        g = runs.groupby("regime", sort=False)[metric]
        mean = g.mean().reindex(order)
        std = g.std(ddof=1).reindex(order).fillna(0.0)
        new.add_trace(go.Bar(x=order, y=100 * mean, name="mean over seeds",
                             error_y=dict(type="data", array=100 * std, visible=True),
                             marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(order))],
                             text=[f"{100 * m:.2f}%" for m in mean], textposition="outside"))
        new.add_trace(go.Scatter(x=runs["regime"], y=100 * runs[metric], mode="markers", name="one seed",
                                 marker=dict(color="black", size=7, symbol="circle-open")))
        lo = float(100 * (runs[metric].min())) - 2.0
        new.update_yaxes(range=[max(0.0, lo), 100.5])
    new.update_layout(title="test accuracy: small vs large batch, with and without the recipe",
                      yaxis=dict(title=f"{metric.replace('_', ' ')} (%)"), xaxis=dict(title="regime"),
                      showlegend=True, margin=dict(t=50, r=10))
    return redraw(fig, new)


def metrics_figure(metrics: pd.DataFrame, run: str = "run", metric: str = "test_acc",
                   fig: go.Figure | None = None) -> go.Figure:
    """``metric`` against epoch, one line per value of the ``run`` column (a concatenation of train() metrics)."""
    new = go.Figure()
    groups = list(dict.fromkeys(metrics[run])) if run in metrics.columns else [None]
    for i, name in enumerate(groups):
        part = metrics if name is None else metrics[metrics[run] == name]
        new.add_trace(go.Scatter(x=part["epoch"], y=part[metric], mode="lines+markers", name=str(name),
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    new.update_layout(title=f"{metric.replace('_', ' ')} per epoch", xaxis=dict(title="epoch"),
                      yaxis=dict(title=metric.replace("_", " ")), margin=dict(t=50, r=10))
    return redraw(fig, new)


def log_ticks(max_step: float) -> list[float]:
    """Powers of ten up to ``max_step`` (handy tick values for the step axis)."""
    return [float(10 ** k) for k in range(0, int(np.ceil(np.log10(max(max_step, 1)))) + 1)]


__all__ = ["distance_figure", "walk_figure", "accuracy_figure", "metrics_figure", "log_ticks"]
