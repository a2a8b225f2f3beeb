"""Report parameters: read a notebook's ``parameters`` cell and check values against it before any kernel starts.

A report notebook declares its parameters in the first cell tagged ``parameters`` (papermill's convention), one
literal per line with an optional ``# help`` comment and an optional annotation::

    model = "digits-mlp"            # model spec for workbench.load_model
    formats: list[str] = ["2:4"]    # formats to compare
    quick: bool | None = None       # None = follow WORKBENCH_QUICK
    seed = 0                        # random seed

:func:`notebook_parameters` uses :func:`papermill.inspect_notebook` for names, defaults and help, and infers each
parameter's type from its annotation or, without one, from its default literal (``ast.literal_eval``).
:func:`validate_parameters` rejects unknown names and values of the wrong type with a :class:`ParameterError`, so a
bad command line fails in milliseconds instead of after a kernel has started. Values must be plain literals (None,
bool, int, float, str, and lists / dicts of those): papermill writes them into the notebook as Python literals, so
nothing a user passes is ever evaluated as code.

Command-line values (``-p NAME VALUE``) and parameter files are read as YAML 1.2 core scalars (:func:`load_yaml`,
:func:`parse_value`): ``3`` is an int, ``0.5`` a float, ``true`` a bool, ``null`` None, ``[a, b]`` a list, and
anything else a string. Unlike PyYAML's default YAML 1.1 rules, ``2:4`` stays the string ``"2:4"`` (not the
base-60 integer 124), ``yes``/``on`` stay strings and dates stay strings.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from workbench.errors import DataError, ParameterError


# --------------------------------------------------------------------------------------------------------------
# YAML 1.2 core schema on top of PyYAML's SafeLoader


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars: no base-60 ints, no yes/no booleans, no timestamps."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag.rsplit(":", 1)[-1] not in {"bool", "int", "float", "timestamp"}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _construct_yaml12_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_yaml12_int)


def load_yaml(text: str) -> Any:
    """Parse YAML text with YAML 1.2 core scalars (see the module docstring)."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}") from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file (see :func:`load_yaml`); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read parameter file {path}: {exc.strerror}") from None
    try:
        return load_yaml(text)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def parse_value(text: str) -> Any:
    """A command-line value as a YAML 1.2 scalar or flow collection; text that is not valid YAML stays a string.

    >>> parse_value("3"), parse_value("0.5"), parse_value("2:4"), parse_value("[2:4, int8]"), parse_value("null")
    (3, 0.5, '2:4', ['2:4', 'int8'], None)
    """
    try:
        value = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip() not in {"null", "Null", "NULL", "~"} else value


# --------------------------------------------------------------------------------------------------------------
# types


@dataclass(frozen=True)
class ParamType:
    """The type a parameter accepts: a base kind plus, for lists and dicts, the kind of their items.

    ``kind`` is one of ``"bool" "int" "float" "str" "list" "dict" "any"``; ``optional`` means None is accepted.
    """

    kind: str
    item: "ParamType | None" = None
    optional: bool = False

    def __str__(self) -> str:
        text = self.kind if self.item is None else f"{self.kind}[{self.item}]"
        return f"{text} | None" if self.optional and self.kind != "any" else text


ANY = ParamType("any")
_SIMPLE = {"bool", "int", "float", "str", "list", "dict"}
_TYPE_ALIASES = {"List": "list", "Dict": "dict", "Tuple": "list", "tuple": "list", "Sequence": "list"}


def _type_from_annotation(node: ast.expr) -> ParamType | None:
    """ParamType from an annotation AST (``int``, ``list[str]``, ``float | None``, ``Optional[int]``), else None."""
    if isinstance(node, ast.Constant) and node.value is None:
        return ParamType("any", optional=True)
    if isinstance(node, ast.Name):
        name = _TYPE_ALIASES.get(node.id, node.id)
        if name in _SIMPLE:
            return ParamType(name)
        if name == "Any":
            return ANY
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _type_from_annotation(node.left), _type_from_annotation(node.right)
        if left is None or right is None:
            return None
        if right.kind == "any" and right.optional:
            return ParamType(left.kind, left.item, True)
        if left.kind == "any" and left.optional:
            return ParamType(right.kind, right.item, True)
        if {left.kind, right.kind} == {"int", "float"}:
            return ParamType("float", optional=left.optional or right.optional)
        return ANY
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        outer = _TYPE_ALIASES.get(node.value.id, node.value.id)
        inner = node.slice
        if outer == "Optional":
            base = _type_from_annotation(inner)
            return None if base is None else ParamType(base.kind, base.item, True)
        if outer == "list":
            if isinstance(inner, ast.Tuple):  # tuple[int, ...] or tuple[int, str]
                elts = [e for e in inner.elts if not (isinstance(e, ast.Constant) and e.value is Ellipsis)]
                kinds = {_type_from_annotation(e) for e in elts}
                item = kinds.pop() if len(kinds) == 1 else ANY
            else:
                item = _type_from_annotation(inner)
            return ParamType("list", item if item is not None and item != ANY else None)
        if outer == "dict":
            if isinstance(inner, ast.Tuple) and len(inner.elts) == 2:
                item = _type_from_annotation(inner.elts[1])
                return ParamType("dict", item if item is not None and item != ANY else None)
            return ParamType("dict")
    return None


