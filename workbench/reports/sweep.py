"""Sweeps: every combination of a parameter grid as a report, in parallel, resumable, with an index and a summary.

A grid file is a YAML mapping. Either every key is a parameter with a list of values::

    x: [1, 2, 3, 4]
    scale: [0.5, 1.0]

or, to fix some parameters for every run, two sections::

    grid:
      formats: [["2:4"], ["int8"], ["2:4", "fp8_e4m3"]]
    fixed:
      model: digits-mlp

:func:`run_sweep` validates every combination against the notebook's parameters cell before anything runs, then
runs the reports (:func:`workbench.reports.run_report`) on local processes (``workers``), on a Dask cluster
(``scheduler`` address) or on any :class:`concurrent.futures.Executor` (``executor=client.get_executor()``). Each
run is named from the values that vary plus a hash of all its parameters, so re-running the same sweep finds its
earlier work: complete runs are skipped, failed ones run again. One sweep at a time writes to a folder (a lock,
:mod:`.files`; a second is refused with :class:`~workbench.errors.OutputError`). Ctrl-C on a sweep of local worker
processes starts no new report and lets the running ones finish; Ctrl-C again stops them at once (workers and
kernels terminated, the runs marked failed); no worker process outlives the sweep. With ``workers=1`` the report
runs in this process and Ctrl-C stops it at once. Afterwards ``OUTDIR/index.html`` links every report
and ``summary.csv`` / ``summary.parquet`` hold one row per run: its parameters, status, duration and the metrics
from its JSON sidecar (columns ``metrics.<key>``, nested keys joined with ``.``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import html as html_lib
import itertools
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from workbench.errors import DataError

from .files import atomic_open, atomic_write, output_lock, prepare_output_dir, remove
from .params import (ParameterError, load_yaml_file, notebook_parameters, resolve_path_parameters,
                     validate_parameters)
from .provenance import write_json_atomic
from .run import METRICS_PARAMETER, ReportFailedError, is_complete, report_paths, run_report

#: Lock of a sweep's output folder (a report's name never starts with '.', so no report lock is called this).
SWEEP_LOCK = ".sweep"
#: Created when a sweep is interrupted: a job that sees it does not start its kernel.
STOP_FILE = ".sweep.stop"


# --------------------------------------------------------------------------------------------------------------
# the grid


def split_grid(spec: Mapping[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """``(grid, fixed)`` from a grid mapping in either form described in the module docstring."""
    if not isinstance(spec, Mapping):
        raise ParameterError("a grid must be a mapping of parameter name -> list of values")
    if set(spec) <= {"grid", "fixed"} and "grid" in spec:
        grid, fixed = spec.get("grid") or {}, spec.get("fixed") or {}
    else:
        grid, fixed = spec, {}
    if not isinstance(grid, Mapping) or not isinstance(fixed, Mapping):
        raise ParameterError("'grid' and 'fixed' must be mappings of parameter name -> value(s)")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(f"grid parameter {name!r}: expected a non-empty list of values, got {values!r} "
                                 "(put single values under 'fixed:')")
    overlap = set(grid) & set(fixed)
    if overlap:
        raise ParameterError(f"parameters both in the grid and fixed: {', '.join(sorted(overlap))}")
    return dict(grid), dict(fixed)


def load_grid(path: str | Path) -> tuple[dict[str, list], dict[str, Any]]:
    """Read a grid YAML file (YAML 1.2 scalars: ``2:4`` stays a string) into ``(grid, fixed)``."""
    spec = load_yaml_file(path)
    if spec is None:
        raise DataError(f"{path}: empty grid file")
    try:
        return split_grid(spec)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None


def expand_grid(grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid's values (the cartesian product, first key slowest), each merged with ``fixed``.

    >>> expand_grid({"a": [1, 2], "b": ["x", "y"]}, {"c": 0})[:2]
    [{'a': 1, 'b': 'x', 'c': 0}, {'a': 1, 'b': 'y', 'c': 0}]
    """
    names = list(grid)
    return [{**dict(zip(names, combo)), **dict(fixed or {})} for combo in itertools.product(*(grid[n] for n in names))]


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ""))
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text).strip("_") or "_"


