"""``workbench lab``: a working copy of the notebooks (the repository stays clean, reports record a clean tree), token
auth and XSRF forced on over an insecure user Jupyter config, no news pop-up."""

from __future__ import annotations

import glob
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from workbench import cli
from workbench.cli import LAB_QUIET_ARGS, LAB_SECURITY_ARGS, lab_argv, main, prepare_lab
from workbench.lab import MANIFEST, security_problems, sync_working_copy, write_lab_settings

ROOT = Path(__file__).resolve().parents[1]


# -- the working copy ---------------------------------------------------------------------------------------------


def test_working_copy_copies_missing_files_follows_untouched_ones_and_keeps_edits(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "copy"
    (src / "sub").mkdir(parents=True)
    (src / ".ipynb_checkpoints").mkdir()
    (src / "a.ipynb").write_text("a1")
    (src / "b.ipynb").write_text("b1")
    (src / "sub" / "c.py").write_text("c1")
    (src / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("x")
    first = sync_working_copy(src, dst)
    assert sorted(first.copied) == ["a.ipynb", "b.ipynb", "sub/c.py"] and not first.kept
    assert not (dst / ".ipynb_checkpoints").exists() and (dst / MANIFEST).is_file()

    (dst / "a.ipynb").write_text("a1 + the user's outputs")  # the user ran and saved a
    (src / "a.ipynb").write_text("a2")  # the repository changed a and b
    (src / "b.ipynb").write_text("b2")
    (dst / "sub" / "c.py").unlink()  # the user deleted c to get it fresh
    second = sync_working_copy(src, dst)
    assert second.kept == ["a.ipynb"] and (dst / "a.ipynb").read_text() == "a1 + the user's outputs"
    assert second.updated == ["b.ipynb"] and (dst / "b.ipynb").read_text() == "b2"
    assert second.copied == ["sub/c.py"] and (dst / "sub" / "c.py").read_text() == "c1"
    third = sync_working_copy(src, dst)
    assert third.copied == third.updated == [] and third.kept == ["a.ipynb"]
    assert (src / "a.ipynb").read_text() == "a2"  # the source is never written


def _porcelain() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_using_the_lab_leaves_the_repository_and_the_provenance_clean(monkeypatch, tmp_path, capsys):
    import nbformat
    from workbench.reports.provenance import git_state

    before, state_before = _porcelain(), git_state()
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS_DIR", str(tmp_path / "wb-notebooks"))
    root, nb = prepare_lab(ROOT / "notebooks" / "00_start_here.ipynb")
    assert root == (tmp_path / "wb-notebooks").resolve() and nb == root / "00_start_here.ipynb"
    assert str(root) in capsys.readouterr().err  # the command says where the notebooks are
    # JupyterLab "saves" the notebook with outputs, in the working copy
    doc = nbformat.read(str(nb), as_version=4)
    doc.cells.append(nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
        "execute_result", {"text/plain": "2"}, execution_count=1)]))
    nbformat.write(doc, str(nb))
    argv = lab_argv(root=root, notebook=nb)
    assert f"--ServerApp.root_dir={root}" in argv  # the server serves the copy, not notebooks/
    assert _porcelain() == before
    assert git_state() == state_before  # a report now records the same git_dirty as before the lab


def test_lab_command_serves_the_working_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_NOTEBOOKS_DIR", str(tmp_path / "wb"))
    seen = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: seen.append(argv))
    assert main(["lab", "--no-browser", "--notebook", str(ROOT / "notebooks" / "00_start_here.ipynb")]) == 0
    argv = seen[0]
    assert f"--ServerApp.root_dir={(tmp_path / 'wb').resolve()}" in argv
    assert "--LabApp.default_url=/lab/tree/00_start_here.ipynb" in argv
    for arg in (*LAB_SECURITY_ARGS, *LAB_QUIET_ARGS):
        assert arg in argv
    settings = Path(next(a for a in argv if a.startswith("--LabApp.app_settings_dir=")).split("=", 1)[1])
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert main(["lab", "--port", "70000"]) == 2


# -- the server's rules -------------------------------------------------------------------------------------------


