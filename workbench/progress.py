"""The one progress bar: ``tqdm.auto`` in a live notebook, a text line that stays in saved outputs.

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


__all__ = ["progress_bar"]
