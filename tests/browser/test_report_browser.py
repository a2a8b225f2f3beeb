"""The compression report as a colleague opens it: rendered by headless Chromium from the HTML `workbench report`
writes (quick mode, digits-cnn, the default formats), it shows no warning or stderr box, no path of the machine, no
progress-bar remnant, no object repr, integer counts as integers, one label per point in accuracy vs size, a mask
heatmap whose axes fit its data, and every plot drawn.

``WORKBENCH_SCREENSHOTS=1`` also saves the page to ``docs/img/report.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "notebooks" / "reports" / "compression_report.ipynb"


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    env = {**os.environ, "WORKBENCH_QUICK": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "workbench.cli", "report", str(REPORT), "-p", "model", "digits-cnn", "-o", str(out)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    html = out / "compression_report.html"
    assert html.is_file()
    return html


def test_report_page_is_clean(report_html, chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report_html.as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_function(
                "() => { const d = [...document.querySelectorAll('.plotly-graph-div')];"
                " return d.length > 0 && d.every(g => g.querySelector('svg.main-svg')); }", timeout=60_000)
            plots = page.evaluate(
                """() => [...document.querySelectorAll('.plotly-graph-div')].map(g => ({
                    title: (g.layout && g.layout.title && (g.layout.title.text || g.layout.title)) || '',
                    marks: g.querySelectorAll('svg .trace, svg .hm, svg image, svg .point').length,
                    xrange: g._fullLayout && g._fullLayout.xaxis ? g._fullLayout.xaxis.range : null,
                    xs: (g.data || []).flatMap(t => Array.from(t.x || [])).filter(v => typeof v === 'number'),
                    labels: (g.data || []).flatMap(t => Array.from(t.text || [])).filter(v => typeof v === 'string' && v),
                    annotations: (g._fullLayout && g._fullLayout.annotations || []).map(a => a.text),
                }))""")
            text = page.inner_text("body")
            stderr_boxes = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count()
            counts = page.evaluate(
                """() => { for (const t of document.querySelectorAll('table.dataframe')) {
                    const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
                    const i = head.indexOf('layers_applied');
                    if (i >= 0) return [...t.querySelectorAll('tbody tr')].map(r => r.children[i].innerText.trim());
                  } return null; }""")
            if os.environ.get("WORKBENCH_SCREENSHOTS"):
                page.screenshot(path=str(ROOT / "docs" / "img" / "report.png"), full_page=True, timeout=30_000)
        finally:
            browser.close()

    assert stderr_boxes == 0
    for bad in ("/root", "/tmp", "/work", "0%|", "ModelHandle(", "Warning:"):
        assert bad not in text, bad
    assert "PaddedWeightWarning" in text  # the padded fc2 under 4:8-T, as a note in the Notes table
    assert len(plots) >= 4 and all(p["marks"] > 0 for p in plots), plots
    assert counts and all(c.isdigit() for c in counts), counts
    tradeoff = next(p for p in plots if "vs size" in str(p["title"]))
    assert len(tradeoff["labels"]) == len(set(tradeoff["labels"])), tradeoff["labels"]  # no label drawn twice
    assert "fp8_e4m3 · int8" in tradeoff["labels"]  # same size and accuracy here: one shared label
    assert sum("dense" in str(a) for a in tradeoff["annotations"]) + tradeoff["labels"].count("dense") == 1
    mask = next(p for p in plots if "mask of" in str(p["title"]))
    lo, hi = mask["xrange"]
    assert min(mask["xs"]) - 0.5 <= lo + 1e-6 and hi <= max(mask["xs"]) + 0.5 + 1e-6, (mask["xrange"], min(mask["xs"]), max(mask["xs"]))