def _kind_of(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _type_from_default(value: Any) -> ParamType:
    kind = _kind_of(value)
    if kind == "none":
        return ParamType("any", optional=True)
    if kind in {"list", "dict"}:
        items = list(value) if kind == "list" else list(value.values())
        kinds = {_kind_of(v) for v in items}
        if kinds == {"int", "float"}:
            kinds = {"float"}
        item = None
        if len(kinds) == 1 and next(iter(kinds)) in {"bool", "int", "float", "str"}:
            item = ParamType(next(iter(kinds)))
        return ParamType(kind, item)
    if kind in _SIMPLE:
        return ParamType(kind)
    return ANY


# --------------------------------------------------------------------------------------------------------------
# the notebook's parameters


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, accepted type, default (as a Python value and as written) and help."""

    name: str
    type: ParamType
    default: Any
    default_source: str
    help: str


def _parameters_cell(path: Path) -> str | None:
    """Source of the first cell tagged ``parameters`` (papermill's rule), or None."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # malformed JSON, unreadable file
        raise DataError(f"cannot read notebook {path}: {exc}") from None
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.get("source", "")
    return None


def _parse_parameters_cell(source: str, where: str) -> list[tuple[str, str | None, str, str]]:
    """``(name, annotation source, default source, help)`` for each top-level assignment of the cell.

    Parsed with :mod:`ast` and :mod:`tokenize` rather than papermill's line regex, which drops a parameter whose
    help comment contains ``=`` (``quick = None  # None = follow WORKBENCH_QUICK``) and a multi-target line.
    """
    import io
    import tokenize

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise DataError(f"{where}: the parameters cell is not valid Python: {exc}") from None
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = re.sub(r"^help:\s*", "", tok.string.lstrip("#").strip(), flags=re.I)
    except tokenize.TokenError:  # pragma: no cover - ast.parse already succeeded
        pass
    out = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, annotation = [node.target.id], ast.get_source_segment(source, node.annotation)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            targets, annotation = [t.id for t in node.targets], None
        else:
            continue
        default = ast.get_source_segment(source, node.value) or ""
        help_text = comments.get(node.end_lineno or node.lineno, "")
        out.extend((t, annotation, default, help_text) for t in targets)
    return out


def notebook_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook declares in its ``parameters`` cell, in order (empty if it has none).

    Names, defaults and ``# help`` comments as papermill's :func:`papermill.inspect_notebook` reports them (read
    with :mod:`ast`, so a help comment may contain ``=``); the type from the annotation if there is one, else from
    the default literal. A default that is not a literal (``x = f()``) accepts any literal value.
    """
    path = Path(notebook)
    if not path.is_file():
        raise DataError(f"notebook not found: {path}")
    source = _parameters_cell(path)
    if source is None:
        return {}
    out: dict[str, Parameter] = {}
    for name, annotation, source_default, help_text in _parse_parameters_cell(source, path.name):
        try:
            default = ast.literal_eval(source_default)
            literal = True
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            default, literal = None, False
        ptype: ParamType | None = None
        if annotation:
            try:
                ptype = _type_from_annotation(ast.parse(annotation, mode="eval").body)
            except SyntaxError:
                ptype = None
        if ptype is None:
            ptype = _type_from_default(default) if literal else ANY
        if literal and default is None and not ptype.optional:
            ptype = ParamType(ptype.kind, ptype.item, True)
        out[name] = Parameter(name=name, type=ptype, default=default, default_source=source_default, help=help_text)
    return out


def parameters_table(notebook: str | Path):
    """The declared parameters as a DataFrame (``name, type, default, help``), one row per parameter."""
    import pandas as pd

    rows = [{"name": p.name, "type": str(p.type), "default": p.default_source, "help": p.help}
            for p in notebook_parameters(notebook).values()]
    return pd.DataFrame(rows, columns=["name", "type", "default", "help"])


# --------------------------------------------------------------------------------------------------------------
# checking values


def _check(value: Any, ptype: ParamType, where: str) -> Any:
    """Return ``value`` (ints widened to float for float parameters) or raise ParameterError naming ``where``."""
    kind = _kind_of(value)
    if kind == "none":
        if ptype.optional or ptype.kind == "any":
            return None
        raise ParameterError(f"{where}: got None but the notebook expects {ptype}")
    if kind not in {"bool", "int", "float", "str", "list", "dict"}:
        raise ParameterError(f"{where}: {type(value).__name__} values are not allowed; parameters must be literals "
                             "(None, bool, int, float, str, or lists / dicts of those)")
    if kind == "float" and not math.isfinite(value):
        raise ParameterError(f"{where}: non-finite float {value!r} cannot be written as a Python literal")
    if ptype.kind == "any":
        expected_ok = True
    elif ptype.kind == "float" and kind == "int":
        value, expected_ok = float(value), True
    else:
        expected_ok = kind == ptype.kind
    if not expected_ok:
        raise ParameterError(f"{where}: expected {ptype}, got {kind} {value!r}")
    if kind == "list":
        item = ptype.item if ptype.item is not None else ANY
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "dict":
        item = ptype.item if ptype.item is not None else ANY
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParameterError(f"{where}: dict keys must be strings, got {k!r}")
            out[k] = _check(v, item, f"{where}[{k!r}]")
        return out
    return value


def validate_parameters(notebook: str | Path, values: Mapping[str, Any],
                        declared: Mapping[str, Parameter] | None = None) -> dict[str, Any]:
    """Check ``values`` against the notebook's parameters cell; return them (ints widened for float parameters).

    Raises :class:`ParameterError` for a name the notebook does not declare (listing those it does) or a value of
    the wrong type. Nothing is executed.
    """
    declared = notebook_parameters(notebook) if declared is None else declared
    unknown = [name for name in values if name not in declared]
    if unknown:
        known = ", ".join(declared) or "(none: the notebook has no cell tagged 'parameters')"
        raise ParameterError(f"{Path(notebook).name}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; the notebook declares: {known}")
    return {name: _check(value, declared[name].type, f"{Path(notebook).name}: parameter {name!r}")
            for name, value in values.items()}


def effective_parameters(declared: Mapping[str, Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``values``: what the notebook actually ran with (non-literal defaults as source)."""
    out: dict[str, Any] = {}
    for name, p in declared.items():
        if name in values:
            out[name] = values[name]
        else:
            try:
                out[name] = ast.literal_eval(p.default_source)
            except (ValueError, SyntaxError):
                out[name] = p.default_source
    return out


#: Parameter names that hold file system paths: ``path``, ``file``, ``dir``, ``folder`` and names ending in one of
#: them after an underscore (``metrics_path``, ``data_dir``). Their relative values are taken relative to the caller.
PATH_NAME = re.compile(r"^(?:.*_)?(?:path|file|dir|folder)$")
#: Values that are paths whatever the parameter's name: explicitly relative or home-relative.
_PATH_PREFIXES = ("./", "../", "~/", ".\\", "..\\")


def is_path_parameter(name: str) -> bool:
    """True when ``name`` follows the path naming convention (:data:`PATH_NAME`)."""
    return bool(PATH_NAME.match(name))


def resolve_path_parameters(values: Mapping[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """``values`` with relative paths made absolute against ``base`` (default: the caller's working directory).

    A report's kernel runs in the notebook's folder, so a relative path given on the command line would otherwise
    land beside the notebook instead of where the user ran the command. Resolved: the non-empty string value of a
    path parameter (:func:`is_path_parameter`: ``metrics_path``, ``out_dir``, ...), and any string value that starts
    with ``./``, ``../`` or ``~/`` (``-p model ./my_model.pt``). ``~`` is expanded. Other values are left alone.

    >>> resolve_path_parameters({"metrics_path": "m.json", "model": "digits-mlp", "label": "a/b"}, "/work")
    {'metrics_path': '/work/m.json', 'model': 'digits-mlp', 'label': 'a/b'}
    """
    root = Path(base) if base is not None else Path.cwd()
    out = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            continue
        if is_path_parameter(name) or value.startswith(_PATH_PREFIXES) or value == "~":
            out[name] = os.path.abspath(os.path.join(root, os.path.expanduser(value)))
    return out


def merge_parameter_sources(files: Iterable[str | Path] = (), pairs: Iterable[tuple[str, str]] = (),
                            values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge YAML parameter files, then ``-p NAME VALUE`` pairs (YAML scalars), then ``values``; later wins."""
    out: dict[str, Any] = {}
    for f in files:
        loaded = load_yaml_file(f)
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise ParameterError(f"{f}: a parameter file must be a YAML mapping of name: value")
        out.update(loaded)
    for name, text in pairs:
        if not name.isidentifier():
            raise ParameterError(f"-p {name!r}: a parameter name must be a Python identifier")
        out[name] = parse_value(text)
    if values:
        out.update(values)
    return out


__all__ = [
    "ParameterError",
    "ParamType",
    "Parameter",
    "load_yaml",
    "load_yaml_file",
    "parse_value",
    "notebook_parameters",
    "parameters_table",
    "validate_parameters",
    "effective_parameters",
    "merge_parameter_sources",
    "is_path_parameter",
    "resolve_path_parameters",
]
