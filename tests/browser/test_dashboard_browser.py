"""The dashboard in a real browser: JupyterLab + headless Chromium run notebooks/00_start_here.ipynb, click a
format switch and see the printed and plotted numbers change.

Screenshot: test-artifacts/dashboard.png (and the server log next to it). Run with
``pytest tests/browser -m browser -p no:nbval``; it skips when chromium or playwright is missing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

READY_JS = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.connectionStatus === 'connected' && w.content
            && w.content.widgets && w.content.widgets.length > 0);
}"""

TEXTS_JS = """() => Array.from(document.querySelectorAll('.wb-dashboard .js-plotly-plot .bartext'))
  .map(e => e.textContent)"""


def _wait_until(fn, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def test_dashboard_switch_changes_numbers_in_the_browser(lab_server, page):
    base, token, _root = lab_server
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    try:
        page.goto(f"{base}/lab/tree/00_start_here.ipynb?token={token}", wait_until="domcontentloaded",
                  timeout=60_000)
        page.wait_for_function(READY_JS, timeout=90_000, polling=500)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

        accuracy = page.locator(".wb-readouts .wb-accuracy").first
        accuracy.wait_for(state="visible", timeout=90_000)
        # the last cell prints the report parameters: the whole notebook ran (its asserts included)
        page.get_by_text(re.compile(r"'formats': \['dense'\]")).first.wait_for(timeout=90_000)
        assert page.get_by_text("dense again:").count() >= 1

        plots = page.locator(".wb-dashboard .js-plotly-plot")
        _wait_until(lambda: plots.count() >= 2, 30, "two plotly figures in the dashboard")
        before_acc = accuracy.inner_text()
        before_bars = _wait_until(lambda: page.evaluate(TEXTS_JS), 30, "bar labels in the plots")
        assert float(before_acc) > 0.9, before_acc  # dense digits-cnn

        page.locator(".wb-switch").get_by_role("button", name="binary", exact=True).click()
        after_acc = _wait_until(lambda: (t := accuracy.inner_text()) != before_acc and t, 60,
                                "the accuracy readout to change")
        # the per-layer error plot gets a labelled bar per binarized layer; the readout plot's numbers change
        after_bars = _wait_until(
            lambda: (b := page.evaluate(TEXTS_JS)) != before_bars and sum("binary" in t and "dB" in t for t in b) >= 4
            and b, 60, "the plotted numbers to change")
        assert float(after_acc) < float(before_acc) - 0.3, (before_acc, after_acc)  # binary weights lose a lot
        assert after_acc in after_bars and before_acc in after_bars, after_bars  # plotted = printed
        _wait_until(lambda: "ready" in page.locator(".wb-status").first.inner_text(), 30, "status ready")

        content = page.content()
        assert "Error displaying widget" not in content
        assert page.locator(".wb-error").count() == 0
    finally:
        try:
            dash = page.locator(".wb-dashboard").first
            if dash.count():
                dash.scroll_into_view_if_needed(timeout=5_000)
            page.screenshot(path=str(shot), full_page=False, timeout=15_000)
        except Exception as e:  # the screenshot is an artifact, not the verdict
            print(f"screenshot failed: {e}")
