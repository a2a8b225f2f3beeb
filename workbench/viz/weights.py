"""Figures of the streaming weight report: pure functions DataFrame -> plotly ``go.Figure`` (no torch import).

They read the long table of :func:`workbench.reports.weights.weight_report` (one row per layer × entry; the
``format`` column names the number format or sparsity pattern, NaN where a metric does not apply) and accept
``fig=`` to redraw into an existing figure (:func:`workbench.viz.figure.redraw`):

- :func:`weight_sqnr_figure`: heatmap of weight SQNR (dB) per layer × number format (exact formats, infinite SQNR,
  and rows without a value left blank);
- :func:`kept_magnitude_figure`: heatmap of the kept magnitude (Σ(w·mask)² / Σw², Hubara et al. 2021) per layer ×
  sparsity pattern;
- :func:`size_figure`: the checkpoint's total size (bytes of the weights the report covered) per format.

Layers keep the report's order (a checkpoint's order: embedding, block 0, block 1, ...). A heatmap of a 7B model has
about 226 rows; cell labels are drawn only up to :data:`MAX_LABELLED_ROWS` rows.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from workbench.errors import DataError
from workbench.viz.figure import redraw

#: Heatmaps with more rows than this carry no numbers in their cells (hover shows them).
MAX_LABELLED_ROWS = 60


def _need(table: pd.DataFrame, columns: list[str], who: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{who}: expected a DataFrame (the weight report), got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{who}: the table lacks column(s) {missing}; it has {list(table.columns)} (pass the "
                        "DataFrame returned by weight_report)")


def _finite(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _heatmap(table: pd.DataFrame, column_key: str, value: str, *, title: str, colorbar: str, fmt: str,
             hover: str, colorscale: str, zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    rows = table[table[value].notna()] if len(table) else table
    layers = list(dict.fromkeys(rows["layer"]))
    cols = list(dict.fromkeys(rows[column_key]))
    wide = rows.pivot_table(index="layer", columns=column_key, values=value, aggfunc="first", dropna=False)
    wide = wide.reindex(index=layers, columns=cols)
    z = [[_finite(v) for v in row] for row in wide.to_numpy()]
    new = go.Figure()
    trace = dict(z=z, x=cols, y=layers, colorscale=colorscale, colorbar={"title": colorbar},
                 hovertemplate=hover, zmin=zmin, zmax=zmax)
    if len(layers) <= MAX_LABELLED_ROWS:
        trace.update(text=[["" if v is None else format(v, fmt) for v in row] for row in z], texttemplate="%{text}")
    new.add_trace(go.Heatmap(**trace))
    new.update_layout(title=title, height=min(160 + 18 * max(len(layers), 1), 4200),
                      yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"},
                      margin={"l": 280})
    return new


def weight_sqnr_figure(report: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Heatmap of weight SQNR (dB, higher is better), layers × number formats; blank where a format is exact
    (infinite SQNR) or was not evaluated on that layer."""
    _need(report, ["layer", "format", "weight_sqnr_db"], "weight_sqnr_figure")
    new = _heatmap(report, "format", "weight_sqnr_db", title="weight SQNR per layer (dB, higher is better)",
                   colorbar="SQNR dB", fmt=".1f", colorscale="Viridis",
                   hover="%{y}<br>%{x}: %{z:.2f} dB<extra></extra>")
    return redraw(fig, new)


def kept_magnitude_figure(report: pd.DataFrame, value: str = "kept_sq", fig: go.Figure | None = None) -> go.Figure:
    """Heatmap of the kept magnitude per layer × sparsity pattern: ``value="kept_sq"`` (Σ(w·mask)² / Σw², default)
    or ``"kept_abs"`` (Σ|w·mask| / Σ|w|); 1 means nothing of the layer's weight is lost."""
    if value not in ("kept_sq", "kept_abs"):
        raise DataError(f"kept_magnitude_figure: value={value!r}; choose 'kept_sq' or 'kept_abs'")
    key = "format"
    _need(report, ["layer", key, value], "kept_magnitude_figure")
    label = "Σ(w·mask)² / Σw²" if value == "kept_sq" else "Σ|w·mask| / Σ|w|"
    new = _heatmap(report, key, value, title=f"kept magnitude per layer ({label}, higher is better)",
                   colorbar="kept", fmt=".3f", colorscale="Cividis", zmin=None, zmax=1.0,
                   hover="%{y}<br>%{x}: kept %{z:.4f}<extra></extra>")
    return redraw(fig, new)


def size_figure(report: pd.DataFrame, fig: go.Figure | None = None) -> go.Figure:
    """Bar chart of the weights' total size (GB, 10⁹ bytes) per format, summed over the layers of the report
    (one value per layer and format: a layer that appears twice for a format counts once)."""
    key = "format"
    _need(report, ["layer", key, "bytes"], "size_figure")
    rows = report[report["bytes"].notna()].drop_duplicates(["layer", key])
    totals = rows.groupby(key, sort=False)["bytes"].sum()
    new = go.Figure(go.Bar(x=list(totals.index), y=list(totals.to_numpy() / 1e9),
                           text=[f"{v / 1e9:.3g} GB" for v in totals.to_numpy()], textposition="outside",
                           hovertemplate="%{x}: %{y:.4g} GB<extra></extra>"))
    new.update_layout(title="size of the weights per format (GB)", xaxis_title="format", yaxis_title="GB",
                      height=380, xaxis={"type": "category"})
    return redraw(fig, new)


__all__ = ["weight_sqnr_figure", "kept_magnitude_figure", "size_figure", "MAX_LABELLED_ROWS"]
