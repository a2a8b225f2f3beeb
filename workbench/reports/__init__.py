"""Reports: any notebook as a parameterized, reproducible report, and sweeps of them.

- :func:`run_report`: run a notebook with papermill, write ``NAME.ipynb``, a self-contained ``NAME.html`` (code
  hidden, plotly.js embedded) and ``NAME.provenance.json`` (parameters, seed, package versions, git commit, duration).
- :func:`run_sweep`: every combination of a parameter grid as a report, on local processes or any
  ``concurrent.futures.Executor`` (a Dask cluster's ``client.get_executor()``); resumable; ``index.html`` and
  ``summary.csv`` / ``summary.parquet``.
- :func:`notebook_parameters`, :func:`validate_parameters`: a notebook's parameters cell, checked before any kernel.
- :func:`weight_report`: per layer, what formats and sparsity patterns do to the weights, streamed from a lazy
  safetensors checkpoint one layer at a time, resumable, on a Dask cluster with ``executor=`` (:mod:`.weights`).
- In report notebooks: :func:`setup_report_rendering`, :func:`seed_everything`, :func:`write_metrics`.

Names are imported on first use, so a report notebook's ``from workbench.reports import setup_report_rendering``
does not pay for pandas, papermill and nbconvert.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # running
    "run_report": "run",
    "ReportResult": "run",
    "ReportFailedError": "run",
    "is_complete": "run",
    "report_paths": "run",
    # sweeps
    "run_sweep": "sweep",
    "SweepResult": "sweep",
    "load_grid": "sweep",
    "expand_grid": "sweep",
    # parameters
    "ParameterError": "params",
    "notebook_parameters": "params",
    "parameters_table": "params",
    "validate_parameters": "params",
    # inside report notebooks
    "setup_report_rendering": "notebook",
    "seed_everything": "notebook",
    "write_metrics": "notebook",
    # weights, streamed
    "weight_report": "weights",
    # html
    "notebook_to_html": "html",
    "html_is_self_contained": "html",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
