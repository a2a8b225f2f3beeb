"""Figures of the zero-shot lab: pure functions from tidy DataFrames / arrays to plotly figures (no torch, no
ipywidgets).

- :func:`soft_label_figure`: one example's soft target as bars over the classes (true class, unseen classes and the
  other seen classes in different colours).
- :func:`digit_figure`: an 8×8 digit as a grey image.
- :func:`tradeoff_figure`: the seen/unseen accuracy curves of calibrated stacking (``workbench.zeroshot``'s
  ``tradeoff_curve`` rows, one line per ``method``), with the uncalibrated point (γ = 0) marked.
- :func:`metrics_table_figure`: the mean ± sd table of ``compare_methods(...).table`` as a plotly table.

Each takes an optional ``fig=`` to redraw into (:func:`workbench.viz.figure.redraw`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.errors import DataError
from workbench.viz.figure import redraw

__all__ = ["soft_label_figure", "digit_figure", "tradeoff_figure", "metrics_table_figure"]

_METHOD_COLORS = {"soft_labels": "#d62728", "dap": "#1f77b4", "eszsl": "#2ca02c"}
_KIND_COLORS = {"true class": "#444444", "unseen": "#d62728", "other seen": "#9ecae1"}


def _draw(fig: go.Figure | None, traces: list[Any], layout: dict[str, Any]) -> go.Figure:
    return redraw(fig, go.Figure(data=traces, layout=layout))


def soft_label_figure(target: Sequence[float], true_class: int, unseen: Sequence[int], fig: go.Figure | None = None,
                      title: str | None = None, class_names: Sequence[str] | None = None) -> go.Figure:
    """Bars of one soft target (length C, sums to 1): the true class dark, unseen classes red, other seen classes
    pale (they get 0 by construction)."""
    t = np.asarray(target, dtype=float)
    if t.ndim != 1 or not len(t):
        raise DataError(f"soft_label_figure: target must be a non-empty vector (one value per class), "
                        f"got shape {t.shape}")
    names = [str(c) for c in (class_names or range(len(t)))]
    unseen_set = {int(u) for u in unseen}
    kinds = ["true class" if c == int(true_class) else "unseen" if c in unseen_set else "other seen"
             for c in range(len(t))]
    traces = []
    for kind, color in _KIND_COLORS.items():
        idx = [c for c in range(len(t)) if kinds[c] == kind]
        traces.append(go.Bar(x=[names[c] for c in idx], y=t[idx], name=kind, marker_color=color,
                             text=[f"{v:.2f}" if v >= 0.005 else "" for v in t[idx]], textposition="outside",
                             hovertemplate="class %{x}<br>target %{y:.4f}<extra>" + kind + "</extra>"))
    mass = float(t[sorted(unseen_set)].sum()) if unseen_set else 0.0
    layout = dict(title=title or f"Soft label of a {names[int(true_class)]}: {mass:.2f} on unseen classes",
                  xaxis=dict(title="class", type="category", categoryorder="array", categoryarray=names),
                  yaxis=dict(title="target probability", range=[0, 1.08]), barmode="overlay", height=340,
                  legend=dict(orientation="h", y=-0.25))
    return _draw(fig, traces, layout)


def digit_figure(image: Any, fig: go.Figure | None = None, title: str = "") -> go.Figure:
    """An 8×8 digit (64 values or 8×8, 0 = white) as a grey heatmap, row 0 at the top."""
    img = np.asarray(image, dtype=float).reshape(8, 8)
    trace = go.Heatmap(z=img, colorscale="Greys", showscale=False, hovertemplate="row %{y}, col %{x}: %{z:.2f}"
                       "<extra></extra>")
    layout = dict(title=title, height=260, width=260, xaxis=dict(visible=False),
                  yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"), margin=dict(l=10, r=10, t=40, b=10))
    return _draw(fig, [trace], layout)


def tradeoff_figure(curves: pd.DataFrame, fig: go.Figure | None = None,
                    title: str = "Seen vs unseen accuracy (calibrated stacking)") -> go.Figure:
    """Seen accuracy against unseen accuracy as γ sweeps (columns ``method, gamma, seen, unseen``, optionally
    ``split``/``seed``: then the curves of one method are averaged point-wise over an unseen-accuracy grid). The
    γ = 0 point (no calibration: the GZSL numbers) is marked with a circle."""
    if curves.empty:
        raise DataError("tradeoff_figure: empty curve table; pass tradeoff_curve's rows with a method column "
                        "(columns method, gamma, seen, unseen), at least one row")
    traces: list[Any] = []
    group_cols = [c for c in ("split", "seed") if c in curves.columns]
    grid = np.linspace(0, 1, 101)
    for method, sub in curves.groupby("method", sort=False):
        color = _METHOD_COLORS.get(str(method), None)
        parts = [g for _, g in sub.groupby(group_cols, sort=False)] if group_cols else [sub]
        if len(parts) == 1:
            c = parts[0].sort_values("gamma")
            x, y = c["unseen"].to_numpy(), c["seen"].to_numpy()
            at0 = c.iloc[(c["gamma"].abs()).to_numpy().argmin()]
            x0, y0 = float(at0["unseen"]), float(at0["seen"])
        else:  # the best seen accuracy reachable at each unseen accuracy, averaged over splits / seeds
            ys = []
            for p in parts:
                c = p.sort_values("gamma")
                ys.append([c.loc[c["unseen"] >= g, "seen"].max() if (c["unseen"] >= g).any() else 0.0 for g in grid])
            x, y = grid, np.mean(ys, axis=0)
            zero = [p.iloc[(p["gamma"].abs()).to_numpy().argmin()] for p in parts]
            x0, y0 = float(np.mean([z["unseen"] for z in zero])), float(np.mean([z["seen"] for z in zero]))
        traces.append(go.Scatter(x=x, y=y, mode="lines", name=str(method), line=dict(color=color, shape="hv"),
                                 hovertemplate="unseen %{x:.3f}<br>seen %{y:.3f}<extra>" + str(method) + "</extra>"))
        traces.append(go.Scatter(x=[x0], y=[y0], mode="markers", name=f"{method} (γ = 0)", showlegend=False,
                                 marker=dict(color=color, size=11, line=dict(color="black", width=1)),
                                 hovertemplate="γ = 0: unseen %{x:.3f}, seen %{y:.3f}<extra>" + str(method) +
                                 "</extra>"))
    layout = dict(title=title, xaxis=dict(title="unseen accuracy (per-class mean)", range=[0, 1.02]),
                  yaxis=dict(title="seen accuracy (per-class mean)", range=[0, 1.02]), height=420)
    return _draw(fig, traces, layout)


def metrics_table_figure(table: pd.DataFrame, fig: go.Figure | None = None,
                         title: str = "ZSL and GZSL accuracy, mean ± sd over splits and seeds") -> go.Figure:
    """A plotly table of ``summarize``'s output: one row per method, ``mean ± sd`` cells."""
    if table.empty:
        raise DataError("metrics_table_figure: empty table; pass summarize's output (one row per method, "
                        "*_mean and *_sd columns)")
    metrics = [c[:-5] for c in table.columns if c.endswith("_mean")]
    header = ["method"] + [{"zsl": "ZSL acc", "seen": "GZSL seen", "unseen": "GZSL unseen", "H": "GZSL H",
                            "ausuc": "AUSUC"}.get(m, m) for m in metrics] + (["runs"] if "runs" in table else [])
    cells = [table["method"].astype(str).tolist()]
    for m in metrics:
        cells.append([f"{a:.3f} ± {b:.3f}" for a, b in zip(table[f"{m}_mean"], table[f"{m}_sd"])])
    if "runs" in table:
        cells.append(table["runs"].astype(int).tolist())
    trace = go.Table(header=dict(values=header, fill_color="#eeeeee", align="left"),
                     cells=dict(values=cells, align="left"))
    return _draw(fig, [trace], dict(title=title, height=80 + 30 * len(table) + 60))
