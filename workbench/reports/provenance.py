"""Provenance of a report: what produced it, so a reader can reproduce it.

Recorded for every run: the parameters it ran with, its seed, the versions of the packages that shape the numbers,
the git commit of the project (and whether the working tree had uncommitted changes), the notebook's SHA-256, start
and end times and the duration. :func:`write_json_atomic` writes files so that a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from workbench.models.zoo import sha256_file

#: Distributions whose versions go into every provenance record (missing ones are recorded as None).
TRACKED_PACKAGES = (
    "workbench", "torch", "numpy", "pandas", "scipy", "scikit-learn", "plotly", "papermill", "nbconvert",
    "nbformat", "ipykernel", "jupyter_client", "transformers",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` plus the Python version; None for a distribution that is not installed."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def project_root() -> Path:
    """The directory holding the ``workbench`` package (the repository root for an editable install)."""
    import workbench

    return Path(workbench.__file__).resolve().parent.parent


def git_state(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git work tree holding ``path`` (default: the project); Nones outside git."""
    cwd = Path(path) if path is not None else project_root()
    if cwd.is_file():
        cwd = cwd.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


# one file hash for checkpoints and notebooks
file_sha256 = sha256_file


def collect_provenance(notebook: str | Path, parameters: Mapping[str, Any], *, started_at: str,
                       finished_at: str, duration_s: float, status: str, name: str,
                       outputs: Mapping[str, str] | None = None, error: Mapping[str, Any] | None = None) -> dict:
    """One provenance record (a JSON-ready dict). ``seed`` is the ``seed`` parameter when the notebook has one."""
    git = git_state()
    return {
        "schema": "workbench.report.provenance/1",
        "name": name,
        "status": status,
        "notebook": str(Path(notebook).resolve()),
        "notebook_sha256": file_sha256(notebook),
        "parameters": dict(parameters),
        "seed": parameters.get("seed"),
        "packages": package_versions(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "platform": {"system": platform.system(), "machine": platform.machine(), "python": sys.version.split()[0],
                     "cpu_count": os.cpu_count()},
        "environment": {k: os.environ[k] for k in ("WORKBENCH_QUICK", "TQDM_DISABLE") if k in os.environ},
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(float(duration_s), 3),
        "outputs": dict(outputs or {}),
        "error": dict(error) if error else None,
    }


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically (:func:`workbench.reports.files.atomic_write`:
    a unique temporary name, then a rename; a symlink at ``path`` is replaced, never written through)."""
    from .files import atomic_write

    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


__all__ = [
    "TRACKED_PACKAGES",
    "package_versions",
    "project_root",
    "git_state",
    "file_sha256",
    "collect_provenance",
    "write_json_atomic",
]
