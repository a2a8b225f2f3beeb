"""What ``workbench lab`` serves, and the rules its server keeps whatever the user's Jupyter configuration says.

**A working copy of the notebooks.** JupyterLab saves outputs into the notebooks it opens (autosave), so serving
the repository's ``notebooks/`` would modify tracked files and every report afterwards would record
``git_dirty: true``. The lab serves a per-user working copy instead: :func:`notebooks_home` (``$WORKBENCH_NOTEBOOKS_DIR``,
else ``$XDG_DATA_HOME/workbench/notebooks``, else ``~/.local/share/workbench/notebooks``), filled by
:func:`sync_working_copy`: a file missing from the copy is copied; a file the user has not changed since it was
copied follows the repository's newer version; a file the user changed is never overwritten (the command says
which ones differ from the repository, so a user can delete one to get the new version).

**Authentication always on.** :class:`AlwaysAuthIdentityProvider` (selected on the command line, which outranks
every config file) never lets the server's token be empty: a user config with ``token = ''`` gets a fresh random
token instead, printed with the URL as usual. At start it refuses to run (exit 1, one message) when the
configuration would still leave the server open: XSRF checks off, cross-origin requests allowed, or listening
beyond 127.0.0.1. The command line also sets ``disable_check_xsrf=False`` and empty ``allow_origin`` /
``allow_origin_pat``, so the usual insecure settings are overridden rather than refused.

**Quiet start.** JupyterLab's news and update check are off (``news_url=None``, ``NeverCheckForUpdate``), and the
notification settings default to ``fetchNews: "false"`` through an ``overrides.json`` in an app-settings folder of
the workbench's own (:func:`lab_settings_dir`, which carries over the installation's own overrides and page config),
so no "Would you like to get notified about official Jupyter news?" toast covers the dashboard. Settings the user
saves still win: overrides only change defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import OutputError

#: File in the working copy recording the SHA-256 of each file as it was copied from the repository.
MANIFEST = ".workbench-copy.json"

#: Settings ``workbench lab`` gives JupyterLab as defaults (users' own settings still win).
LAB_SETTING_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def data_home() -> Path:
    """The workbench's per-user data folder: ``$XDG_DATA_HOME/workbench`` or ``~/.local/share/workbench``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "workbench"


def notebooks_home() -> Path:
    """Where ``workbench lab`` keeps the user's working copy of the notebooks (see the module docstring)."""
    env = os.environ.get("WORKBENCH_NOTEBOOKS_DIR")
    return Path(env).expanduser() if env else data_home() / "notebooks"


def lab_settings_dir() -> Path:
    """JupyterLab app-settings folder of ``workbench lab`` (holds its ``overrides.json``)."""
    env = os.environ.get("WORKBENCH_NOTEBOOKS_DIR")
    return (Path(env).expanduser().parent / ".workbench-lab-settings") if env else data_home() / "lab-settings"


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _skipped(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts) or rel.suffix == ".pyc"


@dataclass
class WorkingCopy:
    """What :func:`sync_working_copy` did: files copied, files brought up to date, user-edited files kept."""

    root: Path
    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def sync_working_copy(source: str | Path, dest: str | Path) -> WorkingCopy:
    """Bring the working copy ``dest`` of the folder ``source`` up to date without touching the user's edits.

    A file missing in ``dest`` is copied; a file whose content is still what was copied (its SHA-256 is in the
    manifest) follows a newer ``source``; any other file is the user's and is kept (listed in ``.kept`` when the
    repository's version differs). Hidden files and folders (``.ipynb_checkpoints``) are not copied. Each file is
    written atomically. Raises :class:`~workbench.errors.OutputError` when ``dest`` cannot be created or written.
    """
    from workbench.reports.files import atomic_write, prepare_output_dir

    source = Path(source)
    dest = prepare_output_dir(dest, option="the notebooks' working copy")
    manifest_path = dest / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    result = WorkingCopy(root=dest)
    try:
        for src in sorted(source.rglob("*")):
            rel = src.relative_to(source)
            if _skipped(rel) or not src.is_file():
                continue
            key = rel.as_posix()
            dst = dest / rel
            src_sha = _sha256(src)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(dst, src.read_bytes())
                manifest[key] = src_sha
                result.copied.append(key)
                continue
            if manifest.get(key) == src_sha:
                continue  # the repository has not changed it since it was copied
            dst_sha = _sha256(dst)
            if dst_sha == src_sha:
                manifest[key] = src_sha
            elif manifest.get(key) == dst_sha:  # untouched by the user: follow the repository
                atomic_write(dst, src.read_bytes())
                manifest[key] = src_sha
                result.updated.append(key)
            else:
                result.kept.append(key)
        atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot update the notebooks' working copy in {dest}: {exc}") from None
    return result


