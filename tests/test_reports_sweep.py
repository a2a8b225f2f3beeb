"""Sweeps: a grid of 4 with one failing run, resumed after the cause is fixed; the same sweep on a Dask cluster;
grid files; everything validated before any kernel starts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.reports import ParameterError, run_sweep
from workbench.reports.sweep import expand_grid, load_grid, run_name, split_grid

TINY = Path(__file__).parent / "notebooks" / "tiny_report.ipynb"
GRID = {"x": [1, 2, 3, 4]}


def _fixed(gate: Path) -> dict:
    # x == 3 fails until the gate file exists: the cause is fixed without changing any parameter (same run names)
    return {"fail_on": 3, "gate": str(gate), "plot": False}


def _check_first_pass(result, out: Path) -> None:
    assert sorted(r["status"] for r in result.runs) == ["complete", "complete", "complete", "failed"]
    failed = result.names("failed")
    assert len(failed) == 1 and failed[0].startswith("x=3-")
    assert not result.ok
    complete = sorted(p.name for p in out.glob("*.provenance.json"))
    assert len(complete) == 3 and not any(name.startswith("x=3-") for name in complete)
    assert len(list(out.glob("*.html"))) == 4 - 1 + 1  # 3 reports + index.html
    assert (out / f"{failed[0]}.FAILED.ipynb").is_file()
    error = json.loads((out / f"{failed[0]}.error.json").read_text())
    assert error["status"] == "failed" and error["error"]["ename"] == "ValueError"
    assert not (out / f"{failed[0]}.ipynb").exists() and not (out / f"{failed[0]}.html").exists()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["x"]) == [1, 2, 3, 4]
    assert list(summary["status"]) == ["complete", "complete", "failed", "complete"]
    ok = summary[summary["status"] == "complete"]
    assert list(ok["metrics.x"]) == [1, 2, 4] and ok["metrics.mean_y"].notna().all()
    assert summary.loc[summary["x"] == 3, "error"].str.contains("failing on purpose").all()
    parquet = pd.read_parquet(out / "summary.parquet")
    assert parquet["run"].tolist() == summary["run"].tolist()
    index = (out / "index.html").read_text()
    for name in result.summary["run"]:
        assert name in index
    assert "summary.csv" in index


@pytest.mark.slow
def test_sweep_of_four_with_one_failure_then_resume(tmp_path):
    out, gate = tmp_path / "sweep", tmp_path / "gate"
    first = run_sweep(TINY, GRID, fixed=_fixed(gate), output_dir=out, workers=2, progress=False)
    _check_first_pass(first, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.provenance.json")}

    gate.write_text("fixed")
    second = run_sweep(TINY, GRID, fixed=_fixed(gate), output_dir=out, workers=2, progress=False)
    statuses = {r["name"]: r["status"] for r in second.runs}
    assert sorted(statuses.values()) == ["complete", "skipped", "skipped", "skipped"]
    assert statuses[first.names("failed")[0]] == "complete"  # only the failed one ran again
    for name, mtime in mtimes.items():
        assert (out / name).stat().st_mtime_ns == mtime  # finished reports untouched
    assert second.ok and list(second.summary["status"]) == ["complete"] * 4
    assert not list(out.glob("*.FAILED.ipynb")) and not list(out.glob("*.error.json"))
    assert len(list(out.glob("*.provenance.json"))) == 4


@pytest.mark.slow
def test_sweep_on_a_dask_local_cluster(tmp_path):
    import distributed  # the test extra has dask[distributed]
    from jupyter_core.utils import ensure_event_loop

    # As after a report run in this thread: jupyter_core's loop is set in this context, which Dask copies into its
    # worker threads; two runs sharing it failed with "This event loop is already running".
    ensure_event_loop()
    out, gate = tmp_path / "sweep", tmp_path / "gate"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        result = run_sweep(TINY, GRID, fixed=_fixed(gate), output_dir=out, executor=client.get_executor(),
                           progress=False)
        _check_first_pass(result, out)


def test_grid_forms_and_names(tmp_path):
    assert split_grid({"x": [1, 2]}) == ({"x": [1, 2]}, {})
    assert split_grid({"grid": {"x": [1]}, "fixed": {"y": 2}}) == ({"x": [1]}, {"y": 2})
    with pytest.raises(ParameterError, match="non-empty list"):
        split_grid({"x": 3})
    with pytest.raises(ParameterError, match="both in the grid and fixed"):
        split_grid({"grid": {"x": [1]}, "fixed": {"x": 2}})
    f = tmp_path / "grid.yaml"
    f.write_text("grid:\n  formats: [[2:4], [2:4, int8]]\n  seed: [0, 1]\nfixed:\n  model: digits-cnn\n")
    grid, fixed = load_grid(f)
    assert grid == {"formats": [["2:4"], ["2:4", "int8"]], "seed": [0, 1]} and fixed == {"model": "digits-cnn"}
    combos = expand_grid(grid, fixed)
    assert len(combos) == 4 and combos[1] == {"model": "digits-cnn", "formats": ["2:4"], "seed": 1}
    names = [run_name(c, ["formats", "seed"]) for c in combos]
    assert len(set(names)) == 4
    assert names[0].startswith("formats=") and run_name(combos[0], ["formats", "seed"]) == names[0]  # stable
    assert run_name({**combos[0], "model": "digits-mlp"}, ["formats", "seed"]) != names[0]  # fixed params count


def test_sweep_validates_every_combination_before_running(monkeypatch, tmp_path):
    import workbench.reports.run as run_mod

    monkeypatch.setattr(run_mod, "run_report", lambda *a, **k: pytest.fail("a report was started"))
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(ParameterError, match="expected int, got str"):
        run_sweep(TINY, {"x": [1, 2, "three"]}, output_dir=tmp_path / "s", progress=False)
    with pytest.raises(ParameterError, match="unknown parameter 'y'"):
        run_sweep(TINY, {"x": [1]}, fixed={"y": 1}, output_dir=tmp_path / "s", progress=False)
    with pytest.raises(ParameterError, match="metrics_path"):
        run_sweep(TINY, {"metrics_path": ["a", "b"]}, output_dir=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
