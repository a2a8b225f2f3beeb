"""Ctrl-C on a process-pool sweep (``workbench sweep --workers 2``), as a terminal sends it (SIGINT to the whole
process group): no new report starts, the running ones finish (or, on a second Ctrl-C, are stopped at once), the
command exits 130 and no worker or kernel process outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sleepy_notebook(path: Path) -> Path:
    """A report notebook that marks its start in ``mark_dir`` and then sleeps ``sleep_s`` seconds."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('x = 1  # the grid variable\nsleep_s = 1.0  # seconds to sleep\n'
                                       'mark_dir = ""  # folder for the start marks')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell('import os, time\nif mark_dir:\n'
                                     '    open(os.path.join(mark_dir, f"started-{x}"), "w").close()\n'
                                     'time.sleep(sleep_s)\nprint("done", x)')
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def _alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie, which has exited, does not count)."""
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover - /proc fallback
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"
    except Exception:  # psutil.NoSuchProcess
        return False


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_a_process_pool_sweep_and_leaves_no_process(tmp_path, presses):
    nb = _sleepy_notebook(tmp_path / "sleepy.ipynb")
    marks = tmp_path / "marks"
    marks.mkdir()
    grid = tmp_path / "grid.yaml"
    grid.write_text("x: [1, 2, 3, 4, 5, 6]\n")
    out = tmp_path / "out"
    sleep_s = 4.0 if presses == 1 else 60.0  # a second Ctrl-C must not wait for the running reports
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "sweep", str(nb), "--grid", str(grid), "--workers", "2",
         "-p", "sleep_s", str(sleep_s), "-p", "mark_dir", str(marks), "-o", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline and proc.poll() is None:
            seen.update(_descendants(proc.pid))
            time.sleep(0.1)
        assert len(list(marks.iterdir())) == 2, proc.communicate(timeout=30)
        seen.update(_descendants(proc.pid))  # the two workers, their kernels and anything else running now
        t_press = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        if presses == 2:
            time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
        elapsed = time.monotonic() - t_press
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "starting no new report" in stderr
    time.sleep(0.5)
    assert sorted(p.name for p in marks.iterdir()) == ["started-1", "started-2"]  # no kernel started after Ctrl-C
    left = [pid for pid in seen if _alive(pid)]
    assert left == [], f"processes outlived the sweep: {left}"
    summary = (out / "summary.csv").read_text()
    statuses = {json.loads(p.read_text())["name"]: json.loads(p.read_text())["status"]
                for p in out.glob("*.provenance.json")}
    if presses == 1:  # the two running reports finished
        assert sorted(statuses.values()) == ["complete", "complete"]
        assert summary.count("missing") == 4
    else:  # stopped at once, marked failed, nothing complete
        assert elapsed < 45 and statuses == {}
        assert len(list(out.glob("*.error.json"))) == 2
    assert not (out / ".sweep.stop").exists() and not list(out.glob(".*.lock"))
