"""Run one notebook as a parameterized, reproducible report (papermill + nbconvert).

:func:`run_report` does, in order:

1. read the notebook's ``parameters`` cell and check the given values against it (:mod:`.params`); a bad name or
   type raises :class:`~workbench.reports.params.ParameterError` before any kernel starts. Relative paths among the
   values (path parameters such as ``metrics_path``, and any ``./``-relative value) are made absolute against the
   caller's working directory;
2. create the output folder and prove it writable, then take the output name's lock (:mod:`.files`): a bad ``-o``
   target or a second run writing the same name raises :class:`~workbench.errors.OutputError`, nothing started;
3. withdraw the previous run's outputs of that name (:func:`mark_stale`: ``NAME.html`` / ``NAME.ipynb`` renamed
   ``NAME.stale.*``, provenance and metrics removed), so an interrupted rerun never looks complete;
4. execute the notebook with papermill (kernel ``python3`` from :mod:`.kernel`, widget state not stored, the
   notebook's folder as the working directory, a first cell added that sets plotly's renderer to
   ``plotly_mimetype+notebook``), saving after each cell into a private temporary folder; if the notebook declares
   ``metrics_path`` and it was not given, it is set to ``OUTDIR/NAME.metrics.json`` (the metrics sidecar);
5. on success: store the provenance (:mod:`.provenance`) in the notebook's metadata under ``workbench``, write
   ``NAME.ipynb`` and ``NAME.html`` (code hidden, plotly.js embedded: :mod:`.html`) atomically (:mod:`.files`),
   remove the stale copies, and last write ``NAME.provenance.json``: its presence with ``"status": "complete"``
   marks a finished report;
6. on failure: keep the partial executed notebook as ``NAME.FAILED.ipynb`` (metadata ``workbench.status =
   "failed"``), write ``NAME.error.json`` (provenance plus the error) and raise :class:`ReportFailedError`. No
   ``NAME.ipynb`` / ``NAME.html`` / ``NAME.provenance.json`` from this run exists afterwards, so a failed run never
   looks complete. On Ctrl-C the same files are written, the kernel is killed and ``KeyboardInterrupt`` re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import nbformat

from workbench.errors import OutputError, ReportFailedError

from .files import atomic_open, atomic_write, output_lock, prepare_output_dir, remove
from .html import notebook_to_html
from .kernel import kill_kernel, report_kernel_manager_class
from .params import (Parameter, ParameterError, effective_parameters, notebook_parameters, resolve_path_parameters,
                     validate_parameters)
from .provenance import collect_provenance, write_json_atomic

#: The notebook parameter that, when declared, receives the path of the metrics sidecar.
METRICS_PARAMETER = "metrics_path"

#: Suffixes a report name may not end in: they mark other runs' files (``NAME.stale.html``, ``NAME.FAILED.ipynb``).
_RESERVED_SUFFIXES = (".stale", ".FAILED")

#: Tag of the cell :func:`run_report` puts first: plotly figures of any notebook then embed plotly.js.
SETUP_TAG = "workbench-report-setup"
SETUP_SOURCE = (
    "# added by workbench report: plotly figures carry plotly.js, so the HTML report works offline\n"
    "import plotly.io as _workbench_pio\n"
    '_workbench_pio.renderers.default = "plotly_mimetype+notebook"\n'
    "del _workbench_pio"
)


def with_setup_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose first cell sets the report renderer (hidden source, tagged :data:`SETUP_TAG`).

    Any notebook's ``fig.show()`` then writes the figure with plotly.js (the first time) into an HTML output that
    nbconvert keeps; a notebook needs no change to become a report.
    """
    nb = nbformat.from_dict(nb)
    cell = nbformat.v4.new_code_cell(SETUP_SOURCE)
    cell.metadata["tags"] = [SETUP_TAG]
    cell.metadata["jupyter"] = {"source_hidden": True}
    nb.cells.insert(0, cell)
    return nb




@dataclass
class ReportResult:
    """What one report run produced. ``status`` is ``"complete"``, ``"failed"`` or ``"skipped"`` (sweeps)."""

    name: str
    status: str
    output_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    notebook: Path | None = None
    html: Path | None = None
    provenance: Path | None = None
    metrics_file: Path | None = None
    error: dict[str, Any] | None = None

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The metrics sidecar's content, or None when the run wrote none."""
        if self.metrics_file is None or not self.metrics_file.is_file():
            return None
        return json.loads(self.metrics_file.read_text(encoding="utf-8"))


