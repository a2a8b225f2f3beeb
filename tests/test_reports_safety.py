"""Reports written safely: atomic outputs that never follow a planted link, one writer per output name, stale
outputs withdrawn before a rerun, relative paths against the caller, errors that survive an unwritable folder,
a kernel shut down without SIGINT (no ``KeyboardInterrupt caught in kernel``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import OptionError, OutputError, ReportFailedError
from workbench.reports import is_complete, run_report
from workbench.reports.files import atomic_write, lock_path, output_lock, prepare_output_dir
from workbench.reports.sweep import write_index, write_summary

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "notebooks" / "tiny_report.ipynb"


def _no_kernel(monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))


# -- atomic writes ------------------------------------------------------------------------------------------------


def test_atomic_write_replaces_a_symlink_at_the_final_name_and_never_writes_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.html").symlink_to(victim)
    atomic_write(out / "r.html", "<html>report</html>")
    assert victim.read_text() == "precious"
    assert not (out / "r.html").is_symlink() and (out / "r.html").read_text() == "<html>report</html>"
    assert oct((out / "r.html").stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert sorted(p.name for p in out.iterdir()) == ["r.html"]  # no temporary left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old")
    from workbench.reports.files import atomic_open

    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]
    with pytest.raises(OptionError, match="atomic_open: mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(target, "a"):
            pass
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_sweep_index_and_summary_ignore_links_planted_at_the_old_temporary_names(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "sweep"
    out.mkdir()
    for name in (".index.html.tmp", ".summary.csv.tmp", ".summary.parquet.tmp", "index.html"):
        (out / name).symlink_to(victim)
    summary = pd.DataFrame({"run": ["x=1-abc"], "status": ["complete"], "x": [1], "duration_s": [1.0],
                            "report": ["x=1-abc.html"], "error": [None]})
    write_summary(out, summary)
    write_index(out, summary)
    assert victim.read_text() == "precious"
    assert not (out / "index.html").is_symlink() and "x=1-abc" in (out / "index.html").read_text()
    assert pd.read_csv(out / "summary.csv")["run"].tolist() == ["x=1-abc"]


# -- one writer per name ------------------------------------------------------------------------------------------


def test_a_second_writer_of_the_same_report_is_refused(monkeypatch, tmp_path, capsys):
    _no_kernel(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out, "r"):
        with pytest.raises(OutputError, match=rf"report 'r' in .* is being written by process {os.getpid()}"):
            run_report(TINY, {"x": 2}, output_dir=out, name="r")
        from workbench.cli import main

        assert main(["report", str(TINY), "-o", str(out), "--name", "r"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: report 'r'") and "being written" in err and len(err.strip().splitlines()) == 1
    assert not lock_path(out, "r").exists()  # released and removed
    assert sorted(p.name for p in out.iterdir()) == []  # the refused runs wrote nothing


def test_the_lock_holds_across_processes_and_is_taken_again_after_release(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom workbench.reports.files import output_lock\n"
         f"with output_lock({str(out)!r}, 'r'):\n    print('held', flush=True)\n    sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"process {holder.pid}"):
            with output_lock(out, "r"):
                pass
        with output_lock(out, "other"):  # another name is free
            pass
    finally:
        holder.communicate("\n", timeout=30)
    with output_lock(out, "r") as path:
        assert path.read_text().strip() == str(os.getpid())
    assert list(out.iterdir()) == []


def test_a_symlink_at_the_lock_name_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock_path(out, "r").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        with output_lock(out, "r"):
            pass
    assert victim.read_text() == "precious"


# -- a rerun withdraws the previous outputs ------------------------------------------------------------------------


def _previous_run(out: Path, name: str = "r") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.html").write_text("<html>old report</html>")
    (out / f"{name}.ipynb").write_text("{}")
    (out / f"{name}.metrics.json").write_text('{"x": 1}')
    (out / f"{name}.provenance.json").write_text(json.dumps({"status": "complete"}))
    assert is_complete(out, name)


def test_an_interrupted_rerun_leaves_no_complete_looking_report(monkeypatch, tmp_path):
    import papermill

    out = tmp_path / "out"
    _previous_run(out)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_report(TINY, {"x": 2}, output_dir=out, name="r")
    assert not is_complete(out, "r")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["r.error.json", "r.stale.html", "r.stale.ipynb"]  # the old report kept, marked stale
    assert (out / "r.stale.html").read_text() == "<html>old report</html>"
    assert json.loads((out / "r.error.json").read_text())["error"]["ename"] == "KeyboardInterrupt"


# -- paths and folders --------------------------------------------------------------------------------------------


def test_relative_path_parameters_resolve_against_the_callers_folder(monkeypatch, tmp_path):
    import papermill

    seen = {}

    def fake_execute(input_path, output_path, parameters=None, **kwargs):
        seen.update(parameters)
        raise RuntimeError("stop here")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    caller = tmp_path / "caller"
    caller.mkdir()
    monkeypatch.chdir(caller)
    with pytest.raises(ReportFailedError):
        run_report(TINY, {"metrics_path": "sub/m.json", "gate": "./gate", "label": "a/b"}, output_dir="out")
    assert seen["metrics_path"] == str(caller / "sub" / "m.json")  # not beside the notebook
    assert seen["gate"] == str(caller / "gate")  # ./-relative values are paths whatever their name
    assert seen["label"] == "a/b"  # other strings untouched
    error = json.loads((caller / "out" / "tiny_report.error.json").read_text())
    assert error["parameters"]["metrics_path"] == str(caller / "sub" / "m.json")

    from workbench.cli import main

    seen.clear()
    assert main(["report", str(TINY), "-o", "out", "-p", "metrics_path", "m.json", "-p", "plot", "false"]) == 1
    assert seen["metrics_path"] == str(caller / "m.json")


@pytest.mark.parametrize("command", ["report", "sweep"])
def test_bad_output_targets_are_one_line_errors_with_exit_2(monkeypatch, tmp_path, capsys, command):
    _no_kernel(monkeypatch)
    from workbench.cli import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    grid = tmp_path / "g.yaml"
    grid.write_text("x: [1, 2]\n")
    extra = ["--grid", str(grid)] if command == "sweep" else []
    for target, needle in [(afile, "is a file"), (afile / "sub", "lies under a file")]:
        assert main([command, str(TINY), "-o", str(target), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: -o/--output-dir") and needle in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert afile.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    _no_kernel(monkeypatch)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        from workbench.cli import main

        assert main(["report", str(TINY), "-o", str(out)]) == 2
        assert "cannot write in this folder" in capsys.readouterr().err
    finally:
        out.chmod(0o700)


def test_prepare_output_dir_probes_for_real(monkeypatch, tmp_path):
    import tempfile as tf

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tf, "mkstemp", denied)
    with pytest.raises(OutputError, match="cannot write in this folder: Permission denied"):
        prepare_output_dir(tmp_path / "new")


def test_a_folder_that_turns_unwritable_does_not_hide_the_notebooks_error(monkeypatch, tmp_path):
    import papermill

    from workbench.reports import run as run_mod

    def failing(*a, **k):
        raise ValueError("the notebook's own error")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(papermill, "execute_notebook", failing)
    monkeypatch.setattr(run_mod, "write_json_atomic", denied)
    monkeypatch.setattr(run_mod, "atomic_open", denied)
    with pytest.raises(ReportFailedError) as info:
        run_report(TINY, {"x": 2}, output_dir=tmp_path / "out", name="r")
    msg = str(info.value)
    assert "ValueError: the notebook's own error" in msg and "could not be written" in msg
    assert "r.error.json: Permission denied" in msg


# -- one real run: links planted at every old temporary name, kernel shut down without SIGINT --------------------


@pytest.mark.slow
def test_real_report_ignores_planted_links_and_shuts_its_kernel_down_quietly(monkeypatch, tmp_path, capfd):
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    sent = []
    original = LocalProvisioner.send_signal

    async def recording(self, signum):
        sent.append(signum)
        return await original(self, signum)

    monkeypatch.setattr(LocalProvisioner, "send_signal", recording)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    plants = [".r.html.tmp", ".r.ipynb.tmp", ".r.partial.ipynb", f".r.provenance.json.{os.getpid()}.tmp",
              f".r.metrics.json.{os.getpid()}.tmp", "r.metrics.json"]
    for name in plants:
        (out / name).symlink_to(victim)
    result = run_report(TINY, {"x": 2, "plot": False}, output_dir=out, name="r")
    assert result.status == "complete" and result.metrics["x"] == 2
    assert victim.read_text() == "precious"
    for name in ("r.html", "r.ipynb", "r.provenance.json", "r.metrics.json"):
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert not lock_path(out, "r").exists() and not list(out.glob(".r.*.running"))
    assert signal.SIGINT not in sent  # jupyter_client interrupts before a shutdown; ours does not
    err = capfd.readouterr().err
    assert "KeyboardInterrupt caught" not in err and "[IPKernelApp] ERROR" not in err
    assert "without encryption" not in err  # IPC sockets, not TCP


# -- every bad argument: exit 2 and one line ----------------------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["report", str(TINY), "--cell-timeout", "-1"], "positive number of seconds"),
    (["report", str(TINY), "--cell-timeout", "soon"], "expected a number of seconds"),
    (["report", str(TINY), "--name", "a/b"], "must be a plain file name"),
    (["report", str(TINY), "--name", ".hidden"], "must be a plain file name"),
    (["report", str(TINY), "--name", "r.stale"], "must be a plain file name"),
    (["report", str(TINY), "-p", "x-y", "1"], "must be a Python identifier"),
    (["report", str(TINY), "-f", "no/such.yaml"], "cannot read parameter file"),
    (["report", "no/such.ipynb"], "notebook not found"),
    (["sweep", str(TINY), "--grid", "no/such.yaml"], "cannot read"),
    (["sweep", str(TINY), "--grid", str(TINY), "--workers", "0"], "--workers must be at least 1"),
    (["lab", "--port", "0"], "a port must be between 1 and 65535"),
    (["lab", "--port", "http"], "invalid int value"),
    (["nonsense"], "invalid choice"),
])
def test_every_bad_argument_exits_2_with_a_one_line_message(monkeypatch, tmp_path, capsys, args, needle):
    _no_kernel(monkeypatch)
    from workbench import cli

    monkeypatch.setattr(cli.os, "execv", lambda *a: pytest.fail("the lab was started"))
    monkeypatch.chdir(tmp_path)
    try:
        rc = cli.main(args)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert "Traceback" not in err and len([l for l in err.splitlines() if l.startswith("error")]) <= 1
    assert list(tmp_path.iterdir()) == []  # nothing written
