"""``PlotView``: a plotly figure on screen that survives re-runs, page reloads and reopening the notebook.

Why not plotly's ``FigureWidget``: in plotly 6/7 it is an anywidget whose front-end code (a 4.9 MB bundle of
plotly.js) travels as a synced trait of *every* figure and is evaluated once per figure. anywidget (0.11) gives each
model 2 s to load that module (``AbortSignal.timeout(2000)`` → ``[anywidget] Failed to initialize model.``) and then
drops every later update message of that model; on a busy 2-core machine, and always when a reload restores fifteen
figures at once, the limit is missed. And even when it loads, a ``FigureWidget`` keeps its kernel-side state
(``_widget_data``/``_widget_layout``) at the figure it was *created* with: later redraws travel as transient
``restyle``/``relayout`` messages, so a page reload or a reopened notebook restores the empty figure of the
constructor. Both were seen as blank plots after reload/reopen and in notebook 02's first Run All.

``PlotView`` holds a plain ``go.Figure`` and shows it in an ``ipywidgets.Output`` as plotly's own mime bundle
(``application/vnd.plotly.v1+json``, rendered by the ``jupyterlab-plotly`` extension that ships with plotly, whose
plotly.js is loaded once per page). :meth:`PlotView.show` replaces the Output's ``outputs`` trait with the whole
current figure, so the kernel always holds what is on screen and a restored view draws the latest figure. It is
safe to call from a worker thread (a trait assignment, no ``with output:`` capture).

``.data`` and ``.layout`` are the figure's (as on a ``FigureWidget``); ``.ui`` is the Output widget to put in a
box; ``.comm`` and :meth:`close` are the Output's.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["PlotView", "PLOTLY_MIME", "figure_bundle"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
#: plotly.js config of every PlotView: no logo link. Not ``responsive``: that makes plotly.js size the plot to 100 %
#: of its container's height, which in an output area is undefined, so a window resize collapsed plots to 0 px
#: (JupyterLab's plotly renderer resizes the width on its own).
PLOT_CONFIG: dict[str, Any] = {"displaylogo": False}


def figure_bundle(fig: go.Figure, height: int | None = None) -> dict[str, Any]:
    """The display data of ``fig`` as plain JSON: plotly's mime type (with :data:`PLOT_CONFIG`) and a text line.

    ``height`` (pixels) applies when the figure sets none. NaN and infinities become ``null`` (plotly's encoder),
    so the bundle is valid JSON for the widget message.

    >>> b = figure_bundle(go.Figure(go.Bar(x=[1], y=[float("nan")]), layout=dict(title="t")), height=200)
    >>> d = b[PLOTLY_MIME]
    >>> d["data"][0]["y"], d["layout"]["height"], d["config"]["displaylogo"], b["text/plain"]
    ([None], 200, False, 'plotly figure: t')
    """
    spec = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    layout = spec.setdefault("layout", {})
    if height is not None and layout.get("height") is None:
        layout["height"] = int(height)
    spec["config"] = dict(PLOT_CONFIG)
    title = fig.layout.title.text or ""
    return {PLOTLY_MIME: spec, "text/plain": f"plotly figure: {title}".strip()}


class PlotView:
    """A ``go.Figure`` shown in an ``ipywidgets.Output``; :meth:`show` redraws it.

    ``figure``: what to show first (an empty figure when None); ``height``: pixels when the figure sets no height;
    further keyword arguments are the Output's ``ipywidgets.Layout`` (e.g. ``width="50%"``).
    """

    def __init__(self, figure: go.Figure | None = None, *, height: int | None = None, **layout: Any) -> None:
        self.height = height
        self.figure: go.Figure = figure if figure is not None else go.Figure()
        layout.setdefault("width", "100%")
        layout.setdefault("min_width", "320px")
        self.ui = W.Output(layout=W.Layout(**layout))
        self.ui.add_class("wb-plot")
        self.renders = 0  # how many times the figure was sent to the front end
        self._lock = threading.Lock()
        self.show()

    @property
    def data(self) -> tuple:
        """The traces of the figure on screen."""
        return self.figure.data

    @property
    def layout(self) -> go.Layout:
        """The plotly layout of the figure on screen (not the Output's ``ipywidgets.Layout``: that is ``ui.layout``)."""
        return self.figure.layout

    @property
    def comm(self) -> Any:
        return self.ui.comm

    def show(self, figure: go.Figure | None = None) -> go.Figure:
        """Show ``figure`` (or the held figure again, after drawing into it with ``fig=view.figure``)."""
        with self._lock:
            if figure is not None:
                self.figure = figure
            bundle = figure_bundle(self.figure, self.height)
            self.ui.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
            self.renders += 1
            return self.figure

    def close(self) -> None:
        self.ui.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.ui._repr_mimebundle_(**kwargs)
