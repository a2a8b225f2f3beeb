"""The one progress bar and the one ``stop=`` argument of every long loop.

:func:`stop_callable` turns a ``stop=`` argument (None, a ``threading.Event`` or anything with ``is_set``, or a
callable) into a ``() -> bool`` that the loop polls; anything else is a ``DataError`` before any work. A loop
whose results so far mean something returns them when stopped; one whose partial result means nothing (a diffusion
kernel half built) raises :class:`Stopped` instead.

:func:`progress_bar`: ``tqdm.auto`` in a live notebook, a text line that stays in saved outputs.

``tqdm.auto`` draws an ipywidgets bar in a notebook; saved without widget state (JupyterLab, nbconvert, papermill
reports) it turns into its first frame (``desc: 0%|``), and ``tqdm.notebook`` ignores ``TQDM_DISABLE``. ``progress_bar``
fixes both: the bar is off when ``disable`` is true or ``TQDM_DISABLE`` is set, and when a notebook bar kept on
screen (``leave=True``) closes, one plain line (``desc: 100% 40/40 [00:31]``) is printed to stdout, which a saved
notebook keeps.

>>> for _ in progress_bar(range(3), desc="demo", disable=True):
...     pass
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any


def _disabled_by_env() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}


def progress_bar(iterable: Any = None, *, disable: bool | None = False, **kwargs: Any):
    """A ``tqdm.auto`` bar over ``iterable`` (or ``total=``), off when ``disable`` is true or ``TQDM_DISABLE`` is
    set (``disable=None``: tqdm's own rule, off when the output is not a terminal); in a notebook, a bar that leaves
    a final text line on stdout when it closes (see the module docstring). Every long loop of the workbench uses it."""
    from tqdm.auto import tqdm

    if disable or _disabled_by_env():
        disable = True
    bar = tqdm(iterable, disable=disable, **kwargs)
    if disable or not kwargs.get("leave", True) or type(bar).__module__ != "tqdm.notebook":
        return bar
    close = bar.close

    def close_and_print() -> None:
        if not getattr(bar, "_workbench_printed", False):
            bar._workbench_printed = True
            print(bar.format_meter(**bar.format_dict), file=sys.stdout, flush=True)
        close()

    bar.close = close_and_print
    return bar


class Stopped(Exception):
    """Raised by a computation that was asked to stop (``stop=``) and has no meaningful partial result to return.

    Not a :class:`~workbench.errors.WorkbenchError`: nothing was wrong with the input.
    """


def stop_callable(stop: Any) -> Callable[[], bool]:
    """The ``stop=`` argument of a long loop as a ``() -> bool`` to poll: ``None`` never stops, a
    ``threading.Event`` (or any object with ``is_set``, e.g. a ``multiprocessing.Event``) stops once set, a callable
    stops when it returns something true; anything else raises :class:`~workbench.errors.DataError`.

    >>> ev = threading.Event(); f = stop_callable(ev); a = f(); ev.set()
    >>> a, f(), stop_callable(None)(), stop_callable(lambda: 1)()
    (False, True, False, True)
    """
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    if callable(getattr(stop, "is_set", None)):
        return lambda: bool(stop.is_set())
    if callable(stop):
        return lambda: bool(stop())
    from workbench.errors import DataError, shorten

    raise DataError(f"stop must be None, a callable or a threading.Event, got {type(stop).__name__} "
                    f"{shorten(stop)}")


__all__ = ["Stopped", "progress_bar", "stop_callable"]