def test_identity_provider_never_has_an_empty_token():
    from traitlets.config import Config

    from workbench.lab import AlwaysAuthIdentityProvider

    config = Config()
    config.IdentityProvider.token = ""
    provider = AlwaysAuthIdentityProvider(config=config)
    assert len(provider.token) >= 32 and provider.token_generated
    config.IdentityProvider.token = "mine"
    assert AlwaysAuthIdentityProvider(config=config).token == "mine"


def test_security_problems_name_every_opening():
    ok = types.SimpleNamespace(identity_provider=types.SimpleNamespace(token="t"), tornado_settings={},
                               disable_check_xsrf=False, allow_origin="", allow_origin_pat="", ip="127.0.0.1")
    assert security_problems(ok) == []
    bad = types.SimpleNamespace(identity_provider=types.SimpleNamespace(token=""),
                                tornado_settings={"disable_check_xsrf": True}, disable_check_xsrf=False,
                                allow_origin="*", allow_origin_pat="", ip="0.0.0.0")
    problems = " | ".join(security_problems(bad))
    for needle in ("token is empty", "XSRF", "cross-origin", "'0.0.0.0'"):
        assert needle in problems


def test_lab_settings_carry_the_installations_overrides(monkeypatch, tmp_path):
    import jupyterlab.commands

    app = tmp_path / "app"
    (app / "settings").mkdir(parents=True)
    (app / "settings" / "overrides.json").write_text(json.dumps({"@jupyterlab/x:y": {"a": 1}}))
    (app / "settings" / "page_config.json").write_text("{}")
    monkeypatch.setattr(jupyterlab.commands, "get_app_dir", lambda: str(app))
    out = write_lab_settings(tmp_path / "mine")
    overrides = json.loads((out / "overrides.json").read_text())
    assert overrides["@jupyterlab/x:y"] == {"a": 1}
    assert overrides["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false",
                                                                        "checkForUpdates": False}
    assert (out / "page_config.json").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(opener, url, *, method="GET", headers=None, data=None) -> int:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_lab_forces_token_and_xsrf_over_an_insecure_user_config(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "jupyter_server_config.py").write_text(
        "c.ServerApp.token = ''\nc.IdentityProvider.token = ''\nc.ServerApp.allow_origin = '*'\n"
        "c.ServerApp.disable_check_xsrf = True\nc.ServerApp.password = ''\n")
    (cfg / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"allow_origin": "*", "disable_check_xsrf": True}, "IdentityProvider": {"token": ""}}))
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(cfg), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "us"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"), "WORKBENCH_NOTEBOOKS_DIR": str(tmp_path / "nb"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "lab", "--port", str(port), "--no-browser"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        info = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and info is None:
            for f in glob.glob(str(tmp_path / "rt" / "jpserver-*.json")):
                try:
                    info = json.loads(Path(f).read_text())
                except ValueError:
                    pass
            time.sleep(0.3)
        assert info is not None, (tmp_path / "lab.log").read_text()[-3000:]
        token, base = info["token"], f"http://127.0.0.1:{port}"
        assert info["hostname"] == "127.0.0.1" and len(token) >= 32
        plain = urllib.request.build_opener()
        assert _request(plain, f"{base}/api/status") == 403  # no token: refused
        assert _request(plain, f"{base}/api/contents") == 403
        assert _request(plain, f"{base}/api/status?token={token}") == 200
        # a browser session: the token logs in once, then cookies authenticate
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        assert _request(browser, f"{base}/lab?token={token}") == 200
        assert _request(browser, f"{base}/api/contents") == 200  # the cookie works
        body = json.dumps({"type": "notebook"}).encode()
        # XSRF on: a cookie-authenticated POST without the _xsrf token is refused (would create a notebook)
        assert _request(browser, f"{base}/api/contents", method="POST", data=body,
                        headers={"Content-Type": "application/json"}) == 403
        # no cross-origin access with the session's cookies
        assert _request(browser, f"{base}/api/contents", headers={"Origin": "http://evil.example"}) in (403, 404)
        assert list((tmp_path / "nb").glob("Untitled*")) == []
        settings = json.loads(urllib.request.urlopen(
            f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}", timeout=10).read())
        # the default is "false" (no news consent pop-up); a setting the user saves would still win
        assert settings["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert settings["schema"]["properties"]["checkForUpdates"]["default"] is False
        log.flush()
        assert f"127.0.0.1:{port}/lab/tree/00_start_here.ipynb?token={token}" in (tmp_path / "lab.log").read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
