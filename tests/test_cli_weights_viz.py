"""Figures of the weight report (workbench.viz.weights) and its HTML page (workbench.reports.weights_page), on
hand-made tables whose values are known."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.errors import DataError
from workbench.reports.html import html_is_self_contained
from workbench.reports.weights_page import summary_table, weights_page_html
from workbench.viz.weights import MAX_LABELLED_ROWS, kept_magnitude_figure, size_figure, weight_sqnr_figure

NAN = math.nan


def _table() -> pd.DataFrame:
    rows = []
    # layer, format, role, sqnr, kept_sq, kept_abs, bytes
    spec = [
        ("b.q_proj", "int8", "format", 40.0, NAN, NAN, 100),
        ("b.q_proj", "int4", "format", 18.0, NAN, NAN, 60),
        ("b.q_proj", "2:4", "pattern", 5.0, 0.80, 0.70, 120),
        ("a.k_proj", "int8", "format", 42.0, NAN, NAN, 200),
        ("a.k_proj", "int4", "format", 19.5, NAN, NAN, 110),
        ("a.k_proj", "2:4", "pattern", 6.0, 0.85, 0.75, 230),
        ("c.exact", "int8", "format", math.inf, NAN, NAN, 10),
        ("c.exact", "int4", "format", NAN, NAN, NAN, 6),  # skipped: no value
        ("c.exact", "2:4", "pattern", 4.0, 0.60, 0.50, 12),
    ]
    for layer, fmt, role, s, ksq, kabs, b in spec:
        rows.append(dict(layer=layer, format=fmt, role=role, weight_sqnr_db=s, kept_sq=ksq, kept_abs=kabs, bytes=b,
                         status="skipped" if (s != s) else "ok"))
    return pd.DataFrame(rows)


def test_sqnr_heatmap_cells_order_and_blanks():
    fig = weight_sqnr_figure(_table())
    (hm,) = fig.data
    assert isinstance(hm, go.Heatmap)
    assert list(hm.y) == ["b.q_proj", "a.k_proj", "c.exact"]  # the report's order, not sorted
    assert list(hm.x) == ["int8", "int4", "2:4"]
    z = [list(r) for r in hm.z]
    assert z[0] == [40.0, 18.0, 5.0] and z[1] == [42.0, 19.5, 6.0]
    assert z[2] == [None, None, 4.0]  # infinite (exact) and skipped are blank
    assert hm.text[1][1] == "19.5" and hm.text[2][0] == ""
    assert fig.layout.yaxis.autorange == "reversed"


def test_kept_heatmap_shows_only_sparsity_entries():
    t = _table()
    fig = kept_magnitude_figure(t)
    (hm,) = fig.data
    assert list(hm.x) == ["2:4"] and list(hm.y) == ["b.q_proj", "a.k_proj", "c.exact"]
    assert [r[0] for r in hm.z] == [0.80, 0.85, 0.60]
    assert hm.zmax == 1.0
    absfig = kept_magnitude_figure(t, value="kept_abs")
    assert [r[0] for r in absfig.data[0].z] == [0.70, 0.75, 0.50]
    with pytest.raises(DataError, match="kept_sum"):
        kept_magnitude_figure(t, value="kept_sum")


def test_size_bars_sum_each_layer_once():
    t = _table()
    t = pd.concat([t, t.iloc[[0]]], ignore_index=True)  # a duplicated row must not count twice
    (bar,) = size_figure(t).data
    got = dict(zip(bar.x, bar.y))
    assert got == pytest.approx({"int8": 310 / 1e9, "int4": 176 / 1e9, "2:4": 362 / 1e9})


def test_redraw_into_an_existing_figure_and_bad_tables():
    fig = weight_sqnr_figure(_table())
    trace = fig.data[0]
    smaller = _table()[lambda d: d.layer != "c.exact"]
    again = weight_sqnr_figure(smaller, fig=fig)
    assert again is fig and fig.data[0] is trace and list(trace.y) == ["b.q_proj", "a.k_proj"]
    with pytest.raises(DataError, match="weight_sqnr_db"):
        weight_sqnr_figure(_table().drop(columns="weight_sqnr_db"))
    with pytest.raises(DataError, match="DataFrame"):
        size_figure([1, 2])


def test_many_layers_have_no_cell_labels_and_a_bounded_height():
    n = MAX_LABELLED_ROWS + 5
    t = pd.DataFrame({"layer": [f"l{i}" for i in range(n)], "format": "int8", "weight_sqnr_db": range(n)})
    fig = weight_sqnr_figure(t)
    assert fig.data[0].text is None and len(fig.data[0].y) == n
    assert fig.layout.height <= 4200
    few = weight_sqnr_figure(t.head(3))
    assert few.data[0].text is not None


def test_summary_table_mean_and_worst_layer():
    s = summary_table(_table()).set_index("format")
    assert s.loc["int8", "mean SQNR dB"] == pytest.approx(41.0)  # inf left out of the mean
    assert s.loc["int4", "min SQNR dB"] == 18.0 and s.loc["int4", "layer of min SQNR"] == "b.q_proj"
    assert s.loc["2:4", "min kept"] == 0.60 and s.loc["2:4", "layer of min kept"] == "c.exact"
    assert s.loc["2:4", "mean kept"] == pytest.approx((0.80 + 0.85 + 0.60) / 3)
    assert s.loc["int8", "size GB"] == pytest.approx(310 / 1e9)
    assert s.loc["int8", "layers"] == 3


def test_page_is_self_contained_and_escapes_names():
    t = _table()
    t.loc[t.layer == "c.exact", "layer"] = "<script>alert(1)</script>"
    page = weights_page_html(t, title="w <b>", info={"checkpoint": "/x/<y>"}, synthetic_note="SYNTHETIC weights")
    assert html_is_self_contained(page)
    assert page.count('class="plotly-graph-div"') == 3  # SQNR, kept magnitude, size
    assert page.count("plotly.js v") >= 1
    assert "<script>alert(1)</script>" not in page  # escaped in the summary table and in plotly's JSON
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "w &lt;b&gt;" in page and "/x/&lt;y&gt;" in page and "SYNTHETIC weights" in page
    empty = weights_page_html(t.iloc[:0])
    assert "no rows" in empty and "plotly-graph-div" not in empty
