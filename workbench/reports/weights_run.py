"""``workbench weights``: the streaming weight report of a checkpoint as files, for cron / Airflow.

:func:`run_weights_report` writes, into an output folder, under one name ``NAME``:

- ``NAME.parquet``: the table of :func:`workbench.reports.weights.weight_report` (one row per layer × format or
  pattern), appended as each layer finishes, so a run killed midway is continued with ``resume=True``
  (``--resume``), which skips the finished layers;
- ``NAME.html``: a self-contained page of that table (:mod:`workbench.reports.weights_page`, plotly.js inline);
- ``NAME.provenance.json`` last, with ``"status": "complete"``: its presence marks a finished report.

It follows :func:`workbench.reports.run.run_report`'s rules for outputs (:mod:`workbench.reports.files`):

1. bad input is refused before anything is written: the checkpoint is opened lazily (headers only) and every
   format and pattern parsed; a bad one raises a :class:`~workbench.errors.WorkbenchError` and nothing changes;
2. the output folder is created and proven writable, then the name's lock taken (one writer per name; a second
   run is refused at once with :class:`~workbench.errors.OutputError`);
3. outputs of an earlier run of that name are refused (:class:`OutputError`) unless ``resume``; with ``resume`` the
   earlier ``NAME.html`` becomes ``NAME.stale.html`` and the completion marker is removed, so an interrupted rerun
   never looks complete (when the report refuses the resume before touching the parquet, e.g. it was made with
   other formats, both are put back);
4. on success the HTML and then the provenance are written atomically and the stale copy removed.

``executor``: run the layers on Dask, a ``dask.distributed.Client`` (given), a scheduler address
(``scheduler="tcp://host:8786"``) or a ``LocalCluster`` of ``workers`` single-threaded worker processes started
and closed here. Workers open the checkpoint themselves; only names and small results travel.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from workbench.errors import OptionError, OutputError, UnavailableError, WorkbenchError

from .files import atomic_write, output_lock, prepare_output_dir, remove

if TYPE_CHECKING:  # pandas is imported when a report runs, not when the command line is parsed
    import pandas as pd

@dataclass
class WeightsResult:
    """What :func:`run_weights_report` wrote, and the table."""

    name: str
    output_dir: Path
    parquet: Path
    html: Path
    provenance: Path
    table: "pd.DataFrame"
    duration_s: float
    resumed: bool = False
    info: dict[str, Any] = field(default_factory=dict)


def weights_paths(output_dir: str | Path, name: str) -> dict[str, Path]:
    """Where a weight report called ``name`` puts each of its files inside ``output_dir``."""
    out = Path(output_dir)
    return {
        "parquet": out / f"{name}.parquet",
        "html": out / f"{name}.html",
        "provenance": out / f"{name}.provenance.json",
        "stale_html": out / f"{name}.stale.html",
    }


def default_name(checkpoint: str | os.PathLike) -> str:
    """``weights-<checkpoint's file or folder name without .safetensors>``."""
    text = os.fspath(checkpoint).removeprefix("safetensors:").rstrip("/\\")
    stem = Path(text).name.removesuffix(".safetensors") or "checkpoint"
    return f"weights-{stem}"


