"""Figures of the topology lab: pure functions from tidy DataFrames to plotly figures (no torch, no ipywidgets).

- :func:`nnstd_heatmap`: pairwise NNSTD (mean over layers) of several networks from
  ``workbench.topology.nnstd_matrix``; axis labels carry each network's test accuracy when given, so one sees that
  nets of equal accuracy sit far apart in topology (Liu et al. 2020).
- :func:`nnstd_epochs_figure`: per-layer NNSTD along training from ``workbench.topology.nnstd_over_epochs``: mean
  over the pairs, with the range (min–max) as error bars.
- :func:`set_scale_figure`: recorded SET scale results (memory against connections, epoch time per thread choice).
- :func:`connections_figure`: the connections of a small network from ``workbench.topology.connection_table``,
  neurons in columns by level, edges coloured by the sign of their weight (grey when only a mask is known).

Each takes an optional ``fig=`` to redraw into (:func:`workbench.viz.figure.redraw`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import DataError
from workbench.viz.figure import redraw

__all__ = ["nnstd_heatmap", "nnstd_epochs_figure", "connections_figure", "set_scale_figure"]

_LAYER_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def nnstd_heatmap(df: pd.DataFrame, accuracies: Any = None, fig: go.Figure | None = None,
                  title: str = "NNSTD between networks (mean over layers)") -> go.Figure:
    """Heatmap of the network-level NNSTD (columns ``a, b, distance`` and usually ``layer``; averaged over layers).

    ``accuracies``: a mapping or Series name → accuracy in [0, 1] (or a DataFrame with ``name``/``accuracy``
    columns); shown in the axis labels and hover text.
    """
    if df.empty:
        raise DataError("nnstd_heatmap: empty NNSTD table; pass nnstd_matrix's output (columns a, b, distance), "
                        "at least one row")
    order = list(dict.fromkeys(df["a"].tolist()))
    mat = df.groupby(["a", "b"], sort=False)["distance"].mean().unstack().reindex(index=order, columns=order)
    acc: dict[str, float] = {}
    if accuracies is not None:
        if isinstance(accuracies, pd.DataFrame):
            acc = dict(zip(accuracies.iloc[:, 0].astype(str), accuracies["accuracy"]))
        else:
            acc = {str(k): float(v) for k, v in dict(accuracies).items()}
    labels = [f"{n} ({acc[str(n)]:.1%})" if str(n) in acc else str(n) for n in order]
    z = mat.to_numpy()
    text = np.vectorize(lambda v: f"{v:.3f}")(z) if z.size else z
    trace = go.Heatmap(z=z, x=labels, y=labels, zmin=0, zmax=1, colorscale="Viridis", text=text,
                       texttemplate="%{text}" if len(order) <= 12 else None,
                       colorbar=dict(title="NNSTD"),
                       hovertemplate="%{y} vs %{x}<br>NNSTD %{z:.4f}<extra></extra>")
    layout = dict(title=title, xaxis=dict(title="network", type="category"),
                  yaxis=dict(title="network", type="category", autorange="reversed"), height=420)
    return redraw(fig, go.Figure([trace], layout))


def nnstd_epochs_figure(df: pd.DataFrame, fig: go.Figure | None = None,
                        title: str = "NNSTD along training, per layer") -> go.Figure:
    """Per-layer NNSTD against the epoch (columns ``epoch, layer, distance`` and optionally ``name``): the mean over
    network pairs as a line, the min–max range as error bars."""
    if df.empty:
        raise DataError("nnstd_epochs_figure: empty table; pass nnstd_over_epochs' output (columns epoch, layer, "
                        "distance), at least one row")
    g = df.groupby(["layer", "epoch"])["distance"].agg(["mean", "min", "max"]).reset_index()
    names = df.groupby("layer")["name"].first() if "name" in df else None
    traces = []
    for k, (layer, sub) in enumerate(g.groupby("layer")):
        label = f"layer {layer}" + (f" ({names[layer]})" if names is not None else "")
        traces.append(go.Scatter(
            x=sub["epoch"], y=sub["mean"], mode="lines+markers", name=label,
            line=dict(color=_LAYER_COLORS[k % len(_LAYER_COLORS)]),
            error_y=dict(type="data", symmetric=False, array=sub["max"] - sub["mean"],
                         arrayminus=sub["mean"] - sub["min"], thickness=1),
            hovertemplate="epoch %{x}<br>NNSTD %{y:.4f}<extra>" + label + "</extra>"))
    layout = dict(title=title, xaxis=dict(title="epoch"), yaxis=dict(title="NNSTD", range=[0, 1.02]), height=380)
    return redraw(fig, go.Figure(traces, layout))


def connections_figure(df: pd.DataFrame, sizes: list[int] | None = None, fig: go.Figure | None = None,
                       title: str = "Connections") -> go.Figure:
    """Draw a small network (columns ``level, source, target, weight``; sizes per level in ``sizes`` or
    ``df.attrs["sizes"]``): one column of neurons per level, positive weights blue, negative red, mask-only grey."""
    sizes = list(sizes if sizes is not None else df.attrs.get("sizes", []))
    if not sizes:
        lv = int(df["level"].max()) + 1 if len(df) else 0
        sizes = [int(df[df.level == 0]["source"].max()) + 1] + [
            int(df[df.level == k]["target"].max()) + 1 for k in range(lv)]

    def ypos(level: int, idx: Any) -> Any:
        n = sizes[level]
        return (np.asarray(idx) + 0.5) / n if n else idx

    xs: dict[str, list[float | None]] = {"pos": [], "neg": [], "mask": []}
    ys: dict[str, list[float | None]] = {"pos": [], "neg": [], "mask": []}
    w = df["weight"].to_numpy(dtype=float) if len(df) else np.empty(0)
    kind = np.where(np.isnan(w), "mask", np.where(w >= 0, "pos", "neg"))
    lvl, src, dst = (df["level"].to_numpy(), df["source"].to_numpy(), df["target"].to_numpy())
    for key in xs:
        sel = kind == key
        if sel.any():
            l, s, t = lvl[sel], src[sel], dst[sel]
            x = np.stack([l, l + 1, np.full(l.size, np.nan)], 1).ravel()
            y = np.stack([[ypos(int(a), b) for a, b in zip(l, s)], [ypos(int(a) + 1, b) for a, b in zip(l, t)],
                          np.full(l.size, np.nan)], 1).ravel()
            xs[key], ys[key] = [None if np.isnan(v) else float(v) for v in x], [
                None if np.isnan(v) else float(v) for v in y]
    style = {"pos": ("positive weight", "rgba(31,119,180,0.35)"), "neg": ("negative weight", "rgba(214,39,40,0.35)"),
             "mask": ("connection", "rgba(120,120,120,0.35)")}
    traces = [go.Scatter(x=xs[k], y=ys[k], mode="lines", name=style[k][0], line=dict(color=style[k][1], width=1),
                         hoverinfo="skip") for k in ("pos", "neg", "mask")]
    nx = [float(level) for level, n in enumerate(sizes) for _ in range(n)]
    ny = [float(ypos(level, i)) for level, n in enumerate(sizes) for i in range(n)]
    nt = [f"level {level}, neuron {i}" for level, n in enumerate(sizes) for i in range(n)]
    traces.append(go.Scatter(x=nx, y=ny, mode="markers", name="neurons", text=nt, hoverinfo="text",
                             marker=dict(size=5, color="#333")))
    layout = dict(title=title, height=420, showlegend=True,
                  xaxis=dict(title="level (0 = inputs)", tickvals=list(range(len(sizes))), zeroline=False),
                  yaxis=dict(visible=False, range=[0, 1]))
    return redraw(fig, go.Figure(traces, layout))


def set_scale_figure(df: pd.DataFrame, fig: go.Figure | None = None,
                     title: str = "SET at scale: memory per connection and the thread choice") -> go.Figure:
    """Recorded SET scale results (``benchmarks/topology_scale_set.py``'s ``data/results/set_scale.csv``): left, the
    peak memory above the process start against the connections (log-log; rows with ``part == "scale"``,
    ``connections, above_start_gib``), with the least-squares line ``a + b · connections``; right, the epoch time
    with the automatic thread choice and with 1 and 2 threads forced per hidden size (``part == "threads"``,
    ``hidden, auto_s, one_thread_s, two_threads_s``)."""
    from plotly.subplots import make_subplots

    need = {"part", "hidden", "connections"}
    if df.empty or not need <= set(df.columns):
        raise DataError(f"set_scale_figure: need a table with columns {sorted(need)} (data/results/set_scale.csv), "
                        f"got {len(df)} rows with columns {list(df.columns)}")
    scale = df[(df.part == "scale") & df.get("above_start_gib", pd.Series(dtype=float)).notna()]
    scale = scale.groupby("hidden", as_index=False)[["connections", "above_start_gib"]].max()
    threads = df[df.part == "threads"].sort_values("hidden")
    out = make_subplots(rows=1, cols=2, subplot_titles=("peak memory above start", "SET epoch time"),
                        horizontal_spacing=0.12)
    if len(scale):
        x, y = scale.connections.to_numpy(float), scale.above_start_gib.to_numpy(float)
        out.add_trace(go.Scatter(x=x, y=y, mode="markers+text", name="measured",
                                 text=[f"H={h:,}" for h in scale.hidden], textposition="top left",
                                 hovertemplate="%{x:,} connections<br>%{y:.2f} GiB<extra></extra>"), row=1, col=1)
        if len(x) >= 2:
            b, a = np.polyfit(x, y, 1)
            xs = np.geomspace(x.min(), x.max(), 30)
            out.add_trace(go.Scatter(x=xs, y=a + b * xs, mode="lines", line=dict(dash="dot"),
                                     name=f"fit: {b * 2**30:.0f} B per connection"), row=1, col=1)
        out.update_xaxes(type="log", title="connections", row=1, col=1)
        out.update_yaxes(type="log", title="GiB", row=1, col=1)
    labels = [f"{h:,}" for h in threads.hidden]
    for col, name, color in (("auto_s", "automatic", "#2ca02c"), ("one_thread_s", "1 thread", "#1f77b4"),
                             ("two_threads_s", "2 threads", "#ff7f0e")):
        if col in threads:
            out.add_trace(go.Bar(x=labels, y=threads[col], name=name, marker_color=color,
                                 hovertemplate="H=%{x}<br>%{y:.3f} s<extra>" + name + "</extra>"), row=1, col=2)
    out.update_xaxes(title="hidden neurons per layer (784-H-H-10)", type="category", row=1, col=2)
    out.update_yaxes(type="log", title="seconds per epoch", row=1, col=2)
    out.update_layout(title=title, barmode="group", height=420)
    return redraw(fig, out)
