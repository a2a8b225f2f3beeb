"""Figures of the sparsity lab: pure functions DataFrame / array -> plotly ``go.Figure`` (no torch here).

* :func:`mask_heatmap`: a region of a weight's |w| with the kept entries of a mask outlined;
* :func:`kept_magnitude_bar` and :func:`diversity_bar`: per pattern, from :func:`workbench.sparsity.mask_report`
  rows (or its :func:`pattern_summary`);
* :func:`kept_vs_diversity`: the trade-off of Hubara et al. 2021, Fig. 2 — kept magnitude (or accuracy) against
  log10 mask diversity, one marker per pattern;
* :func:`conversion_bar`: accuracy/cosine of the dense model and after N:M conversion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

KIND_COLORS = {"nm": "#1f77b4", "transposable": "#d62728", "unstructured": "#2ca02c", "dense": "#7f7f7f"}


def mask_heatmap(
    absw: np.ndarray, mask: np.ndarray, title: str = "", m: int | None = None, fig: go.Figure | None = None
) -> go.Figure:
    """|w| as a heatmap with pruned entries greyed out (NaN); dotted lines mark M-wide groups / M×M tiles."""
    absw = np.asarray(absw, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    # pruned entries are gaps (None, not NaN: widget messages must be valid JSON)
    shown = np.where(mask, absw, None).tolist()
    new = go.Figure()
    new.add_trace(go.Heatmap(z=absw.tolist(), colorscale="Greys", showscale=False, opacity=0.25, hoverinfo="skip"))
    new.add_trace(go.Heatmap(z=shown, colorscale="Viridis", colorbar=dict(title="|w| kept"),
                             hovertemplate="row %{y}, col %{x}: |w|=%{z:.3g}<extra>kept</extra>"))
    shapes = []
    if m:
        r, c = absw.shape
        shapes += [dict(type="line", x0=x - 0.5, x1=x - 0.5, y0=-0.5, y1=r - 0.5, line=dict(width=1, dash="dot"))
                   for x in range(m, c, m)]
        shapes += [dict(type="line", y0=y - 0.5, y1=y - 0.5, x0=-0.5, x1=c - 0.5, line=dict(width=1, dash="dot"))
                   for y in range(m, r, m)]
    new.update_layout(title=title, shapes=shapes, xaxis_title="input column", yaxis_title="output row",
                      yaxis_autorange="reversed", margin=dict(l=50, r=10, t=40, b=40))
    return redraw(fig, new)


def _by_pattern(df: pd.DataFrame, value: str) -> pd.DataFrame:
    d = df[df.get("status", pd.Series("applied", index=df.index)) == "applied"] if "status" in df else df
    return d[["pattern", "kind", value]]


def kept_magnitude_bar(df: pd.DataFrame, value: str = "kept_abs", title: str = "", fig: go.Figure | None = None) -> go.Figure:
    """Bar per pattern of ``value`` (``kept_abs`` or ``kept_sq``), coloured by kind."""
    d = _by_pattern(df, value)
    new = go.Figure()
    new.add_trace(go.Bar(x=d.pattern.tolist(), y=d[value].tolist(),
                         marker_color=[KIND_COLORS.get(k, "#999") for k in d.kind],
                         text=[f"{v:.3f}" for v in d[value]], textposition="outside"))
    new.update_layout(title=title or f"fraction of {'|w|' if value == 'kept_abs' else 'w²'} kept",
                      yaxis=dict(range=[0, 1.05], title=value), margin=dict(l=50, r=10, t=40, b=40))
    return redraw(fig, new)


def diversity_bar(df: pd.DataFrame, title: str = "", fig: go.Figure | None = None) -> go.Figure:
    """Bar per pattern of log10 mask diversity."""
    d = _by_pattern(df, "log10_diversity")
    new = go.Figure()
    new.add_trace(go.Bar(x=d.pattern.tolist(), y=d.log10_diversity.tolist(),
                         marker_color=[KIND_COLORS.get(k, "#999") for k in d.kind],
                         text=[f"{v:.0f}" for v in d.log10_diversity], textposition="outside"))
    new.update_layout(title=title or "log10 mask diversity", yaxis_title="log10(#masks)",
                      margin=dict(l=50, r=10, t=40, b=40))
    return redraw(fig, new)


def kept_vs_diversity(df: pd.DataFrame, y: str = "kept_abs", title: str = "", fig: go.Figure | None = None) -> go.Figure:
    """Scatter: log10 mask diversity (x) against ``y`` (kept magnitude, accuracy ...), one marker per pattern."""
    new = go.Figure()
    for kind, g in df.groupby("kind", sort=False):
        new.add_trace(go.Scatter(x=g.log10_diversity.tolist(), y=g[y].tolist(), mode="markers+text",
                                 text=g.pattern.tolist(), textposition="top center", name=kind,
                                 marker=dict(size=11, color=KIND_COLORS.get(kind, "#999"))))
    new.update_layout(title=title or f"{y} vs mask diversity", xaxis_title="log10 mask diversity",
                      yaxis_title=y, margin=dict(l=50, r=10, t=40, b=40))
    return redraw(fig, new)


def conversion_bar(table: pd.DataFrame, title: str = "", fig: go.Figure | None = None) -> go.Figure:
    """Grouped bars from :func:`workbench.sparsity.conversion_table`: the dense score, then each pattern × method."""
    new = go.Figure()
    metric = table.metric.iloc[0] if len(table) else "score"
    new.add_trace(go.Bar(x=sorted(set(table.pattern)), y=[table.dense.iloc[0]] * table.pattern.nunique(), name="dense"))
    for meth, g in table.groupby("method", sort=False):
        new.add_trace(go.Bar(x=g.pattern.tolist(), y=g.converted.tolist(), name=meth,
                             text=[f"{v:.3f}" for v in g.converted], textposition="outside"))
    lo = float(min(table.converted.min(), table.dense.min())) if len(table) else 0.0
    new.update_layout(barmode="group", title=title or f"{metric} after N:M conversion", yaxis_title=metric,
                      yaxis_range=[max(0.0, lo - 0.05), 1.01], margin=dict(l=50, r=10, t=40, b=40))
    return redraw(fig, new)


def pattern_order(patterns: Sequence[str]) -> list[str]:
    """Patterns as given, de-duplicated (keeps the user's order on axes)."""
    return list(dict.fromkeys(patterns))


__all__ = ["KIND_COLORS", "conversion_bar", "diversity_bar", "kept_magnitude_bar", "kept_vs_diversity", "mask_heatmap"]
