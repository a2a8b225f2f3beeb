"""Figures of the dashboard's live readouts: pure functions from tidy DataFrames to plotly figures.

- :func:`readout_figure`: the unmodified model against the current formats, on one [0, 1] axis: accuracy (or
  embedding cosine for sentence-embedding models) and model size as a fraction of the dense float32 size.
- :func:`layer_error_figure`: weight SQNR per layer, ``20·log10(‖w‖/‖w − q(w)‖)`` dB (higher is better; a layer
  left dense has no bar), coloured by the layer's format.

Each takes an optional ``fig=`` to draw into, so the dashboard creates one ``FigureWidget`` per plot once and
redraws it inside ``fig.batch_update()`` (FigureWidgets are never freed; creating one per toggle leaks). The trace
count of each figure is fixed, so redrawing only updates trace data. No torch and no ipywidgets here.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import pandas as pd
import plotly.graph_objects as go

__all__ = ["readout_figure", "layer_error_figure", "short_layer_names", "FORMAT_COLORS", "format_color"]

#: Colours of the number formats (sparsity-only formats use the first entry); stable across redraws.
FORMAT_COLORS: dict[str, str] = {
    "dense": "#9e9e9e",
    "2:4": "#1f77b4",
    "4:8-T": "#17becf",
    "fp8_e4m3": "#ff7f0e",
    "fp8_e5m2": "#d62728",
    "int8": "#2ca02c",
    "int4": "#8c564b",
    "binary": "#9467bd",
}


def format_color(fmt: str) -> str:
    """The colour of a format: its number part's colour, else its sparsity part's, else grey."""
    parts = [p for p in str(fmt).split("+") if p]
    for p in reversed(parts):  # number format wins over the sparsity pattern
        if p in FORMAT_COLORS:
            return FORMAT_COLORS[p]
    return "#7f7f7f"


def short_layer_names(names: list[str]) -> list[str]:
    """Layer names without their longest common dotted prefix (keeps at least the last component).

    >>> short_layer_names(["0.auto_model.encoder.layer.0.attention.q", "0.auto_model.encoder.layer.1.output.dense"])
    ['0.attention.q', '1.output.dense']
    >>> short_layer_names(["conv1", "fc2"])
    ['conv1', 'fc2']
    """
    if len(names) < 2:
        return [n.split(".")[-1] if len(n) > 24 else n for n in names]
    split = [n.split(".") for n in names]
    common = 0
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common += 1
    common = min(common, min(len(s) for s in split) - 1)
    return [".".join(s[common:]) for s in split]


def _batch(fig: Any):
    return fig.batch_update() if hasattr(fig, "batch_update") else nullcontext()


def _draw(fig: go.Figure | None, traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """Create a figure with ``traces`` (bars), or update ``fig``'s traces in place inside one batch update."""
    if fig is None:
        fig = go.Figure()
    with _batch(fig):
        if len(fig.data) != len(traces):
            if len(fig.data):  # a figure of another shape: start over (never happens with figures made here)
                fig.data = ()
            fig.add_traces([go.Bar(**t) for t in traces])
        else:
            for trace, spec in zip(fig.data, traces):
                trace.update(**spec)
        fig.update_layout(**layout)
    return fig


def readout_figure(df: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Bars of the unmodified model against the current formats.

    ``df`` is tidy with columns ``metric`` (``"accuracy"``, ``"cosine"``, ``"size_fraction"`` ... any metric in
    [0, 1]), ``which`` (``"unmodified"`` or ``"current"``) and ``value``. Other metrics (loss, bytes) are ignored.

    >>> df = pd.DataFrame({"metric": ["accuracy", "accuracy", "size_fraction", "size_fraction"],
    ...                    "which": ["unmodified", "current"] * 2, "value": [0.97, 0.91, 1.0, 0.25]})
    >>> [t.name for t in readout_figure(df).data]
    ['unmodified', 'current']
    """
    wanted = [m for m in ("accuracy", "cosine", "size_fraction") if m in set(df.get("metric", []))]
    labels = {"accuracy": "accuracy", "cosine": "embedding cosine", "size_fraction": "size / dense fp32"}
    traces = []
    for which, color in (("unmodified", "#9e9e9e"), ("current", "#1f77b4")):
        sub = df[df["which"] == which].set_index("metric")["value"] if len(df) else pd.Series(dtype=float)
        ys = [float(sub.get(m, math.nan)) for m in wanted]
        traces.append(dict(
            name=which, x=[labels[m] for m in wanted], y=ys, marker_color=color,
            text=[("" if math.isnan(y) else f"{y:.4f}") for y in ys], textposition="outside",
            hovertemplate="%{x}: %{y:.4f}<extra>" + which + "</extra>",
        ))
    layout = dict(
        barmode="group", title=dict(text=title or "Unmodified vs current formats", x=0.02),
        yaxis=dict(range=[0, 1.15], title="value"), height=300, margin=dict(l=50, r=10, t=40, b=40),
        legend=dict(orientation="h", y=-0.2), template="plotly_white",
    )
    return _draw(fig, traces, layout)


def layer_error_figure(df: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None) -> go.Figure:
    """Weight SQNR per layer (dB), one bar per layer coloured by its format.

    ``df`` has one row per layer with columns ``layer``, ``format`` and ``sqnr_db`` (``inf`` or NaN for a layer
    whose weights are unchanged: no bar and no label).

    >>> df = pd.DataFrame({"layer": ["fc1", "fc2"], "format": ["int8", "dense"], "sqnr_db": [41.5, float("inf")]})
    >>> fig = layer_error_figure(df)
    >>> list(fig.data[0].text)
    ['int8 · 41.5 dB', '']
    """
    layers = [str(x) for x in df["layer"]] if len(df) else []
    fmts = [str(x) for x in df["format"]] if len(df) else []
    raw = [float(v) for v in df["sqnr_db"]] if len(df) else []
    ys = [v if math.isfinite(v) else None for v in raw]
    # no label on a missing bar: plotly.js drops every bar label of later redraws after one (seen in 2.x/3.x)
    text = [(f"{f} · {v:.1f} dB" if y is not None else "") for f, v, y in zip(fmts, raw, ys)]
    finite = [y for y in ys if y is not None]
    top = max(finite) if finite else 60.0
    traces = [dict(
        name="weight SQNR", x=short_layer_names(layers), y=ys, customdata=[[n, f] for n, f in zip(layers, fmts)],
        marker_color=[format_color(f) for f in fmts], text=text, textposition="outside", cliponaxis=False,
        hovertemplate="%{customdata[0]}<br>%{customdata[1]}: %{y:.2f} dB<extra></extra>", showlegend=False,
    )]
    layout = dict(
        title=dict(text=title or "Per-layer weight error (SQNR, higher is better)", x=0.02),
        yaxis=dict(title="SQNR [dB]", range=[min(0.0, min(finite, default=0.0)), max(10.0, top * 1.25)]),
        xaxis=dict(tickangle=-30 if len(layers) > 6 else 0, automargin=True),
        height=340, margin=dict(l=50, r=10, t=40, b=60), template="plotly_white",
    )
    return _draw(fig, traces, layout)
