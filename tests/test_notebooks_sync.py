"""Notebooks as diffable source: every committed notebook is a jupytext percent-format ``.py`` paired with its
``.ipynb``; the pair holds the same cells (type, source, tags), and the committed ``.ipynb`` carries no outputs.

Regenerate a notebook after editing its source with ``jupytext --sync notebooks/NN_name.py`` (keeps cell ids).
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("notebooks/**/*.ipynb"), *ROOT.glob("tests/notebooks/*.ipynb")])
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What the pair must agree on: each cell's type, source (trailing blank lines ignored) and tags."""
    return [(c.cell_type, c.source.rstrip("\n"), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_notebooks_found():
    names = {p.name for p in NOTEBOOKS}
    assert "00_start_here.ipynb" in names and "compression_report.ipynb" in names and len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_pair_holds_the_same_cells(path: Path):
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{path.name} has no jupytext source {twin.name} (jupytext --set-formats ipynb,py:percent)"
    ipynb = jupytext.read(path)
    source = jupytext.read(twin)
    assert source.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", twin.name
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", path.name
    want, got = _cells(source), _cells(ipynb)
    for i, (a, b) in enumerate(zip(want, got)):
        assert a == b, f"{path.name}: cell {i} differs from {twin.name}; run `jupytext --sync {twin.name}`"
    assert len(want) == len(got), f"{path.name}: {len(got)} cells, {twin.name}: {len(want)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_has_no_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts (clear them before committing)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell(path: Path):
    """A notebook (and report) has exactly one code cell tagged ``parameters``, which declares ``quick``."""
    nb = jupytext.read(path.with_suffix(".py"))
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", path.name
    assert any(line.split("=")[0].split(":")[0].strip() == "quick" for line in tagged[0].source.splitlines()), path.name


def test_sources_are_not_collected_as_tests(pytestconfig):
    """The root conftest keeps pytest from importing the notebooks' ``.py`` sources as test modules."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from fnmatch import fnmatch

    for p in NOTEBOOKS:
        rel = str(p.with_suffix(".py").relative_to(ROOT))
        assert any(fnmatch(rel, g) for g in mod.collect_ignore_glob), rel
