"""run_report: a real compression report (HTML self-contained with plotly.js, provenance, identical metrics twice),
and bad parameters rejected before any kernel starts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

import workbench
from workbench.reports import ParameterError, ReportFailedError, run_report
from workbench.reports.html import has_embedded_plotlyjs, html_is_self_contained, notebook_to_html, remote_scripts
from workbench.reports.notebook import metrics_json
from workbench.reports.provenance import git_state

ROOT = Path(__file__).resolve().parents[1]
COMPRESSION = ROOT / "notebooks" / "reports" / "compression_report.ipynb"
TINY = Path(__file__).parent / "notebooks" / "tiny_report.ipynb"
PARAMS = {"model": "digits-mlp", "formats": ["2:4", "int8"], "output_error": False, "quick": True, "seed": 3}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    first = run_report(COMPRESSION, PARAMS, output_dir=out / "a", name="compression")
    second = run_report(COMPRESSION, PARAMS, output_dir=out / "b", name="compression")
    return first, second


@pytest.mark.slow
def test_report_writes_complete_outputs(two_runs):
    result, _ = two_runs
    assert result.status == "complete"
    out = result.output_dir
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compression.html", "compression.ipynb", "compression.metrics.json",
                     "compression.provenance.json"]  # no temporary or partial files left
    prov = json.loads(result.provenance.read_text())
    assert prov["status"] == "complete" and prov["name"] == "compression"
    assert prov["parameters"]["formats"] == ["2:4", "int8"] and prov["seed"] == 3
    assert prov["parameters"]["metrics_path"] == str(result.metrics_file)
    assert prov["packages"]["workbench"] == workbench.__version__ and prov["packages"]["torch"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"]) and isinstance(prov["git_dirty"], bool)
    # the project's commit at run time: HEAD then, so HEAD now or an ancestor of it (others may commit meanwhile)
    assert subprocess.run(["git", "merge-base", "--is-ancestor", prov["git_commit"], git_state()["commit"]],
                          cwd=ROOT, capture_output=True).returncode == 0
    assert prov["duration_s"] > 0 and prov["started_at"] <= prov["finished_at"]
    nb = nbformat.read(str(result.notebook), as_version=4)
    assert nb.metadata["workbench"]["parameters"] == prov["parameters"]  # provenance in the notebook too
    assert nb.metadata["papermill"]["parameters"]["formats"] == ["2:4", "int8"]
    assert "widgets" not in nb.metadata  # widget state not stored


@pytest.mark.slow
def test_report_html_is_self_contained_with_plotly(two_runs):
    result, _ = two_runs
    html = result.html.read_text(encoding="utf-8")
    assert has_embedded_plotlyjs(html)
    assert remote_scripts(html) == []
    assert html_is_self_contained(html)
    assert html.count("Plotly.newPlot") >= 4  # trade-off, layer error, mask, rounding
    assert "format_tradeoff(handle, formats)" not in html  # code hidden
    assert "Accuracy against size" in html  # markdown kept


@pytest.mark.slow
def test_same_parameters_give_identical_metrics(two_runs):
    first, second = two_runs
    a, b = first.metrics_file.read_bytes(), second.metrics_file.read_bytes()
    assert a == b
    metrics = json.loads(a)
    assert set(metrics["formats"]) == {"dense", "2:4", "int8"}
    assert metrics["formats"]["dense"]["compression"] == 1.0
    assert metrics["formats"]["int8"]["compression"] > 3.5  # 32 -> 8 bits (+ scales and biases)
    assert a.decode() == metrics_json(metrics)  # canonical form


def test_html_check_catches_remote_scripts():
    assert remote_scripts('<script src="https://cdn.plot.ly/plotly.min.js"></script>')
    assert remote_scripts("<script src='//cdnjs.cloudflare.com/x.js'></script>")
    assert remote_scripts('<script type="module">import("https://x/y.mjs")</script>')
    assert not remote_scripts("<script>var a = 'https://plotly.com';</script>")
    assert not html_is_self_contained('<div class="plotly-graph-div"></div><script>Plotly.newPlot()</script>')


def test_exporter_drops_cdn_scripts_of_the_lab_template(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x^2$ *hi*")])
    html = notebook_to_html(nb)
    assert remote_scripts(html) == [] and "<em>hi</em>" in html


def test_bad_parameters_start_no_kernel(monkeypatch, tmp_path):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: calls.append((a, k)))
    with pytest.raises(ParameterError, match="unknown parameter 'formatz'"):
        run_report(COMPRESSION, {"formatz": ["2:4"]}, output_dir=tmp_path)
    with pytest.raises(ParameterError, match="expected list\\[str\\], got str"):
        run_report(COMPRESSION, {"formats": "2:4"}, output_dir=tmp_path)
    with pytest.raises(ParameterError, match="expected int, got float"):
        run_report(TINY, {"x": 1.5}, output_dir=tmp_path)
    assert calls == []
    assert list(tmp_path.iterdir()) == []  # nothing written either


def test_valid_parameters_reach_papermill_as_values(monkeypatch, tmp_path):
    """The runner passes checked Python values (papermill writes them as literals) and fills in metrics_path."""
    import papermill

    seen = {}

    def fake_execute(input_path, output_path, parameters=None, **kwargs):
        seen.update(parameters=parameters, kwargs=kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    with pytest.raises(ReportFailedError, match="RuntimeError: stop here"):
        run_report(TINY, {"x": 2, "scale": 3, "label": "a'); import os; ('"}, output_dir=tmp_path)
    assert seen["parameters"]["x"] == 2 and seen["parameters"]["scale"] == 3.0
    assert seen["parameters"]["label"] == "a'); import os; ('"
    assert seen["parameters"]["metrics_path"] == str((tmp_path / "tiny_report.metrics.json").resolve())
    assert seen["kwargs"]["kernel_name"] == "python3" and seen["kwargs"]["store_widget_state"] is False
    from papermill.translators import PythonTranslator

    code = PythonTranslator.codify(seen["parameters"])
    assert "label = \"a'); import os; ('\"" in code  # a string literal, not code
    # the failure was recorded, not left looking complete
    assert (tmp_path / "tiny_report.error.json").is_file()
    assert not (tmp_path / "tiny_report.html").exists() and not (tmp_path / "tiny_report.provenance.json").exists()


@pytest.mark.slow
@pytest.mark.browser
def test_report_html_draws_its_figures_offline_in_a_browser(two_runs):
    """Open the report in headless Chromium with every network request blocked: each plotly figure is drawn."""
    import shutil

    import playwright.sync_api as playwright_api  # the test extra has playwright; the browser is a system package

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH: this check needs a system Chromium for playwright to drive")
    result, _ = two_runs
    requested = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def block(route):
                requested.append(route.request.url)
                route.abort()

            page.route("http*://**", block)
            page.goto(result.html.as_uri())
            page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 4",
                                   timeout=30_000)
            n_divs = page.evaluate("document.querySelectorAll('.plotly-graph-div').length")
            n_drawn = page.evaluate(
                "[...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg')).length")
            has_plotly = page.evaluate("typeof window.Plotly === 'object' && typeof Plotly.newPlot === 'function'")
        finally:
            browser.close()
    assert n_divs >= 4 and n_drawn == n_divs and has_plotly
    assert requested == []  # nothing was fetched from the network


@pytest.mark.slow
def test_any_notebook_gets_offline_plotly_without_changes(tmp_path):
    """A notebook that never sets a renderer: the runner's first cell makes its figure embed plotly.js."""
    params = nbformat.v4.new_code_cell("n = 3  # bar height")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, 2, n])).show()")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, str(path))
    result = run_report(path, {"n": 7}, output_dir=tmp_path / "out")
    html = result.html.read_text(encoding="utf-8")
    assert has_embedded_plotlyjs(html) and html_is_self_contained(html) and html.count("Plotly.newPlot") == 1
    executed = nbformat.read(str(result.notebook), as_version=4)
    assert executed.cells[0].metadata["tags"] == ["workbench-report-setup"]
    assert executed.metadata["papermill"]["input_path"] == str(path.resolve())
    assert executed.metadata["papermill"]["parameters"] == {"n": 7}