def run_name(parameters: Mapping[str, Any], varying: Sequence[str]) -> str:
    """A stable file name for one run: the varying values (``__`` between them), then 8 hex digits of a hash of all
    the parameters (``metrics_path`` aside), so a run keeps its name from one invocation of a sweep to the next.

    >>> run_name({"x": 3, "model": "digits-mlp"}, ["x"])[:4]
    'x=3-'
    """
    canonical = json.dumps({k: v for k, v in parameters.items() if k != METRICS_PARAMETER}, sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    label = "__".join(f"{k}={_slug(parameters[k])}" for k in varying if k in parameters)[:80]
    return f"{label}-{digest}" if label else f"run-{digest}"


# --------------------------------------------------------------------------------------------------------------
# one job (a top-level function, so process pools and Dask can pickle it)


@dataclass(frozen=True)
class SweepJob:
    """One report of a sweep, as sent to a worker."""

    notebook: str
    parameters: dict
    output_dir: str
    name: str
    kernel_name: str = "python3"
    cell_timeout: float | None = None
    stop_file: str | None = None


def run_job(job: SweepJob) -> dict[str, Any]:
    """Run one sweep job; never raises for a failing notebook: returns ``{"name", "status", "duration_s", "error"}``.

    A job whose sweep was stopped (its ``stop_file`` exists) returns ``"cancelled"`` without starting a kernel.
    """
    if job.stop_file and os.path.exists(job.stop_file):
        return {"name": job.name, "status": "cancelled", "duration_s": None, "error": None}
    try:
        result = run_report(job.notebook, job.parameters, output_dir=job.output_dir, name=job.name,
                            kernel_name=job.kernel_name, cell_timeout=job.cell_timeout)
        return {"name": job.name, "status": result.status, "duration_s": result.duration_s, "error": None}
    except ReportFailedError as exc:
        res = exc.result
        return {"name": job.name, "status": "failed", "duration_s": res.duration_s if res else None,
                "error": f"{res.error['ename']}: {res.error['evalue']}" if res and res.error else str(exc)}
    except Exception as exc:  # noqa: BLE001 - a kernel that would not start, a full disk: recorded per run
        paths = report_paths(job.output_dir, job.name)
        record = {"name": job.name, "status": "failed", "parameters": job.parameters,
                  "error": {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None}}
        with contextlib.suppress(OSError):  # an unwritable folder must not hide the error itself
            write_json_atomic(paths["error"], record)
        return {"name": job.name, "status": "failed", "duration_s": None, "error": f"{type(exc).__name__}: {exc}"}


# --------------------------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`: one entry per run in ``runs`` and the summary table."""

    output_dir: Path
    runs: list[dict[str, Any]]
    summary: pd.DataFrame
    index: Path
    files: dict[str, Path] = field(default_factory=dict)

    def names(self, status: str) -> list[str]:
        """Run names whose status in this invocation was ``status`` (``complete``, ``failed`` or ``skipped``)."""
        return [r["name"] for r in self.runs if r["status"] == status]

    @property
    def ok(self) -> bool:
        """True when no run failed."""
        return not self.names("failed")


def _progress(total: int, initial: int, show: bool):
    from workbench.progress import progress_bar

    return progress_bar(total=total, initial=initial, desc="sweep", unit="report", disable=not show or None)


def _ignore_sigint() -> None:
    """Initializer of local worker processes: Ctrl-C is the sweep's to handle (the terminal sends SIGINT to the whole
    process group); SIGTERM, which the sweep sends to stop a running report now, ends the report cleanly (its
    kernel killed, its files marked failed) by raising KeyboardInterrupt in the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _stop(signum: int, frame: Any) -> None:  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)


def _make_executor(workers: int, scheduler: str | None, pool: str = "processes"
                   ) -> tuple[cf.Executor | None, Callable[[bool], None]]:
    """An executor for ``workers`` local processes (or threads) or a Dask scheduler address, and its shutdown
    (``close(cancel)``: ``cancel=True`` drops the jobs not yet started)."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise DataError("--scheduler needs Dask: pip install 'workbench[dask]'") from None
        client = Client(scheduler)
        executor = client.get_executor()

        def close(cancel: bool = False) -> None:
            executor.shutdown(wait=not cancel)
            client.close()

        return executor, close
    if pool not in {"processes", "threads"}:
        raise DataError(f"pool must be 'processes' or 'threads', got {pool!r}")
    if workers > 1:
        if pool == "threads":
            executor = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workbench-sweep")
        else:  # spawn: safe even when called from a Jupyter kernel (fork of a process with zmq threads is not)
            executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_ignore_sigint)
        return executor, lambda cancel=False: executor.shutdown(wait=True, cancel_futures=cancel)
    return None, lambda cancel=False: None


