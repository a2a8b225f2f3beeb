"""Figures of the compression report: pure functions DataFrame -> plotly ``go.Figure`` (no torch import).

They take the tidy tables of :mod:`workbench.reports.compression` and accept ``fig=`` to redraw into an existing figure
(:func:`workbench.viz.figure.redraw`).
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw


def tradeoff_figure(tradeoff: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Score against model size (kB), one labelled marker per format (formats at the same point share one label);
    the dense baseline as a dashed line."""
    new = go.Figure()
    metric = str(tradeoff["metric"].iloc[0]) if len(tradeoff) else "value"
    point = list(zip(tradeoff["size_bytes"].round(0), tradeoff["value"].round(6)))
    first = {p: i for i, p in reversed(list(enumerate(point)))}
    shared = {p: " · ".join(f for f, q in zip(tradeoff["format"], point) if q == p) for p in first}
    labels = [shared[p] if first[p] == i else "" for i, p in enumerate(point)]  # one label per point
    new.add_trace(go.Scatter(
        x=tradeoff["size_bytes"] / 1000.0, y=tradeoff["value"], mode="markers+text", text=labels,
        textposition="top center", marker={"size": 10},
        customdata=tradeoff[["compression", "loss"]].to_numpy(),
        hovertext=tradeoff["format"], hovertemplate="%{hovertext}<br>size %{x:.1f} kB (×%{customdata[0]:.2f})<br>" + metric
                      + " %{y:.4f}<br>loss %{customdata[1]:.4f}<extra></extra>",
        name="formats"))
    dense = tradeoff[tradeoff["format"] == "dense"]
    if len(dense):
        new.add_hline(y=float(dense["value"].iloc[0]), line_dash="dash", line_color="gray")  # its marker says "dense"
    new.update_layout(title=f"{metric} vs size", xaxis_title="model size (kB)", yaxis_title=metric, height=420,
                      showlegend=False)
    return redraw(fig, new)


def layer_error_figure(errors: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Heatmap of weight SQNR (dB), layers × formats; exact formats (infinite SQNR) and skipped layers left blank."""
    new = go.Figure()
    table = errors.pivot(index="layer", columns="format", values="weight_sqnr_db")
    table = table.reindex(index=list(dict.fromkeys(errors["layer"])), columns=list(dict.fromkeys(errors["format"])))
    z = [[None if (v is None or not math.isfinite(v)) else float(v) for v in row] for row in table.to_numpy()]
    text = [["" if v is None else f"{v:.1f}" for v in row] for row in z]
    new.add_trace(go.Heatmap(z=z, x=list(table.columns), y=list(table.index), text=text, texttemplate="%{text}",
                             colorscale="Viridis", colorbar={"title": "SQNR dB"},
                             hovertemplate="layer %{y}<br>%{x}: %{z:.2f} dB<extra></extra>"))
    new.update_layout(title="weight SQNR per layer (dB, higher is better)", height=120 + 40 * len(table),
                      yaxis={"autorange": "reversed"})
    return redraw(fig, new)


def mask_figure(sample: pd.DataFrame, title: str = "mask", fig: go.Figure | None = None) -> go.Figure:
    """The weights of a corner of a layer, pruned ones greyed out: kept weights coloured by value."""
    new = go.Figure()
    wide_w = sample.pivot(index="row", columns="col", values="weight")
    wide_k = sample.pivot(index="row", columns="col", values="kept").reindex_like(wide_w)
    kept = wide_w.where(wide_k == 1)
    pruned = wide_k.where(wide_k == 0)
    new.add_trace(go.Heatmap(z=pruned.to_numpy(), x=list(wide_w.columns), y=list(wide_w.index), showscale=False,
                             colorscale=[[0, "#dddddd"], [1, "#dddddd"]], hoverinfo="skip", name="pruned"))
    new.add_trace(go.Heatmap(z=kept.to_numpy(), x=list(wide_w.columns), y=list(wide_w.index), colorscale="RdBu",
                             zmid=0, colorbar={"title": "weight"}, name="kept",
                             hovertemplate="row %{y}, col %{x}<br>w = %{z:.4f}<extra></extra>"))
    # square cells without padding the x axis beyond the data: the plot area shrinks to fit instead
    new.update_layout(title=title, xaxis_title="input", yaxis_title="output", height=360,
                      xaxis={"range": [min(wide_w.columns) - 0.5, max(wide_w.columns) + 0.5], "constrain": "domain"},
                      yaxis={"range": [max(wide_w.index) + 0.5, min(wide_w.index) - 0.5], "scaleanchor": "x",
                             "constrain": "domain"})
    return redraw(fig, new)


def quantization_figure(sample: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Rounded against original weight values, one trace per number format (the rounding staircase)."""
    new = go.Figure()
    for fmt, part in sample.groupby("format", sort=False):
        part = part.sort_values("original")
        new.add_trace(go.Scatter(x=part["original"], y=part["quantized"], mode="markers", marker={"size": 4},
                                 name=str(fmt)))
    if len(sample):
        lo, hi = float(sample["original"].min()), float(sample["original"].max())
        new.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "gray"},
                                 name="identity"))
    new.update_layout(title="quantized vs original weights", xaxis_title="original", yaxis_title="quantized",
                      height=420)
    return redraw(fig, new)


__all__ = ["tradeoff_figure", "layer_error_figure", "mask_figure", "quantization_figure"]