def check_formats(formats: Sequence[str] | None, patterns: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The format and pattern names (None: the weight report's defaults), each parsed by the one grammar and checked
    for the lazy path (:func:`workbench.reports.weights.parse_entries`), so a bad one is refused before any work."""
    from workbench.reports.weights import DEFAULT_FORMATS, DEFAULT_PATTERNS, parse_entries

    fmts = [str(f).strip() for f in (DEFAULT_FORMATS if formats is None else formats)]
    pats = [str(p).strip() for p in (DEFAULT_PATTERNS if patterns is None else patterns)]
    parse_entries(fmts, pats)  # FormatError naming the entry and what is accepted
    return fmts, pats


def check_cluster(scheduler: str | None, workers: int) -> None:
    """Refuse a scheduler address together with ``workers > 1``, or a worker count that is not a positive integer."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise OptionError(f"workers={workers!r}: must be a positive integer")
    if scheduler is not None and workers > 1:
        raise OptionError(f"--dask {scheduler!r} and --workers {workers}: give one (a scheduler address runs on "
                          "that cluster's workers; --workers N starts N local ones)")


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 1) -> Iterator[Any]:
    """A ``dask.distributed.Client`` on ``scheduler`` (an address), on a ``LocalCluster`` of ``workers`` processes
    (one thread each) when ``workers > 1``, or None (run in this process) when neither; closed on exit."""
    check_cluster(scheduler, workers)
    if scheduler is None and workers == 1:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UnavailableError('Dask is not installed; pip install "workbench[dask]" to use --dask / --workers') \
            from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise OutputError(f"--dask {scheduler!r}: cannot reach the Dask scheduler: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _synthetic_note(handle: Any) -> str | None:
    path = Path(getattr(handle, "path", "") or "")
    config = (path if path.is_dir() else path.parent) / "config.json"
    try:
        note = json.loads(config.read_text(encoding="utf-8")).get("workbench_synthetic")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(note, dict):
        return None
    return (f"This checkpoint is SYNTHETIC: seeded random weights (seed {note.get('seed')}), not a trained model. "
            "The figures show the report's mechanics, not how a real model behaves.")


def run_weights_report(checkpoint: str | os.PathLike, formats: Sequence[str] | None = None,
                       patterns: Sequence[str] | None = None, *, output_dir: str | Path = "reports",
                       name: str | None = None, resume: bool = False, layers: Sequence[str] | None = None,
                       executor: Any = None, scheduler: str | None = None, workers: int = 1,
                       progress: bool = True) -> WeightsResult:
    """Run :func:`workbench.reports.weights.weight_report` on ``checkpoint`` (a safetensors file or folder) with
    ``formats`` and ``patterns`` (None: the report's defaults, ``DEFAULT_FORMATS`` / ``DEFAULT_PATTERNS`` of
    :mod:`workbench.reports.weights`) and write ``NAME.parquet``, ``NAME.html`` and ``NAME.provenance.json`` into
    ``output_dir`` (see the module docstring).

    Raises (before anything is written) :class:`~workbench.errors.ModelSpecError` and friends for a checkpoint the
    lazy path cannot read, :class:`~workbench.errors.FormatError` for a bad format, and
    :class:`~workbench.errors.OutputError` for an output folder that cannot be written, a name another run is
    writing, or outputs of an earlier run when ``resume`` is false.
    """
    from workbench.models import load_model
    from workbench.reports.weights import weight_report
    from workbench.reports.run import check_report_name
    from workbench.reports.weights_page import weights_page_html

    fmts, pats = check_formats(formats, patterns)
    if executor is None:
        check_cluster(scheduler, workers)
    spec = os.fspath(checkpoint)
    handle = load_model(spec if spec.startswith("safetensors:") else f"safetensors:{spec}", lazy=True)
    name = check_report_name(name or default_name(spec))
    if layers is not None:
        known = set(handle.layers["name"])
        unknown = [x for x in layers if x not in known]
        if unknown:
            from workbench.errors import LayerError

            raise LayerError(f"--layers {unknown[:5]} are not layers of {spec}; it has {len(known)}, e.g. "
                             f"{sorted(known)[:5]}")
    out = prepare_output_dir(output_dir)
    paths = weights_paths(out, name)
    with output_lock(out, name, what="weight report"):
        earlier = [p.name for key, p in paths.items() if key != "stale_html" and os.path.lexists(p)]
        if earlier and not resume:
            raise OutputError(f"weight report {name!r} already has outputs in {out} ({', '.join(earlier)}); pass "
                              "--resume (resume=True) to continue or redo it, or choose another -o/--name")
        parquet_before = _stat(paths["parquet"])
        had_html = os.path.lexists(paths["html"])
        if had_html:
            os.replace(paths["html"], paths["stale_html"])
        provenance_before = paths["provenance"].read_bytes() if paths["provenance"].is_file() else None
        remove(paths["provenance"])
        started_at, t0 = _now(), time.perf_counter()
        try:
            with (contextlib.nullcontext(executor) if executor is not None
                  else dask_client(scheduler, workers)) as client:
                table = weight_report(handle, formats=tuple(fmts), patterns=tuple(pats), out=paths["parquet"],
                                      resume=resume, executor=client, progress=progress, layers=layers)
        except WorkbenchError:
            # refused before any layer was written (a parquet made with other formats or layers, say): put the
            # earlier outputs back, so bad input changes nothing
            if _stat(paths["parquet"]) == parquet_before:
                if had_html:
                    os.replace(paths["stale_html"], paths["html"])
                if provenance_before is not None:
                    atomic_write(paths["provenance"], provenance_before)
            raise
        duration = time.perf_counter() - t0
        info = _info(handle, spec, fmts, pats, table, duration, started_at, scheduler, workers, executor)
        html = weights_page_html(table, title=f"weight report: {name}", info=info,
                                 synthetic_note=_synthetic_note(handle))
        try:
            atomic_write(paths["html"], html)
            remove(paths["stale_html"])
            record = {"schema": "workbench.weights.provenance/1", "name": name, "status": "complete",
                      **{k: v for k, v in info.items()},
                      "outputs": {k: paths[k].name for k in ("parquet", "html")}}
            from .provenance import git_state, package_versions

            record.update(packages=package_versions(), **{f"git_{k}": v for k, v in git_state().items()})
            atomic_write(paths["provenance"], json.dumps(record, indent=2, default=str) + "\n")
        except OSError as exc:
            raise OutputError(f"weight report {name!r} ran, but its outputs could not be written to {out}: "
                              f"{exc.strerror or exc}") from None
    return WeightsResult(name=name, output_dir=out, parquet=paths["parquet"], html=paths["html"],
                         provenance=paths["provenance"], table=table, duration_s=duration, resumed=bool(earlier),
                         info=info)


def _info(handle: Any, spec: str, fmts: list[str], pats: list[str], table: "pd.DataFrame", duration: float,
          started_at: str, scheduler: str | None, workers: int, executor: Any) -> dict[str, Any]:
    lt = handle.layers
    if len(table) and "name" in lt:
        lt = lt[lt["name"].isin(set(table["layer"]))]
    run_on = ("the given Dask client" if executor is not None else f"Dask scheduler {scheduler}" if scheduler
              else f"Dask LocalCluster, {workers} workers" if workers > 1 else "this process")
    return {
        "checkpoint": spec,
        "layers": int(table["layer"].nunique()) if len(table) else 0,
        "weights (parameters)": int(lt["numel"].sum()) if "numel" in lt else None,
        "formats": ", ".join(fmts) or "-",
        "patterns": ", ".join(pats) or "-",
        "run on": run_on,
        "started": started_at,
        "duration_s": round(duration, 2),
    }


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = ["run_weights_report", "WeightsResult", "weights_paths", "default_name", "check_formats", "check_cluster",
           "dask_client",
           ]
