"""Figures of the kernel benchmark: pure functions from the tidy benchmark table to plotly figures.

The table (``workbench.kernels.bench``: one row per shape × batch × format) is either measured on a GPU or the
bandwidth-floor prediction (bytes moved / copy bandwidth). Two views:

- :func:`speedup_figure`: speedup over dense bf16 ``F.linear`` (time_dense / time), one bar group per
  shape × batch, one bar per format; the floor's predicted speedup (dense bytes / format bytes) as a marker over each
  bar, so the gap between a bar and its marker is the kernel's distance from the bandwidth floor.
- :func:`floor_figure`: achieved bandwidth as a fraction of the measured copy bandwidth (1 = at the floor), with the
  issue's 80% target as a line.

Both take an optional ``fig=`` to redraw into (:func:`workbench.viz.figure.redraw`); the trace count depends only
on the formats present. No torch and no ipywidgets here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.viz.figure import redraw

__all__ = ["KERNEL_COLORS", "speedup_figure", "floor_figure", "floor_speedup"]

KERNEL_COLORS: dict[str, str] = {
    "dense": "#9e9e9e",
    "torch 2:4": "#7f7f7f",
    "2:4": "#1f77b4",
    "fp8_e4m3": "#ff7f0e",
    "2:4+fp8_e4m3": "#2ca02c",
    "binary": "#9467bd",
}


def floor_speedup(df: pd.DataFrame) -> pd.Series:
    """The floor's speedup for each row: dense bytes of the same shape × batch / the row's bytes."""
    dense = df[df["format"] == "dense"].set_index(["shape", "batch"])["bytes"]
    key = pd.MultiIndex.from_frame(df[["shape", "batch"]])
    return pd.Series(dense.reindex(key).to_numpy() / df["bytes"].to_numpy(), index=df.index)


def _groups(df: pd.DataFrame) -> list[str]:
    return [f"{s} · b{b}" for s, b in df[["shape", "batch"]].drop_duplicates().itertuples(index=False)]


def _prepare(df: pd.DataFrame, formats: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    d = df.copy()
    d["group"] = [f"{s} · b{b}" for s, b in zip(d["shape"], d["batch"])]
    if formats is None:
        formats = [f for f in KERNEL_COLORS if f in set(d["format"])] + sorted(set(d["format"]) - set(KERNEL_COLORS))
    return d, formats


def _title(meta: dict[str, Any] | None, what: str) -> str:
    meta = meta or {}
    src = meta.get("source", "")
    if src == "measured":
        return f"{what}: measured on {meta.get('device', 'GPU')} (copy {meta.get('copy_tbps', float('nan')):.2f} TB/s)"
    return f"{what}: PREDICTED bandwidth floor (no GPU results recorded)"


def speedup_figure(
    df: pd.DataFrame, meta: dict[str, Any] | None = None, formats: list[str] | None = None, fig: go.Figure | None = None
) -> go.Figure:
    """Grouped bars of ``speedup_vs_dense`` per shape × batch and format, with the floor's prediction as markers."""
    d, formats = _prepare(df, formats)
    d["floor"] = floor_speedup(df).to_numpy() if "bytes" in d and (d["format"] == "dense").any() else float("nan")
    groups = _groups(df)
    new = go.Figure()
    for fmt in formats:
        sub = d[d["format"] == fmt].set_index("group").reindex(groups)
        new.add_bar(
            x=groups, y=sub["speedup_vs_dense"], name=fmt, marker_color=KERNEL_COLORS.get(fmt, "#444444"),
            offsetgroup=fmt, hovertemplate=f"{fmt}<br>%{{x}}<br>%{{y:.2f}}× dense<extra></extra>",
        )
        new.add_scatter(
            x=groups, y=sub["floor"], mode="markers", name=f"{fmt} floor", offsetgroup=fmt, showlegend=False,
            marker=dict(symbol="line-ew-open", size=18, color="black", line=dict(width=2)),
            hovertemplate=f"{fmt} at the bandwidth floor: %{{y:.2f}}×<extra></extra>",
        )
    new.update_layout(
        barmode="group", scattermode="group", title=_title(meta, "Speedup over dense bf16"),
        yaxis_title="speedup over dense bf16 (×)", xaxis_title="weight shape (out×in) · batch", legend_title="format",
    )
    new.add_hline(y=1.0, line_dash="dot", line_color="grey")
    return redraw(fig, new)


def floor_figure(
    df: pd.DataFrame, meta: dict[str, Any] | None = None, formats: list[str] | None = None, fig: go.Figure | None = None
) -> go.Figure:
    """Grouped bars of ``floor_fraction`` (achieved GB/s ÷ copy bandwidth) with the 80% target line."""
    d, formats = _prepare(df, formats)
    groups = _groups(df)
    new = go.Figure()
    for fmt in formats:
        sub = d[d["format"] == fmt].set_index("group").reindex(groups)
        new.add_bar(
            x=groups, y=sub["floor_fraction"], name=fmt, marker_color=KERNEL_COLORS.get(fmt, "#444444"),
            hovertemplate=f"{fmt}<br>%{{x}}<br>%{{y:.0%}} of copy bandwidth<extra></extra>",
        )
    new.update_layout(
        barmode="group", title=_title(meta, "Bandwidth achieved"), yaxis_title="fraction of copy bandwidth",
        yaxis_tickformat=".0%", xaxis_title="weight shape (out×in) · batch", legend_title="format",
    )
    new.add_hline(y=0.8, line_dash="dash", line_color="red", annotation_text="target 80%")
    return redraw(fig, new)
