"""The HTML page of a weight report: one self-contained file (plotly.js inline), viewable offline.

:func:`weights_page_html` turns the table of :func:`workbench.reports.weights.weight_report` into a page: a header
saying what was analysed (checkpoint, formats, patterns, duration, versions; a banner when the checkpoint is a
synthetic one of :mod:`workbench.models.synthetic_llama`), a summary table per format / pattern (mean and worst
layer), and the figures of :mod:`workbench.viz.weights` (SQNR heatmap per layer × format, kept magnitude per layer ×
pattern, size per format). The first figure carries the whole plotly.js bundle (``include_plotlyjs=True``), the
others draw with it; no script is fetched from the network, no MathJax (:func:`workbench.reports.html.
html_is_self_contained` holds for the page).
"""

from __future__ import annotations

import html as _html
import math
from typing import Any, Mapping

import pandas as pd

from workbench.viz.weights import kept_magnitude_figure, size_figure, weight_sqnr_figure

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c36c; padding: 8px 12px; margin: 12px 0; }
.meta td { text-align: left; }
"""


def _num(v: Any, fmt: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    if math.isnan(f):
        return ""
    return "∞" if math.isinf(f) and f > 0 else format(f, fmt)


def summary_table(report: pd.DataFrame) -> pd.DataFrame:
    """One row per format / pattern over its layers: layers, mean and minimum weight SQNR (dB) with the layer
    holding the minimum, mean and minimum kept magnitude (Σ(w·mask)²/Σw²) with its layer, total size (bytes).
    Columns absent from the report are left out."""
    key = "format"
    rows = []
    for name, g in report.groupby(key, sort=False):
        row: dict[str, Any] = {key: name, "layers": int(g["layer"].nunique())}
        if "weight_sqnr_db" in g and g["weight_sqnr_db"].notna().any():
            s = g.dropna(subset=["weight_sqnr_db"])
            finite = s[s["weight_sqnr_db"].map(lambda v: math.isfinite(float(v)))]
            row["mean SQNR dB"] = float(finite["weight_sqnr_db"].mean()) if len(finite) else float("inf")
            worst = s.loc[s["weight_sqnr_db"].astype(float).idxmin()]
            row["min SQNR dB"] = float(worst["weight_sqnr_db"])
            row["layer of min SQNR"] = str(worst["layer"])
        if "kept_sq" in g and g["kept_sq"].notna().any():
            k = g.dropna(subset=["kept_sq"])
            worst = k.loc[k["kept_sq"].astype(float).idxmin()]
            row["mean kept"] = float(k["kept_sq"].mean())
            row["min kept"] = float(worst["kept_sq"])
            row["layer of min kept"] = str(worst["layer"])
        if "bytes" in g:
            row["size GB"] = float(g.drop_duplicates("layer")["bytes"].sum()) / 1e9
        rows.append(row)
    return pd.DataFrame(rows)


def _table_html(table: pd.DataFrame) -> str:
    fmts = {"mean SQNR dB": ".2f", "min SQNR dB": ".2f", "mean kept": ".4f", "min kept": ".4f", "size GB": ".4g"}
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for _, r in table.iterrows():
        cells = [_num(r[c], fmts[c]) if c in fmts else _html.escape(str(r[c])) for c in table.columns]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def weights_page_html(report: pd.DataFrame, *, title: str = "weight report", info: Mapping[str, Any] | None = None,
                      synthetic_note: str | None = None) -> str:
    """The self-contained HTML page of weight report ``report``; ``info`` (name -> value) is listed under the
    title, ``synthetic_note`` is shown as a banner (say when the weights are synthetic random ones)."""
    figures = []
    if "weight_sqnr_db" in report and report["weight_sqnr_db"].notna().any():
        figures.append(("Weight SQNR per layer and format", weight_sqnr_figure(report)))
    if "kept_sq" in report and report["kept_sq"].notna().any():
        figures.append(("Kept magnitude per layer and pattern", kept_magnitude_figure(report)))
    if "bytes" in report and report["bytes"].notna().any():
        figures.append(("Size per format", size_figure(report)))
    parts = [f"<h1>{_html.escape(title)}</h1>"]
    if synthetic_note:
        parts.append(f'<div class="banner">{_html.escape(synthetic_note)}</div>')
    if info:
        rows = "".join(f"<tr><th>{_html.escape(str(k))}</th><td>{_html.escape(str(v))}</td></tr>"
                       for k, v in info.items())
        parts.append(f'<table class="meta">{rows}</table>')
    if len(report):
        parts.append("<h2>Summary</h2>" + _table_html(summary_table(report)))
    else:
        parts.append("<p>The report has no rows (no layer was analysed).</p>")
    for k, (heading, fig) in enumerate(figures):
        div = fig.to_html(full_html=False, include_plotlyjs=(k == 0), include_mathjax=False,
                          config={"displaylogo": False, "responsive": True})
        parts.append(f"<h2>{_html.escape(heading)}</h2>{div}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


__all__ = ["weights_page_html", "summary_table"]
