"""The import contract of docs/ARCHITECTURE.md, checked on the source with ``ast`` (every import, at module level or
inside a function, counts): which top-level part of ``workbench`` may import which, where ipywidgets, plotly and
torch may appear, and no import cycle between the top-level parts."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
FOUNDATIONS = {"errors", "config", "checks", "progress"}

# top-level part -> the other parts it may import (the table in docs/ARCHITECTURE.md)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": set(),
    "checks": {"errors"},
    "progress": {"errors"},  # stop_callable's DataError
    "formats": FOUNDATIONS,
    "data": FOUNDATIONS,
    "models": FOUNDATIONS | {"data", "formats"},
    "sparsity": FOUNDATIONS | {"formats", "models"},  # models.capture: the one forward-hook capture
    "quant": FOUNDATIONS | {"data", "models", "formats", "kernels", "dynamics"},  # kernels.bits, dynamics.train
    "dynamics": FOUNDATIONS | {"data", "models", "formats"},
    "topology": FOUNDATIONS | {"data", "formats"},
    "kernels": FOUNDATIONS | {"formats"},
    "viz": FOUNDATIONS,
    "hashing": FOUNDATIONS | {"dynamics", "models", "kernels"},  # large outputs: dynamics.train, models.hf (the MiniLM
    # tokenizer); kernels.cpu_slide: HashedSparseLinear's numba kernels
    "lab": FOUNDATIONS | {"reports"},  # the lab's working copy uses the reports' safe file writes
}
# a lab not in the table (a new room) may import the foundations, data, models, formats, the one train loop and
# the one LSH mechanism
NEW_LAB = FOUNDATIONS | {"data", "models", "formats", "dynamics", "hashing"}
ANYTHING_BUT = {"widgets": {"reports", "cli"}, "reports": {"widgets", "cli"}, "cli": set(), "__init__": set()}
# third-party packages only some parts may import
ONLY_IN = {"ipywidgets": {"widgets"}, "plotly": {"viz", "widgets", "reports"}}
NEVER_IN = {"viz": {"torch"}, "formats": {"ipywidgets", "plotly", "papermill", "nbconvert", "transformers"}}


def _parts() -> set[str]:
    return {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return "__init__" if rel == ("__init__.py",) else rel[0].removesuffix(".py")


def _imports(path: Path, parts: set[str]) -> tuple[set[str], set[str]]:
    """``(workbench parts, third-party top-level packages)`` that a file imports. A bare ``import workbench`` (the
    lazy facade, for ``workbench.__file__`` or ``workbench.load_model``) names no part and is not counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ("workbench", *path.relative_to(PACKAGE).parts[:-1])
    internal, external = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(pkg[: len(pkg) - node.level + 1]) if node.level else ""
            mod = ".".join(x for x in (base, node.module) if x)
            mods = [(mod, [a.name for a in node.names])]
        else:
            continue
        for mod, names in mods:
            head = mod.split(".")
            if head[0] != "workbench":
                external.add(head[0])
            elif len(head) > 1:
                internal.add(head[1])
            elif names:  # from workbench import formats, errors, apply
                internal.update(n for n in names if n in parts)
    return internal, external


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    parts = _parts()
    deps: dict[str, set[str]] = defaultdict(set)
    ext: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        top = _top(path)
        internal, external = _imports(path, parts)
        for d in internal - {top}:
            deps[top].add(d)
            where[(top, d)].append(str(path.relative_to(PACKAGE.parent)))
        for e in external:
            ext[top].add(e)
            where[(top, e)].append(str(path.relative_to(PACKAGE.parent)))
    return deps, ext, where


DEPS, EXT, WHERE = _graph()


def _allowed(part: str) -> set[str]:
    if part in ALLOWED:
        return ALLOWED[part]
    if part in ANYTHING_BUT:
        return _parts() - ANYTHING_BUT[part]
    return NEW_LAB


@pytest.mark.parametrize("part", sorted(_parts() | {"__init__"}))
def test_each_part_imports_only_what_the_table_allows(part: str) -> None:
    bad = DEPS.get(part, set()) - _allowed(part) - {part}
    assert not bad, {d: WHERE[(part, d)] for d in bad}


def test_formats_imports_no_lab() -> None:
    labs = _parts() - FOUNDATIONS - {"formats"}
    assert not DEPS["formats"] & labs, {d: WHERE[("formats", d)] for d in DEPS["formats"] & labs}


@pytest.mark.parametrize("package,owners", sorted(ONLY_IN.items()))
def test_ui_libraries_stay_in_their_layer(package: str, owners: set[str]) -> None:
    users = {p for p, e in EXT.items() if package in e} - owners
    assert not users, {p: WHERE[(p, package)] for p in users}


@pytest.mark.parametrize("part,packages", sorted(NEVER_IN.items()))
def test_parts_that_must_not_import_a_package(part: str, packages: set[str]) -> None:
    bad = EXT.get(part, set()) & packages
    assert not bad, {e: WHERE[(part, e)] for e in bad}


def _cycle() -> list[str] | None:
    """One import cycle between top-level parts (``__init__``, the lazy facade, left out), or None."""
    graph = {p: d - {"__init__"} for p, d in DEPS.items() if p != "__init__"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_top_level_parts() -> None:
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle) + f"; edges: {[WHERE[(a, b)] for a, b in zip(cycle, cycle[1:])]}"


def test_no_cycle_inside_sparsity() -> None:
    """``sparsity.diversity`` and ``sparsity.masks`` imported each other; the solvers now live in formats."""
    sub = PACKAGE / "sparsity"
    mods = {p.stem for p in sub.glob("*.py")}
    edges = {}
    for p in sub.glob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        edges[p.stem] = {n.module.split(".")[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                         and n.module and n.module.startswith("workbench.sparsity.")} & mods
    for a, targets in edges.items():
        for b in targets:
            assert a not in edges.get(b, set()), f"sparsity.{a} <-> sparsity.{b}"


def test_the_contract_sees_real_imports() -> None:
    """Guard against a parser that sees nothing: known edges are found."""
    assert "formats" in DEPS["sparsity"] and "formats" in DEPS["models"] and "errors" in DEPS["formats"]
    assert "ipywidgets" in EXT["widgets"] and "plotly" in EXT["viz"] and "torch" in EXT["formats"]
