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
earlier work: complete runs are skipped, failed ones run again. Afterwards ``OUTDIR/index.html`` links every report
and ``summary.csv`` / ``summary.parquet`` hold one row per run: its parameters, status, duration and the metrics
from its JSON sidecar (columns ``metrics.<key>``, nested keys joined with ``.``).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import html as html_lib
import itertools
import json
import multiprocessing
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from workbench.errors import DataError

from .params import ParameterError, load_yaml_file, notebook_parameters, validate_parameters
from .provenance import write_json_atomic
from .run import METRICS_PARAMETER, ReportFailedError, is_complete, report_paths, run_report


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


def run_job(job: SweepJob) -> dict[str, Any]:
    """Run one sweep job; never raises for a failing notebook: returns ``{"name", "status", "duration_s", "error"}``."""
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
        try:
            write_json_atomic(paths["error"], record)
        except OSError:
            pass
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
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="report", disable=not show or None)


def _make_executor(workers: int, scheduler: str | None, pool: str = "processes"
                   ) -> tuple[cf.Executor | None, Callable[[], None]]:
    """An executor for ``workers`` local processes (or threads) or a Dask scheduler address, and its shutdown."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise DataError("--scheduler needs Dask: pip install 'workbench[dask]'") from None
        client = Client(scheduler)
        executor = client.get_executor()

        def close() -> None:
            executor.shutdown(wait=True)
            client.close()

        return executor, close
    if pool not in {"processes", "threads"}:
        raise DataError(f"pool must be 'processes' or 'threads', got {pool!r}")
    if workers > 1:
        if pool == "threads":
            executor = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workbench-sweep")
        else:  # spawn: safe even when called from a Jupyter kernel (fork of a process with zmq threads is not)
            executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        return executor, lambda: executor.shutdown(wait=True)
    return None, lambda: None


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
    out = Path(output_dir).resolve()
    grid, fixed = dict(grid), dict(fixed or {})
    split_grid({"grid": grid, "fixed": fixed})  # shape checks
    if METRICS_PARAMETER in grid or METRICS_PARAMETER in fixed:
        raise ParameterError(f"{METRICS_PARAMETER!r} is set per run by the sweep; leave it out of the grid")
    declared = notebook_parameters(notebook)
    combos = [validate_parameters(notebook, combo, declared) for combo in expand_grid(grid, fixed)]
    varying = [k for k in grid if len(grid[k]) > 1] or list(grid)
    jobs: dict[str, SweepJob] = {}
    for combo in combos:
        name = run_name(combo, varying)
        jobs.setdefault(name, SweepJob(str(notebook), combo, str(out), name, kernel_name, cell_timeout))
    out.mkdir(parents=True, exist_ok=True)
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
    own_close: Callable[[], None] = lambda: None  # noqa: E731
    if executor is None and todo:
        executor, own_close = _make_executor(min(workers, len(todo)), scheduler, pool)
    try:
        if executor is None:
            for job in todo:
                runs.append(run_job(job))
                bar.update(1)
        else:
            futures = [executor.submit(run_job, job) for job in todo]
            for fut in cf.as_completed(futures):
                runs.append(fut.result())
                bar.update(1)
    finally:
        bar.close()
        own_close()

    order = {name: i for i, name in enumerate(jobs)}
    runs.sort(key=lambda r: order[r["name"]])
    summary = summarize(out, jobs)
    files = write_summary(out, summary)
    index = write_index(out, summary, notebook=notebook)
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
    tmp = out / ".summary.csv.tmp"
    summary.to_csv(tmp, index=False)
    tmp.replace(files["csv"])
    try:
        tmp = out / ".summary.parquet.tmp"
        summary.to_parquet(tmp, index=False)
        tmp.replace(out / "summary.parquet")
        files["parquet"] = out / "summary.parquet"
    except ImportError as exc:  # the runs are done: do not fail the sweep over the second copy of its table
        warnings.warn(f"summary.parquet not written: it needs pyarrow (pip install pyarrow): {exc}", stacklevel=2)
        tmp.unlink(missing_ok=True)
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
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["split_grid", "load_grid", "expand_grid", "run_name", "SweepJob", "run_job", "SweepResult", "run_sweep",
           "summarize", "write_summary", "write_index"]
