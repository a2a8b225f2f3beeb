"""PlotView: the kernel always holds the figure on screen, so a reloaded page or a reopened notebook draws it.

The root cause of blank plots after reload/reopen was plotly's FigureWidget (an anywidget): its kernel-side state
stays at the figure it was created with, later redraws travel as transient messages, and its 4.9 MB front-end
module must load within anywidget's 2 s limit per figure. These tests pin what replaced it.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest


from workbench.viz.dashboard import layer_error_figure
from workbench.viz.figure import redraw
from workbench.widgets.plot import PLOTLY_MIME, PlotView

WIDGETS = Path(__file__).resolve().parents[1] / "workbench" / "widgets"


def _restored(view: PlotView) -> dict:
    """The figure a front end restoring the widget from the kernel would draw (the Output's synced state)."""
    (out,) = view.ui.get_state()["outputs"]
    assert out["output_type"] == "display_data"
    return out["data"][PLOTLY_MIME]


def test_the_synced_state_is_the_latest_figure():
    view = PlotView(height=250)
    assert _restored(view)["layout"]["height"] == 250 and _restored(view)["data"] == []
    for k in range(3):
        df = pd.DataFrame({"layer": ["a", "b"], "format": ["int8", "int4"], "sqnr_db": [10.0 + k, math.inf]})
        view.show(layer_error_figure(df))
        bars = _restored(view)["data"][0]
        assert bars["y"] == [10.0 + k] and bars["text"] == [f"int8 · {10.0 + k:.1f} dB"]
    assert view.renders == 4 and list(view.data[0].y) == [12.0]  # .data / .layout are the figure's
    assert view.layout.title.text.startswith("Per-layer weight error")


def test_drawing_into_the_held_figure_and_showing_again():
    view = PlotView(go.Figure(go.Bar(x=[1, 2], y=[1, 2])))
    bar = view.data[0]
    redraw(view.figure, go.Figure(go.Bar(x=[1, 2], y=[3, float("nan")])))
    view.show()
    assert view.data[0] is bar and _restored(view)["data"][0]["y"] == [3, None]  # NaN is valid JSON: null


def test_from_a_worker_thread_and_close():
    import threading

    view = PlotView()
    t = threading.Thread(target=lambda: view.show(go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))))
    t.start()
    t.join(10)
    assert _restored(view)["data"][0]["x"] == [0, 1]
    view.close()
    assert view.comm is None


def test_no_view_uses_figurewidget():
    """Every plot of the dashboard and the lab views is a PlotView (FigureWidget blanks on reload)."""
    for path in sorted(WIDGETS.glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "FigureWidget" not in names, path.name