def _terminate_local_reports() -> list:
    """Stop the reports running in this process's children now: SIGTERM to every child (a pool worker ends its
    report cleanly: kernel killed, run marked failed; with a thread pool the children are the kernels). Returns every
    descendant, listed before any is signalled, so a kernel whose worker ends first is not missed: :func:`_reap`
    kills what is left of them."""
    import psutil

    def ours(p: "psutil.Process") -> bool:  # multiprocessing's resource tracker ends with this process
        with contextlib.suppress(psutil.Error):
            return "resource_tracker" not in " ".join(p.cmdline())
        return False

    me = psutil.Process()
    procs = [p for p in me.children(recursive=True) if ours(p)]
    for p in me.children():
        if ours(p):
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
    return procs


def _reap(procs: list, timeout: float = 5.0) -> None:
    """Wait up to ``timeout`` seconds for ``procs`` to exit, then SIGKILL the rest."""
    if not procs:
        return
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _dispatch(executor: cf.Executor, jobs: Sequence[SweepJob], window: int, bar: Any, stop_file: Path,
              runs: list[dict[str, Any]], local: bool, grace_s: float = 10.0) -> tuple[bool, list]:
    """Run ``jobs`` on ``executor`` with at most ``window`` submitted at a time; returns (interrupted, the processes
    signalled to stop, for :func:`_reap` once the executor is shut down).

    Ctrl-C (SIGINT) once: no job is started any more (the rest are cancelled and ``stop_file`` tells a job already
    queued not to start its kernel), the running reports finish. Ctrl-C again: the running reports are stopped now
    (``local``: their workers and kernels get SIGTERM, and SIGKILL after ``grace_s`` if their reports have not
    ended by then).
    """
    todo = list(jobs)
    running: dict[cf.Future, SweepJob] = {}
    second = threading.Event()
    interrupted = False
    previous_handler = None

    def submit_next() -> None:
        if todo and not interrupted:
            job = todo.pop(0)
            running[executor.submit(run_job, job)] = job

    def on_first_interrupt() -> None:
        nonlocal interrupted, previous_handler
        interrupted = True
        stop_file.touch()
        for fut in list(running):
            if fut.cancel():
                running.pop(fut)
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGINT, lambda *_: second.set())
        how = "press Ctrl-C again to stop them now" if local else "they run on the cluster until done"
        print(f"\ninterrupted: starting no new report; waiting for {len(running)} running report(s) to finish "
              f"({how})", file=sys.stderr, flush=True)

    killed = False
    victims: list = []
    kill_at: float | None = None
    try:
        for _ in range(window):
            submit_next()
        while running:
            try:
                if second.is_set() and not killed:
                    killed = True
                    print("interrupted again: stopping the running reports", file=sys.stderr, flush=True)
                    if local:
                        victims = _terminate_local_reports()
                        kill_at = time.monotonic() + grace_s
                if kill_at is not None and time.monotonic() > kill_at:
                    kill_at = None
                    _reap(victims, timeout=0)
                done, _ = cf.wait(list(running), timeout=0.2, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    runs.append(_outcome(fut, job))
                    bar.update(1)
                    submit_next()
            except KeyboardInterrupt:
                if interrupted:
                    second.set()
                else:
                    on_first_interrupt()
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    return interrupted, victims


def _outcome(fut: cf.Future, job: SweepJob) -> dict[str, Any]:
    """A finished future's run record; a worker that died or was stopped counts as a failed (or cancelled) run."""
    if fut.cancelled():
        return {"name": job.name, "status": "cancelled", "duration_s": None, "error": None}
    try:
        return fut.result()
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt from a stopped worker, BrokenProcessPool
        return {"name": job.name, "status": "failed", "duration_s": None,
                "error": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__}


def run_sweep(notebook: str | Path, grid: Mapping[str, Sequence[Any]], *, fixed: Mapping[str, Any] | None = None,
              output_dir: str | Path = "sweep", workers: int = 1, scheduler: str | None = None,
              executor: cf.Executor | None = None, pool: str = "processes", progress: bool = True,
              kernel_name: str = "python3", cell_timeout: float | None = None) -> SweepResult:
    """Run ``notebook`` once per combination of ``grid`` (plus ``fixed``) and write the index and summary.

    ``executor`` (any :class:`concurrent.futures.Executor`, e.g. ``distributed.Client(...).get_executor()``) wins
    over ``scheduler`` (a Dask scheduler address), which wins over ``workers`` (local processes; 1 = in this
    process, one after another). Every report runs in its own Jupyter kernel process whatever the executor, so
    ``pool="threads"`` also runs ``workers`` notebooks at once while sparing each worker the start-up of a fresh
    Python that imports workbench. Workers must see ``output_dir`` and have ``workbench`` installed. Raises
    :class:`ParameterError` before running anything if any combination is invalid.
    """
    notebook = Path(notebook).resolve()
    grid, fixed = dict(grid), dict(fixed or {})
    split_grid({"grid": grid, "fixed": fixed})  # shape checks
    if METRICS_PARAMETER in grid or METRICS_PARAMETER in fixed:
        raise ParameterError(f"{METRICS_PARAMETER!r} is set per run by the sweep; leave it out of the grid")
    declared = notebook_parameters(notebook)
    # relative paths against the caller's folder, here: workers (and Dask's) may run elsewhere
    combos = [resolve_path_parameters(validate_parameters(notebook, combo, declared))
              for combo in expand_grid(grid, fixed)]
    out = prepare_output_dir(output_dir)
    with output_lock(out, SWEEP_LOCK, what="sweep"):
        return _sweep_locked(notebook, out, grid, fixed, combos, workers=workers, scheduler=scheduler,
                             executor=executor, pool=pool, progress=progress, kernel_name=kernel_name,
                             cell_timeout=cell_timeout)


def _sweep_locked(notebook: Path, out: Path, grid: dict, fixed: dict, combos: list[dict], *, workers: int,
                  scheduler: str | None, executor: cf.Executor | None, pool: str, progress: bool, kernel_name: str,
                  cell_timeout: float | None) -> SweepResult:
    stop_file = out / STOP_FILE
    remove(stop_file)
    varying = [k for k in grid if len(grid[k]) > 1] or list(grid)
    jobs: dict[str, SweepJob] = {}
    for combo in combos:
        name = run_name(combo, varying)
        jobs.setdefault(name, SweepJob(str(notebook), combo, str(out), name, kernel_name, cell_timeout,
                                       str(stop_file)))
    write_json_atomic(out / "sweep.json", {
        "notebook": str(notebook), "grid": grid, "fixed": fixed,
        "runs": {name: job.parameters for name, job in jobs.items()},
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })

    runs: list[dict[str, Any]] = []
    todo = []
    for name, job in jobs.items():
        if is_complete(out, name):
            runs.append({"name": name, "status": "skipped", "duration_s": None, "error": None})
        else:
            todo.append(job)

    bar = _progress(len(jobs), len(jobs) - len(todo), progress)
    own_close: Callable[[bool], None] = lambda cancel=False: None  # noqa: E731
    local = executor is None and not scheduler
    n_workers = min(workers, len(todo))
    if executor is None and todo:
        executor, own_close = _make_executor(n_workers, scheduler, pool)
    interrupted, victims = False, []
    try:
        if executor is None:  # in this process: Ctrl-C stops the running report at once (its kernel killed)
            for job in todo:
                runs.append(run_job(job))
                bar.update(1)
        else:
            window = n_workers if local else len(todo)
            interrupted, victims = _dispatch(executor, todo, window, bar, stop_file, runs, local)
    finally:
        bar.close()
        own_close(interrupted)  # the pool's workers exit here
        _reap(victims)  # and anything a second Ctrl-C signalled that has not
        remove(stop_file)

    done = {r["name"] for r in runs}
    runs += [{"name": j.name, "status": "cancelled", "duration_s": None, "error": None}
             for j in todo if j.name not in done]
    order = {name: i for i, name in enumerate(jobs)}
    runs.sort(key=lambda r: order[r["name"]])
    summary = summarize(out, jobs)
    files = write_summary(out, summary)
    index = write_index(out, summary, notebook=notebook)
    if interrupted:
        raise KeyboardInterrupt
    return SweepResult(output_dir=out, runs=runs, summary=summary, index=index, files=files)


# --------------------------------------------------------------------------------------------------------------
# summary and index


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, into)
    else:
        into[prefix] = value


