"""Figures of the quantization lab: pure functions DataFrame -> plotly ``go.Figure`` (optional ``fig=`` to redraw
into, :func:`workbench.viz.figure.redraw`).

- :func:`sqnr_heatmap`: layers × formats of a metric from :func:`workbench.quant.layer_error`;
- :func:`sqnr_bar`: one format's metric per layer;
- :func:`weight_histogram`: a layer's weights with the scaled grid of representable values overlaid;
- :func:`allocation_bar`: the bit allocation per layer (format and size);
- :func:`frontier_plot`: loss (or accuracy) vs size of allocated and uniform assignments;
- :func:`number_line`: the representable values of number formats on a log axis (FP8 E4M3 vs E5M2);
- :func:`training_curves`: test accuracy per epoch (binarized vs float).
No torch import: inputs are DataFrames, lists and numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

__all__ = ["sqnr_heatmap", "sqnr_bar", "weight_histogram", "allocation_bar", "frontier_plot", "number_line",
           "training_curves"]


def _finite(v: pd.Series) -> pd.Series:
    return v.replace([np.inf, -np.inf], np.nan)


def sqnr_heatmap(df: pd.DataFrame, value: str = "output_sqnr_db", fig: go.Figure | None = None) -> go.Figure:
    """Heatmap of ``value`` with one row per layer (model order) and one column per format."""
    new = go.Figure()
    layers = list(dict.fromkeys(df["layer"]))
    fmts = list(dict.fromkeys(df["format"]))
    piv = df.pivot_table(index="layer", columns="format", values=value, aggfunc="first").reindex(index=layers,
                                                                                                 columns=fmts)
    z = _finite(piv.stack(future_stack=True)).unstack().reindex(index=layers, columns=fmts).to_numpy(dtype=float)
    text = np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.1f}")(z)
    new.add_trace(go.Heatmap(z=z, x=fmts, y=layers, colorscale="Viridis", text=text, texttemplate="%{text}",
                             colorbar=dict(title=value.replace("_", " "))))
    new.update_layout(title=f"{value.replace('_', ' ')} per layer and format", yaxis=dict(autorange="reversed"),
                      xaxis_title="format", height=max(300, 22 * len(layers) + 120))
    return redraw(fig, new)


def sqnr_bar(df: pd.DataFrame, fmt: str, value: str = "output_sqnr_db", fig: go.Figure | None = None) -> go.Figure:
    """Bar per layer of ``value`` for format ``fmt``."""
    new = go.Figure()
    d = df[df["format"] == fmt]
    new.add_trace(go.Bar(x=list(d["layer"]), y=list(_finite(d[value])), name=fmt))
    new.update_layout(title=f"{value.replace('_', ' ')} — {fmt}", xaxis_title="layer",
                      yaxis_title=value.replace("_", " "))
    return redraw(fig, new)


def weight_histogram(weights: np.ndarray, grid: np.ndarray, fmt: str, layer: str = "", bins: int = 120,
                     fig: go.Figure | None = None) -> go.Figure:
    """Histogram of a layer's weights with the (already scaled) representable values as vertical ticks: the
    teaching picture of rounding. Grid values beyond the weights' range ±10 % are not drawn."""
    new = go.Figure()
    w = np.asarray(weights, dtype=float).ravel()
    lim = 1.1 * float(np.abs(w).max()) if w.size else 1.0
    g = np.asarray(grid, dtype=float)
    g = g[np.abs(g) <= lim]
    counts, edges = np.histogram(w, bins=bins, range=(-lim, lim))
    top = float(counts.max()) if counts.size else 1.0
    xs = np.repeat(g, 3)
    ys = np.tile([0.0, top * 1.05, np.nan], len(g))
    xs = np.where(np.arange(len(xs)) % 3 == 2, np.nan, xs)
    new.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name="weights", marker_color="#4c78a8",
                         width=(edges[1] - edges[0])))
    new.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{fmt} grid ({len(g)} values)",
                             line=dict(color="#e45756", width=1)))
    new.update_layout(title=f"{layer} weights and the {fmt} grid", xaxis_title="value", yaxis_title="count",
                      bargap=0)
    return redraw(fig, new)


def allocation_bar(table: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Size per layer of an allocation (``Allocation.table``), coloured by format."""
    new = go.Figure()
    for f in dict.fromkeys(table["format"]):
        d = table[table["format"] == f]
        new.add_trace(go.Bar(x=list(d["layer"]), y=list(d["size_bytes"]), name=f))
    new.update_layout(title="bit allocation: format and bytes per layer", barmode="stack",
                      xaxis=dict(categoryorder="array", categoryarray=list(table["layer"])),
                      yaxis_title="bytes")
    return redraw(fig, new)


def frontier_plot(df: pd.DataFrame, y: str = "measured_loss", fig: go.Figure | None = None) -> go.Figure:
    """Loss (or ``value``) vs size: the allocated frontier as a line, uniform assignments as labelled markers."""
    new = go.Figure()
    if y not in df.columns:
        y = "predicted_loss"
    a = df[df["kind"] == "allocated"].sort_values("size_bytes")
    u = df[df["kind"] == "uniform"]
    new.add_trace(go.Scatter(x=list(a["size_bytes"]), y=list(a[y]), mode="lines+markers", name="allocated (MILP)"))
    if "predicted_loss" in df.columns and y != "predicted_loss":
        new.add_trace(go.Scatter(x=list(a["size_bytes"]), y=list(a["predicted_loss"]), mode="lines",
                                 name="predicted (Σ ΔL)", line=dict(dash="dot")))
    new.add_trace(go.Scatter(x=list(u["size_bytes"]), y=list(u[y]), mode="markers+text", name="uniform",
                             text=[str(s) for s in u["assignment"]], textposition="top center",
                             marker=dict(size=10, symbol="diamond")))
    new.update_layout(title="size vs " + y.replace("_", " "), xaxis_title="weight bytes",
                      yaxis_title=y.replace("_", " "))
    return redraw(fig, new)


def number_line(grids: dict[str, np.ndarray], fig: go.Figure | None = None) -> go.Figure:
    """Positive representable values of each format on a log axis, one row per format."""
    new = go.Figure()
    for i, (name, g) in enumerate(grids.items()):
        g = np.asarray(g, dtype=float)
        g = g[g > 0]
        new.add_trace(go.Scatter(x=g, y=[name] * len(g), mode="markers", name=f"{name} ({len(g)} > 0)",
                                 marker=dict(symbol="line-ns-open", size=14)))
    new.update_layout(title="positive representable values", xaxis=dict(type="log", title="value"),
                      height=120 + 60 * len(grids))
    return redraw(fig, new)


def training_curves(histories: dict[str, pd.DataFrame], y: str = "test_accuracy",
                    fig: go.Figure | None = None) -> go.Figure:
    """One line per run of ``y`` against epoch."""
    new = go.Figure()
    for name, h in histories.items():
        new.add_trace(go.Scatter(x=list(h["epoch"]), y=list(h[y]), mode="lines", name=name))
    new.update_layout(title=y.replace("_", " ") + " per epoch", xaxis_title="epoch",
                      yaxis_title=y.replace("_", " "))
    return redraw(fig, new)