def write_lab_settings(directory: str | Path | None = None) -> Path:
    """Write the app-settings folder ``workbench lab`` points JupyterLab at; returns it.

    ``overrides.json`` holds :data:`LAB_SETTING_OVERRIDES` on top of the installation's own overrides; the
    installation's ``page_config.json`` (disabled extensions) is carried over.
    """
    from workbench.reports.files import atomic_write

    target = Path(directory) if directory is not None else lab_settings_dir()
    target.mkdir(parents=True, exist_ok=True)
    overrides: dict = {}
    try:
        from jupyterlab.commands import get_app_dir

        installed = Path(get_app_dir()) / "settings"
    except Exception:  # noqa: BLE001 - no JupyterLab: nothing to carry over
        installed = None
    if installed is not None and installed.resolve() != target.resolve():
        try:
            overrides = json.loads((installed / "overrides.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            overrides = {}
        if (installed / "page_config.json").is_file():
            atomic_write(target / "page_config.json", (installed / "page_config.json").read_bytes())
    for plugin, values in LAB_SETTING_OVERRIDES.items():
        overrides.setdefault(plugin, {}).update(values)
    atomic_write(target / "overrides.json", json.dumps(overrides, indent=2, sort_keys=True) + "\n")
    return target


# --------------------------------------------------------------------------------------------------------------
# the server's rules (imported by the Jupyter server process, never by ``import workbench``)


def _identity_base() -> type:
    from jupyter_server.auth.identity import PasswordIdentityProvider

    return PasswordIdentityProvider


def __getattr__(name: str):  # PEP 562: the Jupyter class is built only inside the server process
    if name == "AlwaysAuthIdentityProvider":
        cls = _make_identity_provider()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 'workbench.lab' has no attribute {name!r}")


def security_problems(app) -> list[str]:
    """What in a Jupyter server's effective configuration leaves it open: one line per problem, empty when safe."""
    problems = []
    if not app.identity_provider.token:
        problems.append("the token is empty")
    settings = getattr(app, "tornado_settings", {}) or {}
    if app.disable_check_xsrf or settings.get("disable_check_xsrf") or settings.get("xsrf_cookies") is False:
        problems.append("XSRF checks are disabled (disable_check_xsrf / tornado_settings)")
    if app.allow_origin or app.allow_origin_pat or settings.get("allow_origin") or settings.get("allow_origin_pat"):
        problems.append(f"cross-origin requests are allowed (allow_origin={app.allow_origin!r}, "
                        f"allow_origin_pat={app.allow_origin_pat!r})")
    if app.ip not in _LOOPBACK:
        problems.append(f"it would listen on {app.ip!r}, not 127.0.0.1")
    return problems


def _make_identity_provider() -> type:
    from traitlets import default, validate

    base = _identity_base()

    class AlwaysAuthIdentityProvider(base):  # type: ignore[misc, valid-type]
        """Jupyter's password/token identity provider with a token that is never empty, and a start-up check."""

        def _fresh_token(self) -> str:
            self.token_generated = True  # Jupyter then prints the URL with this token
            return secrets.token_hex(24)

        @default("token")
        def _token_default(self):  # Jupyter's default is empty when a password is set: a token all the same
            return super()._token_default() or self._fresh_token()

        @validate("token")
        def _never_empty(self, proposal):  # a config file's token = ''
            return proposal["value"] or self._fresh_token()

        def validate_security(self, app, ssl_options=None):
            super().validate_security(app, ssl_options)
            problems = security_problems(app)
            if problems:
                app.log.critical("workbench lab refuses to start: %s. Remove these settings from your Jupyter "
                                 "configuration (jupyter --paths lists where it is read from).", "; ".join(problems))
                raise SystemExit(1)

    AlwaysAuthIdentityProvider.__module__ = __name__
    AlwaysAuthIdentityProvider.__qualname__ = "AlwaysAuthIdentityProvider"
    return AlwaysAuthIdentityProvider


__all__ = ["MANIFEST", "LAB_SETTING_OVERRIDES", "data_home", "notebooks_home", "lab_settings_dir", "WorkingCopy",
           "sync_working_copy", "write_lab_settings", "security_problems", "AlwaysAuthIdentityProvider"]
