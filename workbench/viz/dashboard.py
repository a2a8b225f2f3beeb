"""Figures of the dashboard's live readouts: pure functions from tidy DataFrames to plotly figures.

- :func:`readout_figure`: the unmodified model against the current formats, on one [0, 1] axis: accuracy (or
  embedding cosine for sentence-embedding models) and model size as a fraction of the dense float32 size.
- :func:`layer_error_figure`: weight SQNR per layer, ``20·log10(‖w‖/‖w − q(w)‖)`` dB (higher is better; a layer
  left dense has no bar), coloured by the layer's format.

Each takes an optional ``fig=`` to draw into (:func:`workbench.viz.figure.redraw`); the trace count of each figure
is fixed, so redrawing only updates trace data. A model with many layers (MiniLM: 36) gets horizontal bars for the
:data:`TOP_LAYERS` layers whose weights changed most (lowest SQNR), so every label is legible; the dashboard's layer
table lists them all. No torch and no ipywidgets here.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

__all__ = ["readout_figure", "layer_error_figure", "short_layer_names", "FORMAT_COLORS", "format_color",
           "TOP_LAYERS"]

#: At most this many layers in the per-layer error plot; beyond it the most changed ones (lowest SQNR) are shown.
TOP_LAYERS = 12

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
    return redraw(fig, go.Figure([go.Bar(**t) for t in traces], layout))


def layer_error_figure(df: pd.DataFrame, fig: go.Figure | None = None, title: str | None = None,
                       top: int = TOP_LAYERS) -> go.Figure:
    """Weight SQNR per layer (dB), one bar per layer coloured by its format.

    ``df`` has one row per layer with columns ``layer``, ``format`` and ``sqnr_db`` (``inf`` or NaN for a layer
    whose weights are unchanged: no bar and no label). Up to ``top`` layers: vertical bars in model order. More
    layers: horizontal bars (names on the y axis, model order top-down) for the ``top`` layers of lowest SQNR, the
    title saying how many of how many are shown.

    >>> df = pd.DataFrame({"layer": ["fc1", "fc2"], "format": ["int8", "dense"], "sqnr_db": [41.5, float("inf")]})
    >>> fig = layer_error_figure(df)
    >>> list(fig.data[0].text)
    ['int8 · 41.5 dB']
    >>> many = pd.DataFrame({"layer": [f"l{i}" for i in range(30)], "format": "int8", "sqnr_db": range(30)})
    >>> f = layer_error_figure(many, top=5)
    >>> f.data[0].orientation, list(f.data[0].y), f.layout.title.text.startswith("5 of 30 layers")
    ('h', ['l0', 'l1', 'l2', 'l3', 'l4'], True)
    """
    layers = [str(x) for x in df["layer"]] if len(df) else []
    fmts = [str(x) for x in df["format"]] if len(df) else []
    raw = [float(v) for v in df["sqnr_db"]] if len(df) else []
    changed = [i for i, v in enumerate(raw) if math.isfinite(v)]  # a layer left dense has no bar
    many = len(layers) > top
    if many:  # the `top` most changed layers, shown in model order
        changed = sorted(sorted(changed, key=lambda i: raw[i])[:top])
    names = short_layer_names(layers)
    xs = [names[i] for i in changed]
    ys = [raw[i] for i in changed]
    text = [f"{fmts[i]} · {raw[i]:.1f} dB" for i in changed]
    hi = max(ys, default=60.0)
    value_range = [min(0.0, min(ys, default=0.0)), max(10.0, hi * (1.45 if many else 1.25))]
    bar = dict(
        name="weight SQNR", customdata=[[layers[i], fmts[i]] for i in changed],
        marker_color=[format_color(fmts[i]) for i in changed], text=text, textposition="outside", cliponaxis=False,
        showlegend=False,
    )
    heading = title or "Per-layer weight error (SQNR, higher is better)"
    if many:
        bar.update(x=ys, y=xs, orientation="h",
                   hovertemplate="%{customdata[0]}<br>%{customdata[1]}: %{x:.2f} dB<extra></extra>")
        shown = f"{len(changed)} of {len(layers)} layers, lowest SQNR" if changed else f"{len(layers)} layers"
        layout = dict(
            title=dict(text=f"{shown}: {heading}", x=0.02),
            xaxis=dict(title="SQNR [dB]", range=value_range),
            yaxis=dict(autorange="reversed", automargin=True, type="category"),
            height=max(240, 26 * max(len(changed), 4) + 110), margin=dict(l=10, r=20, t=40, b=50),
            template="plotly_white",
        )
    else:
        bar.update(x=xs, y=ys, hovertemplate="%{customdata[0]}<br>%{customdata[1]}: %{y:.2f} dB<extra></extra>")
        layout = dict(
            title=dict(text=heading, x=0.02),
            yaxis=dict(title="SQNR [dB]", range=value_range),
            xaxis=dict(tickangle=-30 if len(layers) > 6 else 0, automargin=True, type="category",
                       categoryorder="array", categoryarray=names),
            height=340, margin=dict(l=50, r=10, t=40, b=60), template="plotly_white",
        )
    return redraw(fig, go.Figure([go.Bar(**bar)], layout))
