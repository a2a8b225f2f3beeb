"""Fixtures of the real-browser tests: a private JupyterLab server and a headless Chromium page.

The server listens on 127.0.0.1 on a free port with a random token, serves a temporary copy of the notebooks,
and keeps its config, data, runtime, settings and workspaces in a temporary directory (nothing of the user's
Jupyter setup is read or written); the command line is :func:`workbench.cli.lab_argv`'s, the one ``workbench lab``
runs (so its settings, e.g. no news pop-up, are the ones tested). Screenshots are saved with ``--screenshots DIR``
or ``WORKBENCH_SCREENSHOTS=DIR``. Chromium is Debian's (``apt-get install chromium``), driven through Python
Playwright with ``executable_path``; no browser is ever downloaded. Tests skip with a reason when either is
missing. Every wait is bounded and the server is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

# JupyterLab settings for a quiet, fully rendered notebook: no news/update popups, no virtual scrolling
# (windowing would leave widget outputs below the fold unrendered).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def pytest_addoption(parser):
    parser.addoption("--screenshots", default=None, metavar="DIR",
                     help="browser tests: save screenshots of the dashboard and its tabs into DIR "
                          "(or set WORKBENCH_SCREENSHOTS=DIR)")


@pytest.fixture(scope="session")
def screenshots(request) -> Path | None:
    """The folder to save screenshots into (``--screenshots DIR`` or ``WORKBENCH_SCREENSHOTS``), or None."""
    try:
        opt = request.config.getoption("--screenshots")
    except ValueError:  # the option is registered only when pytest starts in tests/browser
        opt = None
    folder = opt or os.environ.get("WORKBENCH_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (CI: apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed (pip install playwright)")
    return path


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, chromium_path):  # noqa: ARG001 - skip before starting a server
    """A JupyterLab server over a temporary copy of notebooks/; yields (base_url, token, root_dir)."""
    pytest.importorskip("jupyterlab")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.html"))
    settings = tmp / "settings"
    for rel, value in LAB_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    token = secrets.token_hex(16)
    port = _free_port()
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp / "ipython"), "WORKBENCH_QUICK": "1", "TQDM_DISABLE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
    })
    from workbench.cli import lab_argv

    # the command `workbench lab` runs (its flags, e.g. no news pop-up), on a private root, port and token
    cmd = lab_argv(port=port, no_browser=True, root=root, notebook=root / "00_start_here.ipynb",
                   python=sys.executable)
    cmd += [f"--IdentityProvider.token={token}", "--ServerApp.terminals_enabled=False",
            "--LabApp.expose_app_in_browser=True"]
    if not any("news" in a for a in cmd):  # until `workbench lab` turns the news off itself
        cmd += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in 60 s:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield base, token, root
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        server_log = tmp / "server.log"
        if server_log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(server_log, ARTIFACTS / "jupyter-server.log")


@pytest.fixture()
def page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1400})
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            messages: list[str] = []
            pg.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            pg.console_messages = messages  # type: ignore[attr-defined]
            yield pg
        finally:
            browser.close()
