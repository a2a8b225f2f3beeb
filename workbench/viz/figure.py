"""The one way a figure function draws into an existing figure: :func:`redraw`.

Every figure function of :mod:`workbench.viz` builds a new ``go.Figure`` from its tidy table and ends with
``return redraw(fig, new)``: with ``fig=None`` (the usual call) it returns the new figure; given a figure (a
``go.Figure``, or a ``FigureWidget`` someone keeps on screen), it makes that figure show exactly what the new one
shows and returns it. Traces are updated in place when their number and types match (so the trace objects a caller
holds stay valid, and a ``FigureWidget`` sends only the changed properties), otherwise replaced; the layout is
replaced as a whole (shapes, annotations and titles of the previous drawing do not linger), and so are the
animation frames (plotly's ``frames``, which a layout slider with ``method="animate"`` steps through). No torch and no
ipywidgets here.

:func:`empty_figure` is what a view shows before it has anything to plot: a title and a line saying what to do,
no empty axes.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["redraw", "empty_figure"]

_KEEP = ("type", "uid")


def redraw(fig: go.Figure | None, new: go.Figure) -> go.Figure:
    """``new`` when ``fig`` is None; else ``fig`` redrawn to show what ``new`` shows (inside one batch update).

    >>> a = go.Figure(go.Bar(x=[1, 2], y=[3, 4], text=["3", "4"]), layout=dict(title="old"))
    >>> bar = a.data[0]
    >>> b = redraw(a, go.Figure(go.Bar(x=[1, 2], y=[5, 6]), layout=dict(height=200)))
    >>> b is a and b.data[0] is bar, list(bar.y), bar.text, b.layout.title.text, b.layout.height
    (True, [5, 6], None, None, 200)

    Frames come along with the layout (its sliders refer to them by name), and none linger:

    >>> c = redraw(a, go.Figure(go.Bar(y=[1]), frames=[go.Frame(data=[go.Bar(y=[k])], name=str(k)) for k in (1, 2)]))
    >>> [f.name for f in c.frames], len(redraw(a, go.Figure(go.Bar(y=[3]))).frames)
    (['1', '2'], 0)
    """
    if fig is None:
        return new
    with fig.batch_update():
        same = len(fig.data) == len(new.data) and all(a.type == b.type for a, b in zip(fig.data, new.data))
        if same:
            for old, trace in zip(fig.data, new.data):
                props = {k: v for k, v in trace.to_plotly_json().items() if k not in _KEEP}
                stale = {k: None for k in old.to_plotly_json() if k not in props and k not in _KEEP}
                if stale:
                    old.update(stale)
                old.update(props, overwrite=True)
        else:
            fig.data = ()
            if new.data:
                fig.add_traces(list(new.data))
        fig.layout = new.layout
    if new.frames or fig.frames:  # a FigureWidget has none and takes none: plotly says so if it is given some
        fig.frames = new.frames
    return fig


def empty_figure(title: str, note: str, height: int | None = None) -> go.Figure:
    """A figure with ``title`` and a centred ``note`` (what to press to fill it) instead of empty axes.

    >>> f = empty_figure("NNSTD", "press train")
    >>> f.layout.annotations[0].text, f.layout.xaxis.visible, len(f.data)
    ('press train', False, 0)
    """
    return go.Figure(layout=dict(
        title=dict(text=title, x=0.02), height=height, template="plotly_white",
        xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font=dict(size=14, color="#666"))],
    ))