def report_paths(output_dir: str | Path, name: str) -> dict[str, Path]:
    """Where a report called ``name`` puts each of its files inside ``output_dir``."""
    out = Path(output_dir)
    return {
        "notebook": out / f"{name}.ipynb",
        "html": out / f"{name}.html",
        "provenance": out / f"{name}.provenance.json",
        "metrics": out / f"{name}.metrics.json",
        "failed_notebook": out / f"{name}.FAILED.ipynb",
        "error": out / f"{name}.error.json",
        "failed_metrics": out / f"{name}.FAILED.metrics.json",
        "stale_html": out / f"{name}.stale.html",
        "stale_notebook": out / f"{name}.stale.ipynb",
    }


def is_complete(output_dir: str | Path, name: str) -> bool:
    """True when ``name`` finished in ``output_dir``: its provenance says complete and its notebook and HTML exist."""
    paths = report_paths(output_dir, name)
    try:
        record = json.loads(paths["provenance"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("status") == "complete" and paths["notebook"].is_file() and paths["html"].is_file()


class _QuietPapermillInspection(logging.Filter):
    """Drop papermill's parameter-inspection warnings: the parameters were already checked by :mod:`.params`
    (whose parser, unlike papermill's, reads help comments that contain ``=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Unable to parse line") or msg.startswith("Passed unknown parameter"))


_PAPERMILL_FILTER = _QuietPapermillInspection()


def _no_loop_signal_handlers(*args: Any) -> None:
    raise RuntimeError("signal handlers on a report's event loop are left to workbench.reports.run_report")


def _call_with_own_event_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` (papermill) so that nbclient runs it on an event loop of its own, closed afterwards.

    jupyter_core keeps "the loop of this thread" in a ContextVar. Executors that copy the caller's context into
    their threads (Dask's) hand every worker thread the caller's loop, and two reports running at once then fail
    with "This event loop is already running". An empty context gives each call a fresh loop. Inside a running
    loop (a Jupyter kernel) nothing changes: jupyter_core then runs the coroutine on its own task runner.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return fn(*args, **kwargs)

    def call() -> Any:
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()  # this context's fresh loop, the one nbclient will run on
        # nbclient would turn Ctrl-C into a kernel shutdown on this loop and let the run "fail" (a sweep then goes
        # on to its next report); refusing loop signal handlers keeps Ctrl-C a KeyboardInterrupt that run_report
        # handles: kernel killed, files marked, interrupt re-raised.
        loop.add_signal_handler = _no_loop_signal_handlers  # type: ignore[method-assign]
        loop.remove_signal_handler = _no_loop_signal_handlers  # type: ignore[method-assign]
        try:
            return fn(*args, **kwargs)
        finally:
            loop = ensure_event_loop()
            if not loop.is_running():
                pending = asyncio.all_tasks(loop)  # left by an interrupt: cancel them quietly before closing
                for task in pending:
                    task.cancel()
                if pending:
                    with contextlib.suppress(BaseException):
                        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.close()
            asyncio.set_event_loop(None)

    return contextvars.Context().run(call)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _error_from(exc: BaseException, nb: nbformat.NotebookNode | None) -> dict[str, Any]:
    """The error as a JSON-ready dict: exception name and value, the failing cell's index and source if known."""
    info: dict[str, Any] = {"ename": getattr(exc, "ename", type(exc).__name__),
                            "evalue": str(getattr(exc, "evalue", exc)), "cell_index": None, "cell_source": None}
    if nb is not None:
        for i, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code":
                continue
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                info["cell_index"], info["cell_source"] = i, cell.get("source", "")
                break
    if getattr(exc, "exec_count", None) is not None:
        info["exec_count"] = exc.exec_count
    return info


def prepare_parameters(notebook: str | Path, parameters: Mapping[str, Any] | None, output_dir: str | Path,
                       name: str, declared: Mapping[str, Parameter] | None = None,
                       base_dir: str | Path | None = None) -> tuple[dict, dict, Path | None]:
    """Validate ``parameters``, resolve relative paths against ``base_dir`` (default: the caller's working directory,
    :func:`~workbench.reports.params.resolve_path_parameters`) and add the metrics path; returns (values to inject,
    effective parameters, metrics file)."""
    declared = notebook_parameters(notebook) if declared is None else declared
    values = resolve_path_parameters(validate_parameters(notebook, dict(parameters or {}), declared), base_dir)
    metrics_file: Path | None = None
    if METRICS_PARAMETER in declared:
        if values.get(METRICS_PARAMETER):
            metrics_file = Path(values[METRICS_PARAMETER])
        else:
            metrics_file = report_paths(Path(output_dir).resolve(), name)["metrics"]
            values[METRICS_PARAMETER] = str(metrics_file)
    return values, effective_parameters(declared, values), metrics_file


def check_report_name(name: str) -> str:
    """``name`` if it can name a report's files: a plain file name, not hidden, not ending in a marker suffix."""
    if (not name or "/" in name or os.sep in name or name.startswith(".") or "\0" in name
            or name.endswith(_RESERVED_SUFFIXES)):
        raise ParameterError(f"report name {name!r} must be a plain file name (no '/', not starting with '.', "
                             f"not ending in {', '.join(_RESERVED_SUFFIXES)})")
    return name


def mark_stale(output_dir: str | Path, name: str) -> list[Path]:
    """Withdraw a previous run's outputs of ``name`` before a rerun starts, so an interrupted rerun never leaves a
    complete-looking report: ``NAME.html`` and ``NAME.ipynb`` become ``NAME.stale.html`` / ``NAME.stale.ipynb``
    (kept to read, their name says they are stale), the completion marker ``NAME.provenance.json`` and the default
    metrics sidecar are removed. A rerun that completes removes the stale copies. Returns the stale files."""
    paths = report_paths(output_dir, name)
    stale = []
    for key in ("html", "notebook"):
        if os.path.lexists(paths[key]):
            os.replace(paths[key], paths[f"stale_{key}"])
            stale.append(paths[f"stale_{key}"])
    remove(paths["provenance"], paths["metrics"])
    return stale


def _save_failure(paths: Mapping[str, Path], executed: nbformat.NotebookNode | None, record: dict,
                  metrics_file: Path | None) -> list[str]:
    """Write ``NAME.FAILED.ipynb`` and ``NAME.error.json``; returns what could not be written (never raises OSError,
    so a folder that became unwritable does not hide the notebook's own error)."""
    problems = []
    if executed is not None:
        executed.metadata["workbench"] = record
        try:
            with atomic_open(paths["failed_notebook"]) as fh:
                nbformat.write(executed, fh)
        except OSError as exc:
            problems.append(f"{paths['failed_notebook']}: {exc.strerror or exc}")
    if metrics_file is not None and metrics_file == paths["metrics"] and metrics_file.is_file():
        with contextlib.suppress(OSError):
            os.replace(metrics_file, paths["failed_metrics"])
    try:
        write_json_atomic(paths["error"], record)
    except OSError as exc:
        problems.append(f"{paths['error']}: {exc.strerror or exc}")
    return problems


def run_report(notebook: str | Path, parameters: Mapping[str, Any] | None = None, *,
               output_dir: str | Path = ".", name: str | None = None, kernel_name: str = "python3",
               cell_timeout: float | None = None, progress: bool = False, log_output: bool = False,
               cwd: str | Path | None = None, base_dir: str | Path | None = None) -> ReportResult:
    """Run ``notebook`` with ``parameters`` and write the executed notebook, HTML report and provenance.

    Returns a :class:`ReportResult` with ``status == "complete"``; raises :class:`ParameterError` (nothing run) for
    bad parameters, :class:`~workbench.errors.OutputError` (nothing run) for an output folder that cannot be
    written or that another run is writing the same ``name`` to, and :class:`ReportFailedError` when the notebook
    raised (its ``.result`` names the kept files). Relative paths among the parameters are taken relative to
    ``base_dir`` (default: the current working directory); the kernel itself runs in ``cwd`` (default: the
    notebook's folder).

    >>> result = run_report("notebooks/reports/compression_report.ipynb", {"formats": ["2:4"]},
    ...                     output_dir="reports")                                  # doctest: +SKIP
    >>> result.html, result.metrics["formats"]["2:4"]["accuracy"]                  # doctest: +SKIP
    """
    notebook = Path(notebook).resolve()
    name = check_report_name(name or notebook.stem)
    values, effective, metrics_file = prepare_parameters(notebook, parameters, output_dir, name,
                                                         base_dir=base_dir)
    out = prepare_output_dir(output_dir)
    with output_lock(out, name):
        return _run_locked(notebook, name, out, values, effective, metrics_file, kernel_name=kernel_name,
                           cell_timeout=cell_timeout, progress=progress, log_output=log_output, cwd=cwd)


def _run_locked(notebook: Path, name: str, out: Path, values: dict, effective: dict, metrics_file: Path | None, *,
                kernel_name: str, cell_timeout: float | None, progress: bool, log_output: bool,
                cwd: str | Path | None) -> ReportResult:
    import papermill

    paths = report_paths(out, name)
    # A rerun first withdraws the previous outputs, so an interrupted rerun never looks complete.
    mark_stale(out, name)
    if metrics_file is not None and metrics_file != paths["metrics"]:
        remove(metrics_file)  # a sidecar elsewhere (-p metrics_path): never left from an earlier run

    started_at, t0 = _now(), time.perf_counter()
    # The kernel starts in the notebook's folder through nbclient's resources, not papermill's ``cwd``, which
    # chdir()s the whole process and would race between the threads of a thread pool or a Dask worker.
    kernel_cwd = Path(cwd).resolve() if cwd is not None else notebook.parent
    km_class, managers, sockets = report_kernel_manager_class()
    engine_kwargs: dict[str, Any] = {"store_widget_state": False, "kernel_manager_class": km_class,
                                     "resources": {"metadata": {"path": str(kernel_cwd)}}}
    if cell_timeout is not None:
        engine_kwargs["execution_timeout"] = cell_timeout
    error: BaseException | None = None
    pm_loggers = [logging.getLogger("papermill"), logging.getLogger("papermill.translators")]
    for lg in pm_loggers:
        lg.addFilter(_PAPERMILL_FILTER)
    # papermill saves the notebook after every cell: into a private (0700) folder, so no planted link is followed
    work = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.", suffix=".running"))
    partial = work / f"{name}.ipynb"
    executed = None
    try:
        try:
            source_nb = with_setup_cell(nbformat.read(str(notebook), as_version=4))
            _call_with_own_event_loop(
                papermill.execute_notebook, source_nb, str(partial), parameters=values,
                kernel_name=kernel_name, progress_bar=progress, log_output=log_output,
                request_save_on_cell_execute=True, **engine_kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised below
            error = exc
        finally:
            for km in managers:  # a no-op after nbclient's clean shutdown; after Ctrl-C the kernel must not live on
                kill_kernel(km)
            if sockets is not None:
                shutil.rmtree(sockets, ignore_errors=True)
            for lg in pm_loggers:
                lg.removeFilter(_PAPERMILL_FILTER)
        duration = time.perf_counter() - t0
        finished_at = _now()
        with contextlib.suppress(OSError, ValueError):
            executed = nbformat.read(str(partial), as_version=4) if partial.is_file() else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if executed is not None and "papermill" in executed.metadata:
        executed.metadata["papermill"]["input_path"] = str(notebook)

    def provenance(status: str, outputs: Mapping[str, str], err: Mapping[str, Any] | None = None) -> dict:
        return collect_provenance(notebook, effective, started_at=started_at, finished_at=finished_at,
                                  duration_s=duration, status=status, name=name, outputs=outputs, error=err)

    if error is not None:
        err = _error_from(error, executed)
        outputs = {"failed_notebook": paths["failed_notebook"].name, "error": paths["error"].name}
        record = provenance("failed", outputs, err)
        problems = _save_failure(paths, executed, record, metrics_file)
        result = ReportResult(name=name, status="failed", output_dir=out, parameters=effective,
                              duration_s=duration, notebook=paths["failed_notebook"] if executed else None,
                              provenance=paths["error"], error=err)
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: files marked, then stop
            raise error
        where = f" in cell {err['cell_index']}" if err["cell_index"] is not None else ""
        kept = (f"partial notebook kept as {paths['failed_notebook']}" if not problems
                else f"and its record could not be written ({'; '.join(problems)})")
        raise ReportFailedError(f"report {name!r} ({notebook}) failed{where}: {err['ename']}: {err['evalue']}; "
                                f"{kept}", result) from None

    outputs = {"notebook": paths["notebook"].name, "html": paths["html"].name,
               "provenance": paths["provenance"].name}
    if metrics_file is not None and metrics_file.is_file():
        outputs["metrics"] = (metrics_file.name if metrics_file.parent.resolve() == out.resolve()
                              else str(metrics_file))
    record = provenance("complete", outputs)
    assert executed is not None
    executed.metadata["workbench"] = record
    try:
        with atomic_open(paths["notebook"]) as fh:
            nbformat.write(executed, fh)
        atomic_write(paths["html"], notebook_to_html(executed, title=name))
        remove(paths["failed_notebook"], paths["error"], paths["failed_metrics"], paths["stale_html"],
               paths["stale_notebook"])
        write_json_atomic(paths["provenance"], record)
    except OSError as exc:
        raise OutputError(f"report {name!r} ran, but its outputs could not be written to {out}: "
                          f"{exc.strerror or exc}") from None
    return ReportResult(name=name, status="complete", output_dir=out, parameters=effective, duration_s=duration,
                        notebook=paths["notebook"], html=paths["html"], provenance=paths["provenance"],
                        metrics_file=metrics_file if metrics_file is not None and metrics_file.is_file() else None)


__all__ = ["METRICS_PARAMETER", "ReportFailedError", "ReportResult", "report_paths", "is_complete",
           "prepare_parameters", "check_report_name", "mark_stale", "run_report"]
