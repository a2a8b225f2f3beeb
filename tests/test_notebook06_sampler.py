"""Notebook 06 (the dynamics report) takes the data sampler of its distance run as a parameter: declared with its
help (what ``workbench report --params`` lists), and a quick run with ``sampler="nw_sketch"`` trains with it (the
notebook asserts the sampler reached ``train``); an unknown sampler is refused, with the accepted names, before any
work."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workbench.reports import ReportFailedError, run_report
from workbench.reports.params import notebook_parameters, parameters_table

NB06 = Path(__file__).resolve().parents[1] / "notebooks" / "06_weight_distance_random_walk.ipynb"


def test_sampler_is_a_parameter_with_help():
    p = notebook_parameters(NB06)["sampler"]
    assert p.default == "uniform"
    for name in ("uniform", "static", "loss", "nw", "nw_sketch", "workbench.sampling"):
        assert name in p.help
    row = parameters_table(NB06).set_index("name").loc["sampler"]
    assert row["default"] == '"uniform"' and row["help"] == p.help


@pytest.mark.slow
def test_quick_run_with_nw_sketch_sampler(tmp_path):
    result = run_report(NB06, {"quick": True, "sampler": "nw_sketch"}, output_dir=tmp_path, name="nb06")
    assert result.status == "complete"
    nb = nbformat.read(str(result.notebook), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "distance_sampler" in c.source]
    assert code and all(not any(o.get("output_type") == "error" for o in c.outputs) for c in code)
    text = "".join(str(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "nw_sketch sampler" in text  # the distance figure's title names the sampler the run used


@pytest.mark.slow
def test_unknown_sampler_is_refused_before_any_work(tmp_path):
    with pytest.raises(ReportFailedError, match=r"failed in cell \d+: OptionError: .*'nw_sketch'; got 'greedy'") as err:
        run_report(NB06, {"quick": True, "sampler": "greedy"}, output_dir=tmp_path, name="nb06")
    nb = nbformat.read(str(err.value.args[0].split("kept as ")[-1]), as_version=4)
    assert not any("simulate_walk(" in c.source and c.get("outputs") for c in nb.cells)  # no walk, no training
