"""Helpers that report notebooks call from their first cells: rendering, seeding and the metrics sidecar.

A report notebook starts with::

    from workbench.reports import setup_report_rendering, seed_everything, write_metrics
    setup_report_rendering()      # plotly figures embed plotly.js: the HTML report works offline
    seed_everything(seed)

and ends with ``write_metrics(metrics, metrics_path)``. The runner (:func:`workbench.reports.run_report`) fills in
``metrics_path`` when the notebook declares it, and checks that two runs with the same parameters write the same
bytes: keep timings and other run-dependent values out of the metrics.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any, Mapping

#: The plotly renderer for reports: the mimetype bundle for JupyterLab plus an HTML output that carries plotly.js.
REPORT_RENDERER = "plotly_mimetype+notebook"


def setup_report_rendering(renderer: str = REPORT_RENDERER) -> str:
    """Make ``fig.show()`` embed plotly.js (viewable offline in the HTML report); returns the previous default.

    Plain ``go.Figure`` objects only: a FigureWidget stores widget state that a static report cannot replay.
    """
    import plotly.io as pio

    previous = pio.renderers.default
    pio.renderers.default = renderer
    return previous


def seed_everything(seed: int, *, torch: bool = True) -> None:
    """Seed Python's ``random`` and NumPy and, unless ``torch=False``, torch (asking it for deterministic kernels).

    ``torch=False`` spares a notebook that does not use torch the seconds its import takes.
    """
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if not torch:
        return
    try:
        import torch as _torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    _torch.manual_seed(seed)
    _torch.use_deterministic_algorithms(True, warn_only=True)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/torch scalars to Python numbers, tuples to lists, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_json(metrics: Mapping[str, Any]) -> str:
    """Canonical JSON text of a metrics mapping: sorted keys, plain Python numbers, fixed indentation."""
    return json.dumps(_plain(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_metrics(metrics: Mapping[str, Any], path: str | Path | None) -> Path | None:
    """Write ``metrics`` as canonical JSON to ``path`` (parents created) atomically; nothing when ``path`` is falsy.

    Atomic as every report output (:func:`workbench.reports.files.atomic_write`): a reader never sees half a file,
    and a symlink at ``path`` is replaced, not written through.
    """
    if not path:
        return None
    from .files import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, metrics_json(metrics))


__all__ = ["REPORT_RENDERER", "setup_report_rendering", "seed_everything", "metrics_json", "write_metrics"]
