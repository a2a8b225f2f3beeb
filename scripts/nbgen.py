"""Shared helpers of the notebook generators ``scripts/make_notebook_*.py``.

Each generator describes its notebook(s) as a list of cells and writes them with nbformat, committed without
outputs. This module holds what they all need, once:

- ``md``, ``code``: a markdown / code cell from a (triple-quoted) string, leading and trailing newlines stripped;
- ``params``: a code cell tagged ``parameters`` (papermill / ``workbench report`` inject parameters after it);
- ``notebook``: the notebook with the lab's kernelspec and language metadata, optionally a title and stable
  cell ids (``id_prefix``: ids ``<prefix>-00``, ``<prefix>-01``, ..., so regenerating gives the same file;
  without it nbformat draws random ids);
- ``write``: validate and write a notebook (creating its folder).

The generators run as ``python scripts/make_notebook_X.py``; they put this folder on ``sys.path`` themselves
before ``from nbgen import ...``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(s: str) -> nbformat.NotebookNode:
    """A markdown cell; leading and trailing newlines of ``s`` are dropped."""
    return new_markdown_cell(s.strip("\n"))


def code(s: str) -> nbformat.NotebookNode:
    """A code cell; leading and trailing newlines of ``s`` are dropped."""
    return new_code_cell(s.strip("\n"))


def params(s: str) -> nbformat.NotebookNode:
    """The parameters cell: a code cell tagged ``parameters``."""
    cell = new_code_cell(s.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


def notebook(cells: list, *, title: str | None = None, id_prefix: str | None = None) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with the kernelspec and language metadata (and ``title`` if given).

    ``id_prefix`` gives the cells stable ids ``f"{id_prefix}-{i:02d}"``; without it they keep nbformat's random ids.
    """
    nb = new_notebook(cells=cells)
    if id_prefix is not None:
        for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same file
            cell.id = f"{id_prefix}-{i:02d}"
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    if title is not None:
        nb.metadata["title"] = title
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    """Validate ``nb`` (raising if it is not a valid notebook) and write it to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path