def _cell(value: Any) -> Any:
    """Scalars as they are; lists and dicts as compact JSON text (a Parquet column needs one type)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict, tuple)) else value


def summarize(output_dir: str | Path, jobs: Mapping[str, SweepJob]) -> pd.DataFrame:
    """One row per run, read from disk: ``run, status, <parameters>, duration_s, report, error, metrics.*``."""
    out = Path(output_dir)
    rows = []
    for name, job in jobs.items():
        paths = report_paths(out, name)
        row: dict[str, Any] = {"run": name}
        if is_complete(out, name):
            record = json.loads(paths["provenance"].read_text(encoding="utf-8"))
            row.update(status="complete", duration_s=record.get("duration_s"), report=paths["html"].name, error=None)
        elif paths["error"].is_file():
            record = json.loads(paths["error"].read_text(encoding="utf-8"))
            err = record.get("error") or {}
            row.update(status="failed", duration_s=record.get("duration_s"),
                       report=paths["failed_notebook"].name if paths["failed_notebook"].is_file() else None,
                       error=f"{err.get('ename')}: {err.get('evalue')}")
        else:
            row.update(status="missing", duration_s=None, report=None, error=None)
        for k, v in job.parameters.items():
            if k != METRICS_PARAMETER:
                row[k] = _cell(v)
        metrics: dict[str, Any] = {}
        if row["status"] == "complete" and paths["metrics"].is_file():
            _flatten("metrics", json.loads(paths["metrics"].read_text(encoding="utf-8")), metrics)
        row.update({k: _cell(v) for k, v in metrics.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    first = ["run", "status"]
    params = [c for c in df.columns if c not in first and not c.startswith("metrics.")
              and c not in {"duration_s", "report", "error"}]
    metric_cols = sorted(c for c in df.columns if c.startswith("metrics."))
    return df[first + params + ["duration_s", "report", "error"] + metric_cols]


def write_summary(output_dir: str | Path, summary: pd.DataFrame) -> dict[str, Path]:
    """``summary.csv`` always; ``summary.parquet`` too when pyarrow (or fastparquet) is installed, else a warning."""
    out = Path(output_dir)
    files = {"csv": out / "summary.csv"}
    with atomic_open(files["csv"]) as fh:
        summary.to_csv(fh, index=False)
    try:
        with atomic_open(out / "summary.parquet", "wb") as fh:
            summary.to_parquet(fh, index=False)
        files["parquet"] = out / "summary.parquet"
    except ImportError as exc:  # the runs are done: do not fail the sweep over the second copy of its table
        warnings.warn(f"summary.parquet not written: it needs pyarrow (pip install pyarrow): {exc}", stacklevel=2)
    return files


def write_index(output_dir: str | Path, summary: pd.DataFrame, *, notebook: str | Path | None = None) -> Path:
    """A small self-contained ``index.html``: one row per run with a link to its report (or failed notebook)."""
    out = Path(output_dir)
    esc = html_lib.escape
    cols = [c for c in summary.columns if c not in {"run", "report"}]
    head = "".join(f"<th>{esc(str(c))}</th>" for c in ["run"] + cols)
    body = []
    for row in summary.to_dict("records"):
        link = row.get("report")
        name = esc(str(row["run"]))
        first = f'<a href="{esc(str(link))}">{name}</a>' if link else name
        cells = []
        for c in cols:
            v = row.get(c)
            text = "" if v is None or (isinstance(v, float) and v != v) else (f"{v:.6g}" if isinstance(v, float)
                                                                              else str(v))
            cells.append(f"<td>{esc(text)}</td>")
        body.append(f'<tr class="{esc(str(row["status"]))}"><td>{first}</td>{"".join(cells)}</tr>')
    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    title = f"Sweep of {Path(notebook).name}" if notebook else "Sweep"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
tr.failed td {{ background: #fde8e8; }} tr.missing td {{ background: #f4f4f4; color: #777; }}
</style></head>
<body><h1>{esc(title)}</h1>
<p>{len(summary)} runs: {esc(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))}.
Data: <a href="summary.csv">summary.csv</a>, <a href="summary.parquet">summary.parquet</a>.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
    return atomic_write(out / "index.html", page)


__all__ = ["split_grid", "load_grid", "expand_grid", "run_name", "SweepJob", "run_job", "SweepResult", "run_sweep",
           "summarize", "write_summary", "write_index"]
