"""The ``workbench`` command: lab's command line (and a real, bounded start), report/sweep exit codes and messages."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from workbench import cli
from workbench.cli import lab_argv, main

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "notebooks" / "tiny_report.ipynb"


# -- lab -------------------------------------------------------------------------------------------------------


def test_lab_argv_binds_localhost_with_token_and_opens_start_notebook(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    argv = lab_argv()
    assert argv[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert "--ServerApp.ip=127.0.0.1" in argv
    assert not any("0.0.0.0" in a for a in argv)
    assert not any("token" in a.lower() or "password" in a.lower() for a in argv)  # Jupyter's own token
    assert f"--ServerApp.root_dir={(ROOT / 'notebooks').resolve()}" in argv
    assert "--LabApp.default_url=/lab/tree/00_start_here.ipynb" in argv
    assert "--no-browser" not in argv  # a display: the browser opens
    assert not any(a.startswith("--ServerApp.port") for a in argv)


def test_lab_argv_port_and_headless(monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    argv = lab_argv(port=9123)
    assert "--ServerApp.port=9123" in argv and "--ServerApp.port_retries=0" in argv
    assert "--no-browser" in argv  # no display: automatic
    other = tmp_path / "elsewhere" / "mine.ipynb"
    other.parent.mkdir()
    other.write_text("{}")
    argv = lab_argv(notebook=other)
    assert f"--ServerApp.root_dir={other.parent.resolve()}" in argv
    assert "--LabApp.default_url=/lab/tree/mine.ipynb" in argv


def test_lab_command_execs_jupyter(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS_DIR", str(tmp_path / "notebooks"))  # not the real user's copy
    seen = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: seen.append((path, argv)))
    assert main(["lab", "--port", "9124", "--no-browser"]) == 0
    path, argv = seen[0]
    assert path == sys.executable and argv[2:4] == ["jupyter", "lab"] and "--no-browser" in argv
    assert "--ServerApp.port=9124" in argv


def test_lab_command_missing_notebook(capsys):
    assert main(["lab", "--notebook", "no/such.ipynb"]) == 2
    assert "notebook not found" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_lab_really_starts_on_localhost_and_requires_the_token(tmp_path):
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(lab_argv(port=port, no_browser=True), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        info = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            files = glob.glob(str(tmp_path / "runtime" / "jpserver-*.json"))
            if files:
                try:
                    info = json.loads(Path(files[0]).read_text())
                    break
                except ValueError:
                    pass
            time.sleep(0.5)
        assert info is not None, (tmp_path / "lab.log").read_text()[-2000:]
        assert info["hostname"] == "127.0.0.1" and info["port"] == port and info["token"]
        base = f"http://127.0.0.1:{port}"
        assert _status(f"{base}/api/status?token={info['token']}") == 200
        assert _status(f"{base}/api/status") == 403
        assert _status(f"{base}/api/contents?token=wrong") == 403
        log.flush()
        printed = (tmp_path / "lab.log").read_text()
        assert f"127.0.0.1:{port}/lab/tree/00_start_here.ipynb?token={info['token']}" in printed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# -- report / sweep ----------------------------------------------------------------------------------------------


def test_report_params_lists_types_defaults_help(capsys):
    assert main(["report", "--params", str(TINY)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert lines["x"].split()[1:3] == ["int", "1"] and "the grid variable" in lines["x"]
    assert lines["scale"].split()[1:3] == ["float", "1.0"]
    assert "None = follow WORKBENCH_QUICK" in lines["quick"]
    assert "metrics_path" in lines


@pytest.mark.parametrize("args, needle", [
    (["-p", "nope", "1"], "unknown parameter 'nope'"),
    (["-p", "x", "2:4"], "parameter 'x': expected int, got str '2:4'"),
    (["-p", "plot", "maybe"], "parameter 'plot': expected bool, got str"),
])
def test_report_rejects_bad_parameters_with_exit_2_and_no_kernel(monkeypatch, tmp_path, capsys, args, needle):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    assert main(["report", str(TINY), "-o", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert not (tmp_path / "out").exists()


def test_param_file_and_missing_files(monkeypatch, tmp_path, capsys):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    f = tmp_path / "p.yaml"
    f.write_text("x: 1\nscale: fast\n")
    assert main(["report", str(TINY), "-f", str(f)]) == 2
    assert "parameter 'scale': expected float" in capsys.readouterr().err
    assert main(["report", "nowhere.ipynb"]) == 2
    assert "notebook not found" in capsys.readouterr().err
    assert main(["sweep", str(TINY), "--grid", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    g = tmp_path / "g.yaml"
    g.write_text("x: [1, two]\n")
    assert main(["sweep", str(TINY), "--grid", str(g), "-o", str(tmp_path / "s")]) == 2
    assert "expected int, got str 'two'" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_report_exits_1_and_keeps_the_partial_notebook(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["report", str(TINY), "-o", str(out), "--name", "t", "-p", "x", "3", "-p", "fail_on", "3",
               "-p", "plot", "false"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "failing on purpose" in err and "t.FAILED.ipynb" in err
    assert sorted(p.name for p in out.iterdir()) == ["t.FAILED.ipynb", "t.error.json"]
    import nbformat

    nb = nbformat.read(str(out / "t.FAILED.ipynb"), as_version=4)
    assert nb.metadata["workbench"]["status"] == "failed"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "error" and o.get("ename") == "ValueError" for o in outputs)
