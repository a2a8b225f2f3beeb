"""The ``workbench`` command.

    workbench lab [--port P] [--no-browser] [--notebook PATH]
    workbench report NOTEBOOK [-p NAME VALUE]... [-f params.yaml] [-o OUTDIR] [--name NAME]
    workbench report --params NOTEBOOK
    workbench sweep NOTEBOOK --grid grid.yaml [-p NAME VALUE]... [--workers N] [--scheduler ADDRESS] [-o OUTDIR]
    workbench weights CHECKPOINT [--formats F...] [--patterns P...] [-o OUTDIR] [--name NAME] [--resume]
                      [--dask ADDRESS | --workers N]

``lab`` brings the user's working copy of the notebooks up to date (``~/.local/share/workbench/notebooks`` or
``$WORKBENCH_NOTEBOOKS_DIR``: JupyterLab saves outputs there, never into the repository's tracked ``notebooks/``;
edits are never overwritten, see :mod:`workbench.lab`), then replaces itself with ``python -m jupyter lab`` listening
on 127.0.0.1 with Jupyter's own token, whatever the user's Jupyter config says (token never empty, XSRF checks on,
no cross-origin requests: it refuses to start otherwise), with no news or update pop-ups, opening
``00_start_here.ipynb``; no browser is opened when there is no display.

``weights`` streams the weight report (:mod:`workbench.reports.weights_run`) over a safetensors file or folder
(memory bounded by a layer, not the model) and writes ``OUTDIR/NAME.parquet``, a self-contained ``NAME.html`` and,
last, ``NAME.provenance.json``; outputs of an earlier run of that name are refused unless ``--resume``, which skips
the layers the parquet already holds.

Exit status: 0 on success; 1 when a report or a sweep run failed (or an unexpected system error, printed on one
line); 2 for bad input, reported on one line before any kernel starts: unknown or mistyped parameters, missing
files, a bad option value, an output folder that is a file, lies under a file or cannot be written, or an output
name another run is writing; 130 after Ctrl-C (a sweep of worker processes lets its running reports finish; Ctrl-C
again stops them; no worker outlives the command). Relative paths given as parameters (``-p metrics_path m.json``)
are relative to the folder the command runs in.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from workbench.errors import WorkbenchError

#: The notebook ``workbench lab`` opens, relative to the project's ``notebooks/`` folder.
START_NOTEBOOK = "00_start_here.ipynb"


# --------------------------------------------------------------------------------------------------------------
# lab


def project_root() -> Path:
    """The repository root (the folder holding the ``workbench`` package and ``notebooks/``)."""
    return Path(__file__).resolve().parent.parent


def has_display() -> bool:
    """Whether a browser could be shown: always on macOS and Windows; on Linux only with X11 or Wayland."""
    if sys.platform in {"darwin", "win32"}:
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


#: Command-line settings of every ``workbench lab`` server. The command line outranks every Jupyter config file, so
#: a user config with ``token = ''``, ``disable_check_xsrf = True`` or ``allow_origin = '*'`` cannot open the server
#: (see :mod:`workbench.lab`, whose identity provider also refuses to start when something still leaves it open).
LAB_SECURITY_ARGS = (
    "--ServerApp.ip=127.0.0.1",
    "--ServerApp.identity_provider_class=workbench.lab.AlwaysAuthIdentityProvider",
    "--ServerApp.disable_check_xsrf=False",
    "--ServerApp.allow_origin=",
    "--ServerApp.allow_origin_pat=",
    "--ServerApp.allow_remote_access=False",
)
#: No news feed and no update check: their notifications cover the dashboard.
LAB_QUIET_ARGS = ("--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")


def lab_argv(*, port: int | None = None, no_browser: bool = False, notebook: str | Path | None = None,
             root: str | Path | None = None, python: str | None = None,
             settings_dir: str | Path | None = None) -> list[str]:
    """The command line ``workbench lab`` runs: JupyterLab on 127.0.0.1 with a token, opening ``notebook``.

    The server's root is ``root`` (``workbench lab`` passes the user's working copy, :mod:`workbench.lab`; default:
    the project's ``notebooks/`` folder), or the notebook's own folder when it lies outside it. The token is
    Jupyter's (random, printed with the URL, never empty: :data:`LAB_SECURITY_ARGS`); the browser is not opened
    when ``no_browser`` or when there is no display; ``--allow-root`` is added when running as root (containers);
    ``settings_dir`` is JupyterLab's app-settings folder (:func:`workbench.lab.write_lab_settings`).
    """
    root_dir = Path(root) if root is not None else project_root() / "notebooks"
    if not root_dir.is_dir():
        root_dir = Path.cwd()
    root_dir = root_dir.resolve()
    nb = Path(notebook) if notebook is not None else root_dir / START_NOTEBOOK
    nb = nb.resolve()
    try:
        rel = nb.relative_to(root_dir)
    except ValueError:
        root_dir, rel = nb.parent, Path(nb.name)
    argv = [python or sys.executable, "-m", "jupyter", "lab", *LAB_SECURITY_ARGS, *LAB_QUIET_ARGS,
            f"--ServerApp.root_dir={root_dir}",
            f"--LabApp.default_url=/lab/tree/{rel.as_posix()}"]
    if settings_dir is not None:
        argv.append(f"--LabApp.app_settings_dir={Path(settings_dir).resolve()}")
    if port is not None:
        argv += [f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0"]
    if no_browser or not has_display():
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root; Jupyter refuses without this
        argv.append("--allow-root")
    return argv


def prepare_lab(notebook: str | Path | None = None, *, dest: str | Path | None = None,
                out=None) -> tuple[Path, Path | None]:
    """Bring the user's working copy of ``notebooks/`` up to date and say where it is; returns (root, notebook).

    ``notebook`` inside the project's ``notebooks/`` is opened from the working copy; one elsewhere is served from
    its own folder. Without a ``notebooks/`` folder (an installed wheel) the lab serves the current folder.
    """
    from workbench.lab import notebooks_home, sync_working_copy

    out = out if out is not None else sys.stderr
    source = project_root() / "notebooks"
    nb = Path(notebook).resolve() if notebook is not None else None
    if not source.is_dir():
        return (nb.parent if nb is not None else Path.cwd()), nb
    copy = sync_working_copy(source, dest if dest is not None else notebooks_home())
    print(f"Notebooks: {copy.root} (your working copy of {source}: JupyterLab saves edits and outputs there, the "
          "repository stays untouched; set WORKBENCH_NOTEBOOKS_DIR to use another folder)", file=out)
    if copy.copied:
        print(f"  copied {len(copy.copied)} new file(s) from the repository", file=out)
    if copy.updated:
        print(f"  updated {len(copy.updated)} file(s) you had not changed: {', '.join(copy.updated)}", file=out)
    if copy.kept:
        print(f"  kept your edited {', '.join(copy.kept)} (the repository's version differs; delete yours to get "
              "it)", file=out)
    if nb is not None:
        try:
            nb = copy.root / nb.relative_to(source.resolve())
        except ValueError:
            pass
    return copy.root, nb


def _cmd_lab(args: argparse.Namespace) -> int:
    from workbench.lab import write_lab_settings

    notebook = Path(args.notebook) if args.notebook else None
    if notebook is not None and not notebook.is_file():
        raise WorkbenchError(f"--notebook {str(notebook)!r}: notebook not found")
    if args.port is not None and not 0 < args.port < 65536:
        raise WorkbenchError(f"--port {args.port}: a port must be between 1 and 65535")
    root, notebook = prepare_lab(notebook)
    argv = lab_argv(port=args.port, no_browser=args.no_browser, notebook=notebook, root=root,
                    settings_dir=write_lab_settings())
    if notebook is None and not (root / START_NOTEBOOK).is_file():
        print(f"note: {START_NOTEBOOK} not found; JupyterLab opens on an empty page", file=sys.stderr)
    print("Starting JupyterLab on 127.0.0.1; open the URL with the token that it prints below.", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


# --------------------------------------------------------------------------------------------------------------
# report


def _print_parameters(notebook: str) -> int:
    from workbench.reports.params import notebook_parameters

    params = notebook_parameters(notebook)
    if not params:
        print(f"{notebook}: no cell tagged 'parameters'")
        return 0
    rows = [(p.name, str(p.type), p.default_source, p.help) for p in params.values()]
    widths = [max(len(r[i]) for r in rows + [("name", "type", "default", "help")]) for i in range(3)]
    print(f"Parameters of {notebook}:")
    print(f"  {'name':<{widths[0]}}  {'type':<{widths[1]}}  {'default':<{widths[2]}}  help")
    for name, ptype, default, help_text in rows:
        print(f"  {name:<{widths[0]}}  {ptype:<{widths[1]}}  {default:<{widths[2]}}  {help_text}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.reports.params import merge_parameter_sources
    from workbench.reports.run import ReportFailedError, run_report

    if args.list_params:
        return _print_parameters(args.notebook)
    values = merge_parameter_sources(args.param_file or [], args.param or [])
    try:
        result = run_report(args.notebook, values, output_dir=args.output_dir, name=args.name,
                            progress=args.progress, cell_timeout=args.cell_timeout)
    except ReportFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.result is not None and exc.result.provenance is not None:
            print(f"error details: {exc.result.provenance}", file=sys.stderr)
        return 1
    print(f"report: {result.html}")
    print(f"notebook: {result.notebook}")
    if result.metrics_file is not None:
        print(f"metrics: {result.metrics_file}")
    print(f"provenance: {result.provenance} ({result.duration_s:.1f} s)")
    return 0


# --------------------------------------------------------------------------------------------------------------
# sweep


def _cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.reports.params import merge_parameter_sources
    from workbench.reports.sweep import load_grid, run_sweep

    grid, fixed = load_grid(args.grid)
    fixed.update(merge_parameter_sources(args.param_file or [], args.param or []))
    overlap = set(grid) & set(fixed)
    if overlap:
        raise WorkbenchError(f"parameters both in the grid and given with -p/-f: {', '.join(sorted(overlap))}")
    result = run_sweep(args.notebook, grid, fixed=fixed, output_dir=args.output_dir, workers=args.workers,
                       pool=args.pool, scheduler=args.scheduler, progress=not args.no_progress,
                       cell_timeout=args.cell_timeout)
    done, skipped, failed = (result.names(s) for s in ("complete", "skipped", "failed"))
    cancelled = result.names("cancelled")
    print(f"sweep: {len(result.runs)} runs: {len(done)} ran, {len(skipped)} already complete, {len(failed)} failed"
          + (f", {len(cancelled)} cancelled" if cancelled else ""))
    for run in result.runs:
        if run["status"] == "failed":
            print(f"  failed: {run['name']}: {run['error']}", file=sys.stderr)
    print(f"index: {result.index}")
    print(f"summary: {', '.join(str(p) for p in result.files.values())}")
    return 1 if failed else 0


# --------------------------------------------------------------------------------------------------------------
# weights


def _cmd_weights(args: argparse.Namespace) -> int:
    from workbench.reports.weights_run import run_weights_report

    result = run_weights_report(args.checkpoint, args.formats, args.patterns, output_dir=args.output_dir,
                                name=args.name, resume=args.resume, layers=args.layers, scheduler=args.scheduler,
                                workers=args.workers, progress=not args.no_progress)
    info = result.info
    print(f"weights: {info['layers']} layers; formats {info['formats']}; patterns {info['patterns']}: "
          f"{len(result.table)} rows in {result.duration_s:.1f} s" + (" (resumed)" if result.resumed else ""))
    print(f"table: {result.parquet}")
    print(f"report: {result.html}")
    print(f"provenance: {result.provenance}")
    return 0


# --------------------------------------------------------------------------------------------------------------
# parser and entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Sparsity and low-precision numbers in neural networks: "
                     "JupyterLab workbench and parameterized reports.")
    from workbench import __version__

    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    lab = sub.add_parser("lab", help="start JupyterLab (127.0.0.1, token) on the start-here notebook")
    lab.add_argument("--port", type=int, default=None, help="port (default: Jupyter's 8888 or the next free one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser (automatic without a display)")
    lab.add_argument("--notebook", default=None, help=f"notebook to open (default: notebooks/{START_NOTEBOOK})")
    lab.set_defaults(func=_cmd_lab)

    def add_params(p: argparse.ArgumentParser) -> None:
        p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="a parameter; VALUE is read as YAML (3, 0.5, true, null, [2:4, int8]); repeatable")
        p.add_argument("-f", "--param-file", action="append", metavar="FILE",
                       help="YAML file of name: value parameters (repeatable; -p wins)")
        p.add_argument("--cell-timeout", type=_positive, default=None,
                       help="seconds one cell may run (default: none)")

    report = sub.add_parser("report", help="run a notebook as a report: executed notebook, HTML, provenance")
    report.add_argument("notebook", help="the notebook (.ipynb) to run")
    report.add_argument("--params", dest="list_params", action="store_true",
                        help="list the notebook's parameters (types, defaults, help) and exit")
    add_params(report)
    report.add_argument("-o", "--output-dir", default="reports", help="output folder (default: reports)")
    report.add_argument("--name", default=None, help="base name of the outputs (default: the notebook's name)")
    report.add_argument("--progress", action="store_true", help="show a cell-by-cell progress bar")
    report.set_defaults(func=_cmd_report)

    sweep = sub.add_parser("sweep", help="run a notebook for every combination of a parameter grid")
    sweep.add_argument("notebook", help="the notebook (.ipynb) to run")
    sweep.add_argument("--grid", required=True, help="YAML grid: name: [values] (or grid: ... fixed: ...)")
    add_params(sweep)
    sweep.add_argument("-o", "--output-dir", default="sweep", help="output folder (default: sweep)")
    sweep.add_argument("--workers", type=int, default=1, help="local worker processes (default: 1)")
    sweep.add_argument("--pool", choices=["processes", "threads"], default="processes",
                       help="local workers as processes (default) or threads; each report has its own kernel")
    sweep.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_cmd_sweep)

    weights = sub.add_parser("weights", help="per-layer weight report of a safetensors checkpoint, streamed layer by "
                             "layer: parquet + HTML")
    weights.add_argument("checkpoint", help="a .safetensors file, a sharded folder with model.safetensors.index.json, "
                         "or a local Hugging Face folder")
    weights.add_argument("--formats", nargs="*", default=None, metavar="FORMAT",
                         help="number formats, e.g. int8 int4 fp8_e4m3 2:4+int8 (default: the report's FP8 and int "
                         "formats; none: --formats with no value)")
    weights.add_argument("--patterns", nargs="*", default=None, metavar="PATTERN",
                         help="sparsity patterns, e.g. 2:4 4:8-T 'unstructured 50%%' (default: the report's N:M "
                         "and transposable N:M; none: --patterns with no value)")
    weights.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                         help="only these layers (names of the checkpoint's layer table; default: all)")
    weights.add_argument("-o", "--output-dir", default="reports", help="output folder (default: reports)")
    weights.add_argument("--name", default=None, help="base name of the outputs (default: weights-CHECKPOINT)")
    weights.add_argument("--resume", action="store_true",
                         help="continue (or redo) a report whose outputs exist: finished layers are skipped")
    weights.add_argument("--dask", "--scheduler", dest="scheduler", default=None, metavar="ADDRESS",
                         help="run the layers on a Dask cluster, e.g. tcp://10.0.0.5:8786")
    weights.add_argument("--workers", type=int, default=1,
                         help="local Dask worker processes (default 1: run in this process)")
    weights.add_argument("--no-progress", action="store_true", help="no progress bar")
    weights.set_defaults(func=_cmd_weights)
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse: a one-line usage error and exit 2
    if getattr(args, "workers", 1) < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that filled up, a folder removed under us: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["main", "build_parser", "lab_argv", "prepare_lab", "has_display", "project_root", "START_NOTEBOOK",
           "LAB_SECURITY_ARGS", "LAB_QUIET_ARGS"]
